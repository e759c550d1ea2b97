"""Versioning numpy arrays, scipy sparse matrices, lists/tuples/dicts of them and Series from
memory, on a real project store; loads and hashes checked again in a fresh process."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from blake3 import blake3
from mlflow import MlflowClient

import mlnb
from mlnb.config import get_settings
from mlnb.exceptions import InvalidValueError, VersioningError, VersionNotFoundError
from mlnb.tracking import lineage, version, versions
from mlnb.versioning import Project, checkout, gc, load, render_lineage
from mlnb.versioning._store import ObjectStore
from tests.conftest import REPO
from tests.versioning.examples import assert_same, examples

_CHECK_IN_A_FRESH_PROCESS = """
import json
from mlnb.tracking import version
from mlnb.versioning import load
from tests.versioning.examples import assert_same, examples

hashes = {}
for name, value in examples().items():
    assert_same(load(name), value, name)
    hashes[name] = version(value, name, run=False).hash
print(json.dumps(hashes))
"""


def _fresh_process(project: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    env["PYTHONHASHSEED"] = "12345"  # not this process's: nothing may depend on str hashing
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _nothing_recorded() -> bool:
    """No version recorded, and no file at all in the object store (no object, no leftover
    temporary file)."""
    project = Project.current()
    files = [p for p in project.store.folder.rglob("*") if p.is_file()]
    return project.registry.all() == [] and files == []


def test_every_kind_round_trips_and_hashes_the_same_in_a_fresh_process(project: Path) -> None:
    values = examples()
    records = {name: version(value, name, run=False) for name, value in values.items()}
    kinds = {name: (r.kind, r.meta["format"]) for name, r in records.items()}
    assert kinds["float2d"] == kinds["structured"] == kinds["scalar"] == ("array", "npy")
    assert kinds["object"] == kinds["object-nested"] == kinds["stringdtype"] == ("array", "json")
    assert kinds["csr"] == kinds["lil"] == kinds["coo-array"] == ("sparse", "npz")
    assert kinds["xy"] == kinds["splits"] == ("arrays", "npz")
    assert kinds["series"] == ("series", "parquet")
    for name, value in values.items():  # in this process
        assert_same(load(name), value, name)

    done = _fresh_process(project, _CHECK_IN_A_FRESH_PROCESS)
    assert done.returncode == 0, done.stderr[-3000:]
    hashes = json.loads(done.stdout.strip().splitlines()[-1])
    assert hashes == {name: r.hash for name, r in records.items()}
    assert all(len(versions(name)) == 1 for name in values)  # the same content: no new version


def test_the_dense_hash_is_the_documented_one(project: Path) -> None:
    arr = np.arange(6, dtype="<i8").reshape(2, 3)
    header = b'{"dtype":"<i8","shape":[2,3],"type":"numpy.ndarray"}\0'
    assert version(arr, "a", run=False).hash == blake3(header + arr.tobytes()).hexdigest()


def test_equal_content_is_the_same_version_whatever_the_memory_layout(project: Path) -> None:
    rng = np.random.default_rng(0)
    arr = rng.standard_normal((300, 40))
    first = version(arr, "X", run=False)
    for same in (arr.copy(), np.asfortranarray(arr), arr.T.copy().T, np.array(arr.tolist())):
        assert version(same, "X", run=False).hash == first.hash
    view = arr[::3, 5:25]
    assert version(view, "view", run=False).hash == version(view.copy(), "view", run=False).hash
    assert len(versions("X")) == 1 and len(versions("view")) == 1

    dtype = np.dtype([("a", "u1"), ("b", "<f8")], align=True)  # 7 bytes of padding
    raw = bytearray(np.zeros(2, dtype=dtype).tobytes())
    clean = np.frombuffer(bytes(raw), dtype=dtype).copy()
    raw[1:8] = b"\xff" * 7  # garbage in the padding of row 0 only
    dirty = np.frombuffer(bytes(raw), dtype=dtype).copy()
    assert version(clean, "padded", run=False).hash == version(dirty, "padded", run=False).hash

    matrix = sp.random(50, 20, density=0.1, format="csr", random_state=1)
    wide = sp.csr_matrix(
        (matrix.data, matrix.indices.astype(np.int64), matrix.indptr.astype(np.int64)),
        shape=matrix.shape,
    )
    assert version(matrix, "S", run=False).hash == version(wide, "S", run=False).hash


def test_dtype_shape_type_or_value_changes_make_a_new_version(project: Path) -> None:
    base = np.arange(12, dtype=np.int64).reshape(3, 4)
    matrix = sp.csr_matrix(base)
    variants = {
        "base": base,
        "int32": base.astype(np.int32),
        "float": base.astype(np.float64),
        "big-endian": base.astype(">i8"),
        "reshaped": base.reshape(4, 3),
        "flat": base.reshape(-1),
        "one-cell": np.where(np.arange(12).reshape(3, 4) == 11, 99, base),
        "0-d": np.array(5),
        "1-elem": np.array([5]),
        "csr": matrix,
        "csc": matrix.tocsc(),
        "csr-array": sp.csr_array(matrix),
        "tuple": (base, base),
        "list": [base, base],
        "dict": {"a": base, "b": base},
        "object": base.astype(object),
    }
    hashes = {name: version(value, "v", run=False).hash for name, value in variants.items()}
    assert len(set(hashes.values())) == len(variants), hashes
    assert [r.hash for r in versions("v")] == list(hashes.values())
    assert_same(load("v@3"), variants["float"])
    assert_same(load(f"v@{hashes['tuple'][:10]}"), variants["tuple"])


def test_versioning_again_writes_nothing(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    df = pd.DataFrame(rng.standard_normal((2_000, 3)), columns=list("abc"))
    df["city"] = rng.choice(["Oslo", "Lima"], size=len(df))
    arrays = (rng.standard_normal((500, 4)), rng.integers(0, 3, 500))
    first_frame, first_arrays = version(df, "frame", run=False), version(arrays, "xy", run=False)
    objects = set(Project.current().store)

    writes: list[object] = []
    real = ObjectStore.put_written

    def counting(self: ObjectStore, write: Any, label: str | None = None) -> str:
        writes.append(write)
        return real(self, write, label)

    monkeypatch.setattr(ObjectStore, "put_written", counting)
    assert version(df.copy(), "frame", run=False).hash == first_frame.hash
    assert version((arrays[0].copy(), arrays[1].copy()), "xy", run=False).ref == "xy@1"
    assert version(df, "frame-copy", run=False).object == first_frame.object  # other name
    assert writes == [] and set(Project.current().store) == objects

    df.iloc[1_999, 0] += 1.0  # a change in place: hashed again, so a new version
    assert version(df, "frame", run=False).number == 2 and len(writes) == 1

    stored = Project.current().store.path(first_arrays.object)  # the object went missing
    stored.chmod(0o644)
    stored.unlink()
    assert version(arrays, "xy", run=False).ref == "xy@1" and len(writes) == 2
    assert_same(load("xy"), arrays)


def test_a_services_pinned_copies_load_as_the_versions(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exported service pins what its cells load (a checkout of each version, with kind
    and format only) and ``mlnb.load_version`` reads those copies instead of the store."""
    from mlnb.versioning import pinned_versions

    values = {name: v for name, v in examples().items() if name in PINNED_EXAMPLES}
    pins = {}
    for name, value in values.items():
        record = version(value, name, run=False)
        copy = checkout(name, project / "service" / "versions" / name)
        pins[name] = {"kind": record.kind, "format": record.meta["format"], "path": copy}
    monkeypatch.setattr(Project, "current", None)  # a service has no project to fall back on
    with pinned_versions.pinned(pins):
        for name, value in values.items():
            assert_same(load(name), value, name)
    assert not any(name in pinned_versions for name in pins)  # unpinned on leaving


PINNED_EXAMPLES = ("float2d", "object-nested", "csr-array", "splits", "series-tuple-name")


def test_checkout_writes_files_numpy_and_scipy_read(project: Path) -> None:
    X = np.arange(20.0).reshape(4, 5)
    S = sp.csr_array(np.eye(3))
    version(X, "X", run=False)
    version(S, "S", run=False)
    version((X, np.arange(4)), "xy", run=False)
    version(np.array(["a", None], dtype=object), "labels", run=False)
    assert checkout("X") == project / "X.npy"
    assert_same(np.load(project / "X.npy"), X)
    assert_same(sp.load_npz(checkout("S")), S)
    with np.load(checkout("xy")) as npz:
        assert_same(npz["0"], X)
    assert json.loads(checkout("labels").read_text())["values"] == ["a", None]

    version(X + 1, "X", run=False)
    checkout("X@1")  # over a recorded version's file: fine
    (project / "X.npy").write_bytes(b"my own notes")
    with pytest.raises(VersioningError, match=r"X.npy has changes that are not versioned"):
        checkout("X@2")
    assert (project / "X.npy").read_bytes() == b"my own notes"  # nothing lost
    assert_same(np.load(checkout("X@2", force=True)), X + 1)


def test_bad_values_are_refused_and_nothing_is_recorded(project: Path) -> None:
    class Point:
        pass

    when = np.array([1, datetime.datetime(2024, 1, 1)], dtype=object)
    cases: list[tuple[Any, str | None, str]] = [
        (when, "when", r"element \(1,\) of 'when' is a datetime\.datetime.*astype\(str\)"),
        (np.array([[Point()]], dtype=object), "p", r"element \(0, 0\) of 'p' is a .*Point"),
        ([np.ones(2), "label"], "mixed", r"'mixed'\[1\] is a str: a list, tuple or dict"),
        ({"X": np.ones(2), "lr": 0.1}, "params", r"'params'\['lr'\] is a float"),
        ((np.ones(2), pd.DataFrame({"a": [1]})), "xy", r"'xy'\[1\] is a DataFrame or Series"),
        ({1: np.ones(2)}, "d", r"'d' has a key 1 of type int; a dict of arrays needs str keys"),
        (np.ma.masked_array([1, 2], mask=[0, 1]), "m", r"ndarray subclass.*\.filled\(\)"),
        (np.rec.fromarrays([[1, 2]], names="a"), "r", r"numpy\.rec\.recarray \(an ndarray sub"),
        (np.zeros(2, dtype=[("a", "O")]), "rec", r"dtype \[\('a', 'O'\)\].*pickling"),
        (
            np.array(["a"], dtype=np.dtypes.StringDType(na_object=pd.NA)),
            "s",
            r"na_object is a NAType.*na_object=None",
        ),
        (np.ones(3), None, r"an array \(or a list, tuple or dict of arrays\) needs a name"),
        (np.float64(1.0), "x", r"cannot version a float64 \(a numpy scalar: .*np\.asarray"),
        (pd.Series([1]), None, r"a Series needs a name"),
        (pd.array([1, None]), "ea", r"IntegerArray \(it converts to a numpy array: .*asarray"),
        (
            pd.DataFrame({"m": [1, "a"]}),
            "df",
            r"'df' cannot be written as Parquet exactly: .*column m.*astype\(str\)",
        ),
        (_deep(), "deep", r"element \(0,\) of 'deep'(\[0\])+ is nested more than 64 levels"),
    ]
    for value, name, message in cases:
        with pytest.raises(InvalidValueError, match=message):
            version(value, name, run=False)
        assert _nothing_recorded(), name
    with pytest.raises(VersionNotFoundError, match="no versions of 'when'"):
        load("when")


def _deep() -> np.ndarray:
    cell: Any = 0
    for _ in range(80):
        cell = [cell]
    out = np.empty(1, dtype=object)
    out[0] = cell
    return out


def test_arrays_are_run_inputs_and_outputs_with_lineage(project: Path) -> None:
    X = np.random.default_rng(1).standard_normal((120, 4))
    y = (X[:, 0] > 0).astype(np.int64)
    with mlnb.start_run(experiment_name="arrays", run_name="fit") as active:
        x_record, y_record = version(X, "X"), version(y, "y")
        pairs = version((X, y), "Xy")
        pred = version(y[::-1].copy(), "pred", role="output")
        mlnb.end_run()
    run = MlflowClient(get_settings().tracking_uri).get_run(active.info.run_id)
    datasets = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    assert set(datasets) == {"X", "y", "Xy"}
    assert datasets["X"].digest == x_record.hash[:36]
    profile = json.loads(datasets["X"].profile)
    assert (profile["hash"], profile["kind"], profile["num_rows"]) == (x_record.hash, "array", 120)
    assert json.loads(datasets["X"].schema) == {
        "type": "ndarray",
        "dtype": "float64",
        "shape": [120, 4],
        "rows": 120,
    }
    assert json.loads(datasets["Xy"].profile)["num_rows"] == 120
    assert json.loads(datasets["y"].source) == {"mlnb": f"y@{y_record.hash}"}
    assert run.data.tags["mlnb.input.Xy"] == f"1 {pairs.hash}"
    assert run.data.tags["mlnb.output.pred"] == f"1 {pred.hash}"
    assert versions("X")[0].run_id == active.info.run_id

    doc = lineage("X")
    (reader,) = doc["downstream"]
    assert (reader["run_id"], [w["name"] for w in reader["wrote"]]) == (run.info.run_id, ["pred"])
    assert "-> wrote pred@1" in render_lineage(doc)
    (writer,) = lineage("pred")["upstream"]
    assert {(v["name"], v["kind"]) for v in writer["read"]} == {
        ("X", "array"),
        ("y", "array"),
        ("Xy", "arrays"),
    }
    assert gc().removed == []  # every array's object is live


def test_versions_recorded_under_a_runs_local_id_follow_it_to_mlflow(project: Path) -> None:
    """The tracking journal may create a run in MLflow in another process (a kernel's
    hand-off) than the one that versioned data for it under the run's local id."""
    from mlnb.tracking._client import LOCAL_ID_TAG, get_client

    local = "local-0123456789abcdef0123456789abcdef"
    registry = Project.current().registry
    record = version(np.arange(3), "X", run=False)
    registry.add_edge(local, "X", record.hash, "input")
    with registry._conn() as conn:
        conn.execute("UPDATE versions SET run_id = ? WHERE name = 'X'", (local,))
    assert versions("X")[0].run_id == local  # no such run in MLflow yet: left as it is

    client = get_client(get_settings())
    experiment = client.create_experiment("elsewhere")
    real = client.create_run(experiment, tags={LOCAL_ID_TAG: local}).info.run_id
    assert versions("X")[0].run_id == real
    assert [e.run_id for e in registry.edges(name="X")] == [real]
    assert registry.run_ids_like("local-") == []


def test_version_magic_takes_arrays_and_shows_errors_in_one_line(
    shell: Any, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.core.error import UsageError

    shell.user_ns["X"] = np.zeros((569, 30))
    shell.user_ns["y"] = np.ones(569, dtype=np.int64)
    shell.user_ns["score"] = 0.5
    shell.run_line_magic("mlnb", "metrics score")
    shell.run_line_magic("mlnb", "version X")
    shell.run_line_magic("mlnb", "version y --name labels")
    x_record = versions("X")[0]
    assert f"mlnb: X@1  {x_record.hash[:16]}  array float64 (569, 30), " in capsys.readouterr().out
    shell.user_ns["when"] = np.array([datetime.date(2024, 1, 1)], dtype=object)
    with pytest.raises(UsageError, match=r"^element \(0,\) of 'when' is a datetime\.date[^\n]*$"):
        shell.run_line_magic("mlnb", "version when")
    with pytest.raises(UsageError, match=r"'Xtrain' is neither a variable .* nor a file"):
        shell.run_line_magic("mlnb", "version Xtrain")
    run_id = mlnb.active_run().info.run_id
    shell.run_line_magic("mlnb", "end")
    run = MlflowClient(get_settings().tracking_uri).get_run(run_id)
    assert run.data.metrics == {"score": 0.5}  # what was logged before the error stays
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"X", "labels"}
    assert [v.kind for v in versions("X")] == ["array"]
    with pytest.raises(VersionNotFoundError):
        versions("when")
