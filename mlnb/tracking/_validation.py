"""Validation of what a run records: names, metric values and params as MLflow takes them.

Everything here is pure: it never writes. A value MLflow would refuse (a name with other
characters or too long, a metric that is not one number, a param too long or not short
text) raises :class:`~mlnb.exceptions.InvalidValueError` naming the value and the fix
before anything is written, so a bad call loses nothing already recorded. The limits are
MLflow's own (``mlflow.utils.validation``).
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlnb.exceptions import InvalidValueError

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_PARAM_LENGTH",
    "MAX_TAG_LENGTH",
    "check_name",
    "flatten_params",
    "metric_value",
    "param_value",
]

# MLflow's limits (mlflow.utils.validation)
_NAME_RE = re.compile(r"^[/\w.\- :]*$")
MAX_NAME_LENGTH = 250
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000

_SIMPLE = (str, int, float, bool, type(None), Path)


def _describe(value: Any) -> str:
    kind = type(value).__name__
    shape = getattr(value, "shape", None)
    return f"a {kind} with shape {tuple(shape)}" if shape is not None else f"a {kind}"


def check_name(kind: str, key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidValueError(f"{kind} name {key!r} must be a non-empty string.")
    if len(key) > MAX_NAME_LENGTH or not _NAME_RE.match(key):
        raise InvalidValueError(
            f"{kind} name {key!r} is not allowed by MLflow: use at most {MAX_NAME_LENGTH} "
            "letters, digits, and _ - . / : or spaces."
        )
    return key


def metric_value(key: str, value: Any) -> float:
    """``value`` as a float, or a clear error for things that are not one number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, numbers.Real):
        return float(value)
    size = getattr(value, "size", None)
    if size == 1 and hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        item = value.item()
        if isinstance(item, numbers.Real):
            return float(item)
    raise InvalidValueError(
        f"metric {key!r} must be a number, got {_describe(value)}; log one number per "
        "metric (e.g. a mean or a score), or save the object with mlnb.log_artifact."
    )


def param_value(key: str, value: Any, strict: bool = True) -> str | None:
    """``value`` as MLflow param text; None (when not strict) for values that are not params."""
    simple = isinstance(value, _SIMPLE) or (
        isinstance(value, (list, tuple, dict, set))
        and len(value) <= 100
        and all(
            isinstance(v, _SIMPLE) for v in (value.values() if isinstance(value, dict) else value)
        )
    )
    if not simple and isinstance(value, numbers.Number):
        simple = True  # numpy scalars
    if not simple:
        if not strict:
            return None
        raise InvalidValueError(
            f"param {key!r} is {_describe(value)}; params hold short text such as numbers, "
            "strings or small lists: log a summary of it, or save it with mlnb.log_artifact."
        )
    text = str(value)
    if len(text) > MAX_PARAM_LENGTH:
        if not strict:
            return None
        raise InvalidValueError(
            f"param {key!r} is {len(text)} characters long; MLflow keeps at most "
            f"{MAX_PARAM_LENGTH}: log it as an artifact instead."
        )
    return text


def flatten_params(
    params: Mapping[str, Any], strict: bool, skipped: list[str] | None = None
) -> dict[str, str]:
    """Params as MLflow text: a dict becomes one param per key (``params.n_estimators``),
    nested dicts too; sets become sorted lists. A value that cannot be a param raises
    (``strict``) or is named in ``skipped``."""
    out: dict[str, str] = {}

    def add(key: str, value: Any, depth: int) -> None:
        if isinstance(value, Mapping) and value and depth < 5:
            for sub, inner in value.items():
                add(f"{key}.{sub}", inner, depth + 1)
            return
        if isinstance(value, (set, frozenset)):
            try:
                value = sorted(value)
            except TypeError:
                value = sorted(value, key=repr)
        try:
            name = check_name("param", key)
        except InvalidValueError:
            if strict:
                raise
            if skipped is not None:
                skipped.append(key)
            return
        text = param_value(name, value, strict=strict)
        if text is None:
            if skipped is not None:
                skipped.append(key)
            return
        out[name] = text

    for key, value in params.items():
        add(str(key) if not isinstance(key, str) else key, value, 0)
    return out
