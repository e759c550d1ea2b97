"""The error every ``/mlnb/`` action raises for the browser: a status, what went wrong and
what to do about it (answered as :class:`mlnb.labserver._models.ErrorResponse`).
:class:`LabError` is defined in :mod:`mlnb.exceptions`, with every other error mlnb raises."""

from __future__ import annotations

from mlnb.exceptions import LabError

__all__ = ["LabError"]
