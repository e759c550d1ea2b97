"""``@mlnb.endpoint``: mark a function of an exported notebook as an HTTP endpoint.

A function named ``predict`` in an ``mlnb:export`` cell is an endpoint without it (POST
``/predict``). The decorator changes nothing else about the function: the notebook still
calls it as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["EndpointSpec", "endpoint", "spec_of"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class EndpointSpec:
    path: str
    #: merge concurrent requests into one call (DataFrame endpoints); None = when vectorized
    batch: bool | None = None
    name: str | None = None


def endpoint(path: str, *, batch: bool | None = None, name: str | None = None) -> Callable[[F], F]:
    """Serve the decorated function as ``POST path`` in the exported service."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"endpoint path {path!r} must start with '/', e.g. '/predict'.")

    def mark(func: F) -> F:
        func.__mlnb_endpoint__ = EndpointSpec(path, batch, name)  # type: ignore[attr-defined]
        return func

    return mark


def spec_of(func: Any) -> EndpointSpec | None:
    spec = getattr(func, "__mlnb_endpoint__", None)
    return spec if isinstance(spec, EndpointSpec) else None
