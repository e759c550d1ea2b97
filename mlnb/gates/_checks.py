"""The gates themselves: inference regression, slices, noise stability, leakage hints.

Each function takes what the models answered on the holdout and returns :class:`Check`
objects; none of them loads a model or writes anything.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mlnb.exceptions import GateError
from mlnb.gates._metrics import Metric, Outputs
from mlnb.gates._report import FAILED, PASSED, SKIPPED, WARNING, Check

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "add_noise",
    "flip_rate",
    "leakage_check",
    "noise_check",
    "regression_check",
    "slice_checks",
    "slice_groups",
]

#: a numeric slice column with more distinct values than this is cut into quantile bins
MAX_CATEGORIES = 12
QUANTILE_BINS = 4


def regression_check(
    metric: Metric, candidate: float, champion: float | None, tolerance: float
) -> Check:
    """The candidate is at least as good as the champion, within ``tolerance``."""
    details: dict[str, Any] = {"candidate": candidate, "tolerance": tolerance}
    if champion is None:
        return Check(
            "regression",
            SKIPPED,
            f"{metric.name} {candidate:.4f}; no champion to compare with",
            details=details,
        )
    drop = metric.drop(candidate, champion)
    details.update(champion=champion, drop=drop)
    sign = ">=" if metric.higher_is_better else "<="
    bound = champion - tolerance if metric.higher_is_better else champion + tolerance
    ok = not math.isnan(candidate) and drop <= tolerance + 1e-12
    summary = (
        f"{metric.name} {candidate:.4f} vs champion {champion:.4f}: "
        f"{'meets' if ok else 'misses'} {sign} {bound:.4f} (tolerance {tolerance:g})"
    )
    return Check("regression", PASSED if ok else FAILED, summary, details=details)


def slice_groups(frame: pd.DataFrame, column: str) -> list[tuple[str, np.ndarray]]:
    """``(value, row mask)`` per slice: category values, or quantile bins of a numeric column."""
    import numpy as np
    import pandas as pd

    if column not in frame.columns:
        raise GateError(
            f"the holdout has no slice column {column!r}; columns: "
            f"{', '.join(map(str, frame.columns[:12]))}. Check --slice."
        )
    values = frame[column]
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and values.nunique() > MAX_CATEGORIES:
        bins = pd.qcut(values, QUANTILE_BINS, duplicates="drop")
        names = [f"({i.left:.4g}, {i.right:.4g}]" for i in bins.cat.categories]
        bins = bins.cat.rename_categories(names)
        labels = bins.astype(str).where(values.notna(), "(missing)")
        order = [*names, "(missing)"]  # low to high
    else:
        labels = values.astype(str).where(values.notna(), "(missing)")
        order = list(labels.value_counts().index)  # largest first
    groups: list[tuple[str, np.ndarray]] = []
    for value in order:
        mask = np.asarray(labels == value)
        if mask.any():
            groups.append((str(value), mask))
    return groups


def slice_checks(
    frame: pd.DataFrame,
    columns: Sequence[str],
    y: Any,
    metric: Metric,
    candidate: Outputs,
    champion: Outputs | None,
    *,
    min_rows: int,
    slice_tolerance: float,
    max_gap: float,
) -> tuple[list[Check], list[dict[str, Any]]]:
    """Per-slice metrics; the slice that lost most against the champion (hard gate
    ``slices``) and the largest gap between slices of the candidate (hard gate
    ``slice_gap``, a fairness threshold)."""
    import numpy as np

    y_values = np.asarray(y)
    rows: list[dict[str, Any]] = []
    for column in columns:
        for value, mask in slice_groups(frame, column):
            new = metric(y_values[mask], candidate.take(mask))
            row: dict[str, Any] = {
                "column": column,
                "value": value,
                "rows": int(mask.sum()),
                "candidate": new,
                "small": bool(mask.sum() < min_rows),
            }
            if champion is not None:
                old = metric(y_values[mask], champion.take(mask))
                row["champion"] = old
                row["drop"] = metric.drop(new, old)
            rows.append(row)
    if not columns:
        return [], rows
    gated = [r for r in rows if not r["small"] and not math.isnan(r["candidate"])]
    checks: list[Check] = []

    # against the champion, slice by slice
    if champion is None:
        checks.append(Check("slices", SKIPPED, "no champion to compare slices with"))
    else:
        compared = [r for r in gated if not math.isnan(r.get("drop", math.nan))]
        if not compared:
            checks.append(
                Check(
                    "slices", SKIPPED, f"no slice of {min_rows}+ rows has a defined {metric.name}"
                )
            )
        else:
            worst = max(compared, key=lambda r: r["drop"])
            ok = worst["drop"] <= slice_tolerance + 1e-12
            summary = (
                f"worst slice {worst['column']}={worst['value']} ({worst['rows']} rows): "
                f"{metric.name} {worst['candidate']:.4f} vs champion {worst['champion']:.4f}, "
                f"drop {worst['drop']:.4f} {'<=' if ok else '>'} {slice_tolerance:g}"
            )
            details = {
                "worst_drop": worst["drop"],
                "tolerance": slice_tolerance,
                "worst_column": worst["column"],
                "worst_value": worst["value"],
            }
            checks.append(Check("slices", PASSED if ok else FAILED, summary, details=details))

    # between slices of the candidate, per column
    gaps: list[tuple[float, dict[str, Any], dict[str, Any]]] = []
    for column in columns:
        mine = [r for r in gated if r["column"] == column]
        if len(mine) >= 2:
            ranked = sorted(mine, key=lambda r: float(r["candidate"]))
            if metric.higher_is_better:
                low, best = ranked[0], ranked[-1]
            else:
                low, best = ranked[-1], ranked[0]
            gaps.append((abs(best["candidate"] - low["candidate"]), best, low))
    if not gaps:
        checks.append(
            Check(
                "slice_gap",
                SKIPPED,
                f"fewer than two slices of {min_rows}+ rows with a defined {metric.name}",
            )
        )
    else:
        gap, best, low = max(gaps, key=lambda g: g[0])
        ok = gap <= max_gap + 1e-12
        summary = (
            f"{best['column']}: {metric.name} {best['candidate']:.4f} ({best['value']}) vs "
            f"{low['candidate']:.4f} ({low['value']}), gap {gap:.4f} "
            f"{'<=' if ok else '>'} {max_gap:g}"
        )
        details = {
            "gap": gap,
            "max_gap": max_gap,
            "column": best["column"],
            "best_value": best["value"],
            "worst_value": low["value"],
        }
        checks.append(Check("slice_gap", PASSED if ok else FAILED, summary, details=details))
    return checks, rows


def add_noise(X: pd.DataFrame, scale: float, seed: int) -> pd.DataFrame:
    """``X`` with Gaussian noise of ``scale`` times each numeric column's std added."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    noisy = X.copy()
    for column in X.columns:
        values = X[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        std = float(values.std(skipna=True)) if len(values) > 1 else 0.0
        if not math.isfinite(std) or std == 0.0:
            continue
        noisy[column] = values.astype(float) + rng.normal(0.0, scale * std, len(values))
    return noisy


def noise_check(
    task: str,
    predict: Callable[[pd.DataFrame], np.ndarray],
    X: pd.DataFrame,
    baseline: np.ndarray,
    y: Any,
    *,
    noise: float,
    max_flip_rate: float,
    seed: int,
    champion_rate: float | None = None,
) -> Check:
    """Share of predictions that change when every numeric input moves by a little noise
    (a class that flips; for regression, a value that moves by over 10% of the target's std)."""
    rate = flip_rate(task, predict(add_noise(X, noise, seed)), baseline, y)
    details: dict[str, Any] = {"flip_rate": rate, "noise": noise, "max_flip_rate": max_flip_rate}
    if champion_rate is not None:
        details["champion_flip_rate"] = champion_rate
    ok = rate <= max_flip_rate + 1e-12
    what = "predictions changed" if task == "regression" else "labels flipped"
    summary = (
        f"{rate:.1%} of {what} under noise of {noise:g}x each feature's std "
        f"({'<=' if ok else '>'} {max_flip_rate:.1%})"
    )
    if champion_rate is not None:
        summary += f"; champion {champion_rate:.1%}"
    return Check("noise", PASSED if ok else FAILED, summary, details=details)


def flip_rate(task: str, noisy: np.ndarray, baseline: np.ndarray, y: Any) -> float:
    import numpy as np

    if len(baseline) == 0:
        return 0.0
    if task == "regression":
        spread = float(np.nanstd(np.asarray(y, dtype=float))) or 1.0
        moved = np.abs(noisy.astype(float) - baseline.astype(float)) > 0.1 * spread
        return float(np.mean(moved))
    return float(np.mean(noisy != baseline))


def leakage_check(X: pd.DataFrame, y: Any, task: str, threshold: float) -> Check:
    """Features that alone predict the target almost perfectly: a hint of leakage (a
    warning, never a failure). Binary targets: univariate ROC AUC; more classes: a tree of
    one leaf per class; regression: the larger of Pearson's and Spearman's r squared;
    categories: the accuracy (or R squared) of each category's majority (or mean)."""
    scores: dict[str, float] = {}
    for column in X.columns:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                score = _univariate(X[column], y, task)
            except (ValueError, TypeError):
                continue
        if score is not None and math.isfinite(score):
            scores[str(column)] = score
    top = sorted(scores.items(), key=lambda kv: -kv[1])[:5]
    details: dict[str, Any] = {"threshold": threshold, "max_score": top[0][1] if top else 0.0}
    details["top"] = [{"feature": name, "score": value} for name, value in top]
    leaky = [(name, value) for name, value in top if value >= threshold]
    details["leaky"] = [name for name, _ in leaky]
    if not scores:
        return Check("leakage", SKIPPED, "no feature could be scored alone", hard=False)
    if not leaky:
        name, value = top[0]
        return Check(
            "leakage",
            PASSED,
            f"no single feature predicts the target (best {name!r}: {value:.3f} < {threshold:g})",
            hard=False,
            details=details,
        )
    shown = ", ".join(f"{name!r} ({value:.3f})" for name, value in leaky)
    return Check(
        "leakage",
        WARNING,
        f"{shown} alone predict(s) the target (score >= {threshold:g}): check that it is "
        "known at prediction time and is not derived from the label",
        hard=False,
        details=details,
    )


def _univariate(x: pd.Series, y: Any, task: str) -> float | None:
    import numpy as np
    import pandas as pd

    target = pd.Series(np.asarray(y), index=x.index)
    keep = x.notna() & target.notna()
    x, target = x[keep], target[keep]
    if len(x) < 10 or x.nunique() < 2:
        return None
    numeric = pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x)
    if not numeric:
        if x.nunique() > len(x) / 5:  # an id-like column explains any label in-sample
            return None
        if task == "regression":
            means = target.astype(float).groupby(x).transform("mean")
            total = float(((target - target.mean()) ** 2).sum())
            return 1.0 - float(((target - means) ** 2).sum()) / total if total else None
        majority = target.groupby(x).agg(lambda s: s.value_counts().index[0])
        return float((x.map(majority) == target).mean())
    values = x.astype(float).to_numpy()
    if task == "regression":
        t = target.astype(float).to_numpy()
        pearson = float(np.corrcoef(values, t)[0, 1])
        spearman = float(np.corrcoef(pd.Series(values).rank(), pd.Series(t).rank())[0, 1])
        return max(pearson**2, spearman**2)
    classes = target.unique()
    if len(classes) < 2:
        return None
    if len(classes) == 2:  # ROC AUC from ranks (Mann-Whitney U), ties averaged
        positive = (target == sorted(classes, key=str)[1]).to_numpy()
        ranks = pd.Series(values).rank().to_numpy()
        n_pos, n_neg = int(positive.sum()), int((~positive).sum())
        auc = (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        return max(float(auc), 1.0 - float(auc))
    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier(max_leaf_nodes=len(classes), random_state=0)
    tree.fit(values.reshape(-1, 1), target.astype(str))
    return float(tree.score(values.reshape(-1, 1), target.astype(str)))
