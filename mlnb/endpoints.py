"""``@mlnb.endpoint`` and ``@mlnb.fallback``: mark functions of an exported notebook.

A function named ``predict`` in an ``mlnb:export`` cell is an endpoint without it (POST
``/predict``). ``@mlnb.fallback("/predict")`` marks a baseline (a simple model or a rule) that
answers for that endpoint when its circuit breaker is open or the primary model fails. The
decorators change nothing else about the function: the notebook still calls it as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["EndpointSpec", "endpoint", "fallback", "fallback_of", "spec_of"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class EndpointSpec:
    path: str
    #: merge concurrent requests into one call (DataFrame endpoints); None = when vectorized
    batch: bool | None = None
    name: str | None = None


def _check_path(path: object) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"endpoint path {path!r} must start with '/', e.g. '/predict'.")
    return path


def endpoint(path: str, *, batch: bool | None = None, name: str | None = None) -> Callable[[F], F]:
    """Serve the decorated function as ``POST path`` in the exported service."""
    _check_path(path)

    def mark(func: F) -> F:
        func.__mlnb_endpoint__ = EndpointSpec(path, batch, name)  # type: ignore[attr-defined]
        return func

    return mark


def fallback(path: str = "/predict") -> Callable[[F], F]:
    """Answer for the endpoint ``path`` when its model fails or its circuit breaker is open.

    The function takes what the endpoint takes (a DataFrame for ``/predict``) and returns
    the same kind of answer, e.g. ``@mlnb.fallback("/predict")`` above
    ``def baseline(df): return [1] * len(df)``.
    """
    _check_path(path)

    def mark(func: F) -> F:
        func.__mlnb_fallback__ = path  # type: ignore[attr-defined]
        return func

    return mark


def spec_of(func: Any) -> EndpointSpec | None:
    spec = getattr(func, "__mlnb_endpoint__", None)
    return spec if isinstance(spec, EndpointSpec) else None


def fallback_of(func: Any) -> str | None:
    """The endpoint path ``func`` is the fallback of (None when it is not one)."""
    path = getattr(func, "__mlnb_fallback__", None)
    return path if isinstance(path, str) else None
