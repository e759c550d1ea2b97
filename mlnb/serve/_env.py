"""Numbers from environment variables of the service: tuning values (``env_number``) fall
back to their default when bad (logged); sizes and limits (``env_int``) stop the service at
start-up with one line naming the variable, since a typo there changes what it accepts."""

from __future__ import annotations

import logging
import os
from typing import overload

__all__ = ["env_int", "env_number"]

log = logging.getLogger("mlnb.serve")


@overload
def env_number(name: str, default: float) -> float: ...
@overload
def env_number(name: str, default: None) -> float | None: ...
def env_number(name: str, default: float | None) -> float | None:
    """``float(os.environ[name])``, or ``default`` when unset, empty or not a number."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        log.error("%s=%r is not a number; using %s", name, raw, default)
        return default


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """``int(os.environ[name])`` (``default`` when unset or empty); not a whole number of at
    least ``minimum`` is a ServiceError naming the variable and the value."""
    raw = (os.environ.get(name) or "").strip().replace("_", "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        from mlnb.serve._service import ServiceError

        raise ServiceError(
            f"{name}={os.environ[name]!r} is not a whole number of at least {minimum}; set it "
            f"to one (e.g. {name}={default}) or unset it for the default ({default})."
        )
    return value
