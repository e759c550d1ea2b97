"""The metrics a gate compares, each with its task and its direction."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlnb.exceptions import GateError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["METRICS", "Metric", "Outputs", "default_metric", "get_metric"]


@dataclass
class Outputs:
    """What a model answered on some rows: labels or values, and class scores if any."""

    predictions: np.ndarray
    scores: np.ndarray | None = None  # predict_proba (n, k) or decision_function
    classes: np.ndarray | None = None

    def take(self, mask: np.ndarray) -> Outputs:
        scores = self.scores[mask] if self.scores is not None else None
        return Outputs(self.predictions[mask], scores, self.classes)


@dataclass(frozen=True)
class Metric:
    name: str
    task: str  # "classification" or "regression"
    higher_is_better: bool
    func: Callable[[Any, Outputs], float]
    needs_scores: bool = False

    def __call__(self, y: Any, outputs: Outputs) -> float:
        """The metric, NaN where it is undefined (one class in a slice, no rows)."""
        if len(y) == 0:
            return math.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return float(self.func(y, outputs))
            except ValueError:
                return math.nan

    def drop(self, new: float, old: float) -> float:
        """How much worse ``new`` is than ``old`` (negative when it is better)."""
        return old - new if self.higher_is_better else new - old


def _binary(y: Any) -> bool:
    import numpy as np

    return set(np.unique(np.asarray(y)).tolist()) <= {0, 1}


def _average(y: Any) -> str:
    return "binary" if _binary(y) else "macro"


def _accuracy(y: Any, o: Outputs) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y, o.predictions))


def _balanced_accuracy(y: Any, o: Outputs) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, o.predictions))


def _f1(y: Any, o: Outputs) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, o.predictions, average=_average(y), zero_division=0))


def _precision(y: Any, o: Outputs) -> float:
    from sklearn.metrics import precision_score

    return float(precision_score(y, o.predictions, average=_average(y), zero_division=0))


def _recall(y: Any, o: Outputs) -> float:
    from sklearn.metrics import recall_score

    return float(recall_score(y, o.predictions, average=_average(y), zero_division=0))


def _roc_auc(y: Any, o: Outputs) -> float:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    if o.scores is None:
        raise GateError("metric roc_auc needs a model with predict_proba or decision_function.")
    scores = o.scores
    if scores.ndim == 2 and scores.shape[1] == 2:
        scores = scores[:, 1]
    if scores.ndim == 1:
        if o.classes is not None and len(o.classes) == 2:
            return float(roc_auc_score(np.asarray(y) == o.classes[1], scores))
        return float(roc_auc_score(y, scores))
    return float(roc_auc_score(y, scores, multi_class="ovr", labels=o.classes))


def _r2(y: Any, o: Outputs) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(y, o.predictions)) if len(y) > 1 else math.nan


def _rmse(y: Any, o: Outputs) -> float:
    import numpy as np

    diff = np.asarray(y, dtype=float) - np.asarray(o.predictions, dtype=float)
    return float(np.sqrt(np.mean(diff**2)))


def _mae(y: Any, o: Outputs) -> float:
    import numpy as np

    diff = np.asarray(y, dtype=float) - np.asarray(o.predictions, dtype=float)
    return float(np.mean(np.abs(diff)))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", "classification", True, _accuracy),
        Metric("balanced_accuracy", "classification", True, _balanced_accuracy),
        Metric("f1", "classification", True, _f1),
        Metric("precision", "classification", True, _precision),
        Metric("recall", "classification", True, _recall),
        Metric("roc_auc", "classification", True, _roc_auc, needs_scores=True),
        Metric("r2", "regression", True, _r2),
        Metric("rmse", "regression", False, _rmse),
        Metric("mae", "regression", False, _mae),
    )
}


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name.lower()]
    except KeyError:
        raise GateError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}.") from None


def default_metric(task: str) -> Metric:
    return METRICS["accuracy" if task == "classification" else "r2"]
