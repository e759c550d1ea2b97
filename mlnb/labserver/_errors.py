"""The error every ``/mlnb/`` action raises for the browser: a status, what went wrong and
what to do about it (answered as :class:`mlnb.labserver._models.ErrorResponse`)."""

from __future__ import annotations

__all__ = ["LabError"]


class LabError(Exception):
    """An error answered to the browser as ``{"error": ..., "hint": ...}`` with ``status``."""

    def __init__(self, status: int, error: str, hint: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.hint = hint
