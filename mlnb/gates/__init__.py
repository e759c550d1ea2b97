"""Promotion gates: the checks a model version passes before it becomes the champion, and
the human button that moves the ``champion`` alias (and back).

>>> from mlnb import gates
>>> report = gates.run_gates("models:/bc/2", against="champion",
...                          data="holdout.csv", target="target", slices=["region"])
>>> print(report.render()); report.passed
>>> gates.promote("bc", 2, data="holdout.csv", target="target")
>>> gates.rollback("bc")

The gates: inference regression (the candidate's metric is at least the champion's minus a
tolerance), metrics per slice (the slice that lost most against the champion, and the gap
between the best and worst slice of the candidate), noise stability (the share of
predictions that change under small Gaussian noise), and a leakage hint (a feature that
alone predicts the target almost perfectly; a warning). Needs scikit-learn and pandas.
"""

from __future__ import annotations

from mlnb.gates._metrics import METRICS
from mlnb.gates._promote import (
    HISTORY_TAG,
    PromotionResult,
    champion_history,
    promote,
    rollback,
)
from mlnb.gates._report import Check, GateReport
from mlnb.gates._run import run_gates

__all__ = [
    "HISTORY_TAG",
    "METRICS",
    "Check",
    "GateReport",
    "PromotionResult",
    "champion_history",
    "promote",
    "rollback",
    "run_gates",
]
