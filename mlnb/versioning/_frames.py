"""Content hashes of pandas DataFrames and Series: every cell, the column names and dtypes,
and the index. Changing one cell, a name, a dtype or the order of rows changes the hash.

The hash is BLAKE3 over a JSON header (shape, the column names with their Python types, the
dtypes, the index's names and dtype) and one digest per column, then one for the index:

* a column of a numpy dtype (numbers, bool, datetime64, timedelta64): the BLAKE3 of its
  values' bytes, as for arrays (:mod:`._arrays`);
* text (pandas' ``str``, or an object column holding only ``str`` and missing values),
  categoricals and other extension types: the BLAKE3 of pandas' 64-bit hash of each value
  (``hash_pandas_object`` with its fixed key: the same in every process);
* any other object column: the BLAKE3 of the typed JSON of its values (:mod:`._elements`),
  so ``1`` and ``"1"`` differ and arrays or lists in cells count in full; a column holding
  objects that encoding refuses counts by their ``str()``;
* the index the same way; a ``RangeIndex`` by its start, stop and step.

Columns are hashed on a few threads: BLAKE3 and pandas' hashing release the GIL.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from blake3 import blake3

from mlnb.exceptions import InvalidValueError
from mlnb.versioning import _arrays, _elements

__all__ = ["fingerprint_dataframe", "fingerprint_series"]

_FORMAT = 2  # of the header; a change of any rule above is a new format
_NUMPY_KINDS = "biufcmM"
_TEXT = frozenset({"string", "empty"})


def _label(value: Any) -> list[str]:
    return [type(value).__name__, str(value)]


def _values_digest(values: Any) -> str:
    """The digest of a column's (a Series') or an index's values, by the rules above."""
    import numpy as np
    import pandas as pd

    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in _NUMPY_KINDS:
        hasher = blake3(b"numpy\0")
        _arrays.feed_array(hasher, values.to_numpy())
        return str(hasher.hexdigest())
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        array = values.to_numpy()
        if pd.api.types.infer_dtype(array, skipna=True) not in _TEXT:
            items = array.tolist()
            try:
                encoded = _elements.encode(items, lambda i: f"row {i}")
            except InvalidValueError:
                encoded = [str(v) for v in items]  # objects that JSON cannot carry
            return str(blake3(b"json\0" + _elements.dumps(encoded)).hexdigest())
    hashes = pd.util.hash_pandas_object(values, index=False, categorize=True)
    return str(blake3(b"pandas\0" + hashes.to_numpy().tobytes()).hexdigest())


def _index_doc(index: Any) -> dict[str, Any]:
    import pandas as pd

    doc: dict[str, Any] = {"dtype": str(index.dtype), "names": [_label(n) for n in index.names]}
    if type(index) is pd.RangeIndex:
        doc["range"] = [index.start, index.stop, index.step]
    return doc


def _index_digest(index: Any) -> str:
    import pandas as pd

    if type(index) is pd.RangeIndex:
        return ""  # its header says it all
    if isinstance(index, pd.MultiIndex):
        hashes = pd.util.hash_pandas_object(index, categorize=True)
        return str(blake3(b"multi\0" + hashes.to_numpy().tobytes()).hexdigest())
    return _values_digest(index)


def _digest(header: dict[str, Any], columns: list[Any], index: Any) -> str:
    workers = max(1, min(len(columns), os.cpu_count() or 2, 8))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlnb-frame") as pool:
        parts = list(pool.map(_values_digest, columns))
    hasher = blake3(json.dumps({"format": _FORMAT, **header}, sort_keys=True).encode() + b"\0")
    for part in [*parts, _index_digest(index)]:
        hasher.update(part.encode() + b"\0")
    return str(hasher.hexdigest())


def fingerprint_dataframe(df: Any) -> str:
    """Full-content hash of a pandas DataFrame (see the module)."""
    header = {
        "kind": "pandas.DataFrame",
        "shape": list(df.shape),
        "columns": [_label(c) for c in df.columns],
        "dtypes": [str(t) for t in df.dtypes],
        "index": _index_doc(df.index),
    }
    columns = [df.iloc[:, i] for i in range(df.shape[1])]
    return _digest(header, columns, df.index)


def fingerprint_series(series: Any, name: bytes) -> str:
    """Full-content hash of a pandas Series whose name is ``name`` (as :mod:`._elements`
    JSON)."""
    header = {
        "kind": "pandas.Series",
        "shape": [len(series)],
        "name": name.decode("utf-8", "surrogatepass"),
        "dtypes": [str(series.dtype)],
        "index": _index_doc(series.index),
    }
    return _digest(header, [series], series.index)
