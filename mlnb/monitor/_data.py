"""Turning what users pass (DataFrame, dict of lists, list of dicts, 2-D array) into a frame."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlnb.exceptions import MonitorError

__all__ = ["to_frame"]

_SHAPES = (
    "a pandas DataFrame, a dict of columns (name -> list), a list of records (dicts), or a "
    "2-D numpy array with columns=[...]"
)


def to_frame(data: Any, columns: Sequence[str] | None = None, *, what: str = "data") -> Any:
    """``data`` as a pandas DataFrame with string column names; MonitorError if not tabular."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, pd.Series):
        frame = data.to_frame(name=str(data.name) if data.name is not None else "value")
    elif _is_array(data):
        if data.ndim != 2:
            raise MonitorError(f"{what} is a {data.ndim}-D array; give {_SHAPES}.")
        names = list(columns) if columns is not None else [f"x{i}" for i in range(data.shape[1])]
        if len(names) != data.shape[1]:
            raise MonitorError(
                f"{what} has {data.shape[1]} columns but {len(names)} column names were given."
            )
        frame = pd.DataFrame(data, columns=names)
    elif isinstance(data, Mapping):
        if not all(isinstance(v, (list, tuple)) or _is_array(v) for v in data.values()):
            raise MonitorError(f"{what} is a dict whose values are not all lists; give {_SHAPES}.")
        try:
            frame = pd.DataFrame({str(k): list(v) for k, v in data.items()})
        except ValueError as exc:
            raise MonitorError(f"{what} cannot be read as a table: {exc}.") from exc
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        if not all(isinstance(r, Mapping) for r in data):
            raise MonitorError(f"{what} is a list whose items are not all dicts; give {_SHAPES}.")
        frame = pd.DataFrame.from_records([dict(r) for r in data])
    else:
        raise MonitorError(f"{what} is a {type(data).__name__}, not a table; give {_SHAPES}.")
    if columns is not None and not _is_array(data):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise MonitorError(f"{what} has no column(s) {missing}.")
        frame = frame[list(columns)]
    if not all(isinstance(c, str) for c in frame.columns):
        frame = frame.rename(columns=str)
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise MonitorError(f"{what} has duplicate column name(s) {duplicated}; rename them.")
    return frame


def _is_array(obj: Any) -> bool:
    return type(obj).__module__ == "numpy" and hasattr(obj, "ndim")
