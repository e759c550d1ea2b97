"""The holdout the gates run on: reading it, the target, each model's features, the task.

A holdout is a ``.csv``/``.parquet``/``.jsonl`` file, a versioned data name
(``mlnb versions NAME``: ``holdout``, ``holdout@3``) or, from Python, a DataFrame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb._text import first_line
from mlnb.exceptions import GateError, MlnbError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["Holdout", "feature_columns", "infer_task", "load_holdout", "predict"]

_READERS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".json": "json",
}

#: a target with at most this many distinct integer values is a class label
MAX_CLASSES = 20


@dataclass
class Holdout:
    frame: pd.DataFrame
    source: str  # what the user passed, for the report
    target: str

    @property
    def y(self) -> pd.Series:
        return self.frame[self.target]


def _suffix(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s not in (".gz", ".bz2", ".zip", ".xz", ".zst")]
    return suffixes[-1].lower() if suffixes else ""


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    kind = _READERS.get(_suffix(path))
    if kind is None:
        raise GateError(
            f"cannot read holdout {str(path)!r}: mlnb reads .csv, .tsv, .parquet and .jsonl "
            "files; convert it, or version a DataFrame with mlnb.version(df, name=...)."
        )
    try:
        if kind == "csv":
            return pd.read_csv(path)
        if kind == "tsv":
            return pd.read_csv(path, sep="\t")
        if kind == "parquet":
            return pd.read_parquet(path)
        return pd.read_json(path, lines=kind == "jsonl")
    except Exception as exc:
        raise GateError(f"cannot read holdout {str(path)!r}: {first_line(exc)}") from exc


def load_holdout(data: Any, target: str | None) -> Holdout:
    """The holdout frame with ``target`` checked; ``data`` is a path, a version or a frame."""
    import pandas as pd

    if data is None or (isinstance(data, str) and not data.strip()):
        raise GateError(
            "the gates need holdout data: pass --data HOLDOUT (a .csv or .parquet file, or a "
            "versioned data name) and --target COLUMN."
        )
    if isinstance(data, pd.DataFrame):
        frame, source = data, "DataFrame"
    else:
        source = os.fspath(data)
        path = Path(source).expanduser()
        frame = _read(path) if path.is_file() else _load_version(source)
    if not target:
        raise GateError(
            f"name the target column of holdout {source!r} with --target COLUMN "
            f"(columns: {_columns(frame)})."
        )
    if target not in frame.columns:
        raise GateError(
            f"holdout {source!r} has no target column {target!r}; its columns are "
            f"{_columns(frame)}. Pass the label column with --target."
        )
    frame = frame[frame[target].notna()]
    if len(frame) == 0:
        raise GateError(f"holdout {source!r} has no rows with a value in {target!r}.")
    return Holdout(frame.reset_index(drop=True), source, target)


def _load_version(ref: str) -> pd.DataFrame:
    import pandas as pd

    from mlnb import versioning

    try:
        loaded = versioning.load(ref)
    except MlnbError as exc:
        if _suffix(Path(ref)) in _READERS:  # looks like a file name: say that first
            where = Path(ref).expanduser().absolute()
            raise GateError(
                f"holdout {ref!r} is neither a file nor a versioned data name: there is no "
                f"{where}. Check the path, or pass a name listed by `mlnb versions`."
            ) from exc
        raise GateError(
            f"holdout {ref!r} is neither a file nor a versioned data name ({first_line(exc)}); "
            "pass the path of a .csv or .parquet file, or a name listed by `mlnb versions`."
        ) from exc
    if isinstance(loaded, pd.DataFrame):
        return loaded
    if isinstance(loaded, Path) and loaded.is_file():
        return _read(loaded)
    raise GateError(
        f"version {ref!r} is a {type(loaded).__name__}, not a table; version the holdout as "
        "a DataFrame or a .csv/.parquet file."
    )


def _columns(frame: pd.DataFrame, limit: int = 12) -> str:
    names = [str(c) for c in frame.columns]
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def feature_columns(model: Any, model_uri: str, holdout: Holdout) -> list[str]:
    """The columns ``model`` was trained on: ``feature_names_in_``, else the input names of
    its MLflow signature, else every column but the target."""
    fitted = getattr(model, "feature_names_in_", None)
    names = [str(c) for c in fitted] if fitted is not None else _signature_columns(model_uri)
    if not names:
        return [str(c) for c in holdout.frame.columns if c != holdout.target]
    missing = [c for c in names if c not in holdout.frame.columns]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:8])
        raise GateError(
            f"holdout {holdout.source!r} lacks {len(missing)} column(s) model {model_uri} was "
            f"trained on: {shown}{' …' if len(missing) > 8 else ''}. Use a holdout with the "
            "training columns."
        )
    if holdout.target in names:
        raise GateError(
            f"model {model_uri} takes the target {holdout.target!r} as an input; check --target."
        )
    return names


def _signature_columns(model_uri: str) -> list[str] | None:
    try:
        from mlflow.models import get_model_info

        signature = get_model_info(model_uri).signature
        if signature is None or signature.inputs is None:
            return None
        names = signature.inputs.input_names()
        return [str(n) for n in names] if names and all(isinstance(n, str) for n in names) else None
    except Exception:
        return None


def infer_task(model: Any, y: pd.Series, metric_task: str | None) -> str:
    """``"classification"`` or ``"regression"``: from the metric when one was chosen, else
    the model (``classes_``, a regressor), else the target's values."""
    import pandas as pd

    if metric_task is not None:
        return metric_task
    try:
        if getattr(model, "classes_", None) is not None:
            return "classification"
    except Exception:
        pass
    if getattr(model, "_estimator_type", None) == "regressor":
        return "regression"
    try:
        from sklearn.base import is_regressor

        if is_regressor(model):
            return "regression"
    except Exception:
        pass
    if pd.api.types.is_float_dtype(y):
        whole = bool((y.dropna() % 1 == 0).all())
        return "classification" if whole and y.nunique() <= MAX_CLASSES else "regression"
    if pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y):
        return "classification" if y.nunique() <= MAX_CLASSES else "regression"
    return "classification"


def predict(model: Any, X: pd.DataFrame, model_uri: str) -> np.ndarray:
    """``model.predict(X)`` as a flat array; a failure names the model and the cause."""
    import numpy as np

    try:
        out = model.predict(X)
    except Exception as exc:
        raise GateError(
            f"model {model_uri} failed to predict on the holdout: {first_line(exc)}"
        ) from exc
    values = np.asarray(out)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or len(values) != len(X):
        raise GateError(
            f"model {model_uri} returned predictions of shape {values.shape} for {len(X)} rows; "
            "the gates need one prediction a row."
        )
    return values


def scores(model: Any, X: pd.DataFrame, model_uri: str) -> np.ndarray | None:
    """Class probabilities (``predict_proba``) or ``decision_function``; None if neither."""
    import numpy as np

    for method in ("predict_proba", "decision_function"):
        func = getattr(model, method, None)
        if func is None:
            continue
        try:
            return np.asarray(func(X))
        except Exception as exc:
            raise GateError(
                f"model {model_uri} failed in {method} on the holdout: {first_line(exc)}"
            ) from exc
    return None
