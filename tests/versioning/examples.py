"""Values of every kind ``mlnb.version`` takes from memory, built the same way in any process
(seeded), and a strict comparison of a loaded value with the original."""

from __future__ import annotations

import datetime
import math
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp


def arrays() -> dict[str, Any]:
    """Dense arrays: every dtype family, layouts, 0-d and empty."""
    rng = np.random.default_rng(7)
    structured = np.zeros(3, dtype=np.dtype([("id", "i1"), ("xy", "<f8", (2,))], align=True))
    structured["id"] = [1, 2, 3]
    structured["xy"] = rng.standard_normal((3, 2))
    return {
        "float2d": rng.standard_normal((40, 6)),
        "fortran": np.asfortranarray(rng.standard_normal((7, 5))),
        "strided": rng.standard_normal((10, 8))[::3, 1::2],
        "int8": rng.integers(-128, 127, 50, dtype=np.int8),
        "uint64": np.array([0, 1, 2**64 - 1], dtype=np.uint64),
        "float16": rng.standard_normal(9).astype(np.float16),
        "float-nan": np.array([1.0, math.nan, -math.inf, -0.0]),
        "complex": rng.standard_normal(4) + 1j * rng.standard_normal(4),
        "bool": rng.random((4, 4)) > 0.5,
        "datetime": np.array(["2024-02-29T12:00", "NaT", "1970-01-01"], dtype="datetime64[ns]"),
        "timedelta": np.array([1, -2, 3], dtype="timedelta64[ms]"),
        "unicode": np.array([["héllo", "日本"], ["😀", ""]]),
        "bytes": np.array([b"ab", b"\x00c", b""]),
        "structured": structured,
        "big-endian": np.arange(6, dtype=">i4").reshape(2, 3),
        "scalar": np.array(3.25),
        "empty": np.empty((0, 4)),
        "object": np.array(["a", None, 1, 2.5, True, math.nan, "ü\ud800"], dtype=object),
        "object-nested": _nested_objects(),
        "stringdtype": np.array(["a", None, "ccc"], dtype=np.dtypes.StringDType(na_object=None)),
    }


def _nested_objects() -> np.ndarray:
    cells: list[Any] = [
        b"\xffraw",
        (1, "two", None),
        [3, [4.5, "six"]],
        {"k": 1, 2: "v"},
        np.float32(1.5),
        np.int64(-7),
        np.str_("numpy str"),
        np.datetime64("2024-01-01", "D"),
        1 + 2j,
        np.arange(3),  # a ragged array of arrays
        np.array(["x", 1], dtype=object),
        2**80,
    ]
    out = np.empty((3, 4), dtype=object)
    for i, cell in enumerate(cells):
        out.flat[i] = cell
    return out


def sparse() -> dict[str, Any]:
    matrix = sp.random(30, 12, density=0.2, format="csr", random_state=3, dtype=np.float64)
    return {
        "csr": matrix,
        "csc": matrix.tocsc(),
        "coo": matrix.tocoo(),
        "bsr": sp.bsr_matrix(np.kron(np.eye(3), np.arange(4.0).reshape(2, 2))),
        "dia": sp.dia_matrix(np.diag(np.arange(1, 6))),
        "lil": matrix.tolil(),
        "dok": matrix.todok(),
        "csr-array": sp.csr_array(matrix),
        "coo-array": sp.coo_array(matrix),
        "dok-array": sp.dok_array(matrix),
        "int-sparse": sp.csr_matrix(np.array([[0, 3], [4, 0]], dtype=np.int32)),
    }


def containers() -> dict[str, Any]:
    rng = np.random.default_rng(11)
    X, y = rng.standard_normal((25, 3)), rng.integers(0, 2, 25)
    return {
        "xy": (X, y),
        "xy-list": [X, y],
        "splits": {
            "train": (X[:20], y[:20]),
            "test": [X[20:], sp.csr_matrix(X[20:] > 0)],
            "labels": np.array(["no", "yes"], dtype=object),
        },
    }


def pandas_values() -> dict[str, Any]:
    return {
        "series": pd.Series([1.5, None, 3.0], name="target", index=[10, 20, 30]),
        "series-unnamed": pd.Series(["a", "b"]),
        "series-tuple-name": pd.Series([1, 2], name=("a", 1)),
    }


def examples() -> dict[str, Any]:
    """Every example, by version name."""
    return {**arrays(), **sparse(), **containers(), **pandas_values()}


def assert_same(got: Any, want: Any, where: str = "value") -> None:
    """``got`` is ``want``'s equal: same type, and for arrays the same dtype, shape and
    element bytes (NaN equals NaN); sparse matrices store the same arrays."""
    assert type(got) is type(want), f"{where}: {type(got)} is not {type(want)}"
    if isinstance(want, np.ndarray):
        assert (got.dtype, got.shape) == (want.dtype, want.shape), f"{where}: dtype or shape"
        if want.dtype.kind == "O":
            for i, (g, w) in enumerate(zip(got.reshape(-1), want.reshape(-1), strict=True)):
                assert_same(g, w, f"{where}[{i}]")
        elif want.dtype.kind == "T":
            assert got.tolist() == want.tolist(), where
        elif want.dtype.names:
            for name in want.dtype.names:
                assert_same(got[name], want[name], f"{where}.{name}")
        else:
            assert got.tobytes() == want.tobytes(), f"{where}: values differ"
    elif sp.issparse(want):
        assert (got.dtype, got.shape, got.nnz) == (want.dtype, want.shape, want.nnz), where
        assert got.toarray().tobytes() == want.toarray().tobytes(), f"{where}: values differ"
        for part in ("data", "indices", "indptr", "offsets", "row", "col"):
            if hasattr(want, part) and not callable(getattr(want, part)):
                assert np.array_equal(getattr(got, part), getattr(want, part)), f"{where}.{part}"
    elif isinstance(want, pd.Series):
        pd.testing.assert_series_equal(got, want, check_exact=True)
        assert got.name == want.name and type(got.name) is type(want.name), where
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, dict):
        assert list(got) == list(want), f"{where}: keys"
        for key in want:
            assert_same(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, np.generic):
        assert got.tobytes() == want.tobytes(), where
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got), where
    elif isinstance(want, datetime.datetime):
        assert got == want and got.tzinfo == want.tzinfo, where
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"
