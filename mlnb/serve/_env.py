"""Numbers from environment variables of the service (a bad value is logged, not fatal)."""

from __future__ import annotations

import logging
import os
from typing import overload

__all__ = ["env_number"]

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
