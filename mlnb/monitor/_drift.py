"""Drift of live values against a profile: PSI for numbers, chi-square (or Jensen-Shannon
distance without scipy) for categories."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mlnb.exceptions import MonitorError
from mlnb.monitor._data import to_frame
from mlnb.monitor._defaults import (
    DEFAULT_JS_THRESHOLD,
    DEFAULT_MIN_SAMPLES,
    DEFAULT_P_VALUE,
    DEFAULT_PSI_THRESHOLD,
    OTHER,
)
from mlnb.monitor._profile import FeatureProfile, Profile, _category_key, bin_index

__all__ = [
    "EPSILON",
    "MIN_EFFECT_JS",
    "DriftReport",
    "FeatureDrift",
    "drift_report",
    "feature_drift",
]

#: added to every bin's share before PSI / JS (an empty bin would make them infinite)
EPSILON = 1e-4
#: a chi-square test also needs this Jensen-Shannon distance to flag drift, so that a
#: large sample does not flag a negligible change
MIN_EFFECT_JS = 0.05


@dataclass
class FeatureDrift:
    """Drift of one feature's live values against its training profile.

    ``method`` is ``"psi"`` (numbers: population stability index over the profile's quantile
    bins plus one open bin below the training minimum and one above the maximum),
    ``"chi2"`` (categories, two-sample chi-square test; needs scipy) or ``"js"``
    (categories without scipy: Jensen-Shannon distance, base 2, in [0, 1]).
    ``statistic`` is the PSI, the chi-square statistic or the JS distance; ``threshold`` is
    what it is compared with: the PSI or JS distance above which the feature drifted, or for
    ``chi2`` the p-value below which it drifted. ``p_value`` is the chi-square test's (for
    PSI, its chi-square approximation; None without scipy for JS). ``n`` counts the live
    values used (missing ones left out); below :data:`DEFAULT_MIN_SAMPLES` nothing is
    flagged. ``expected`` and ``observed`` are the training and live shares per bin (lists,
    ``len(bin_edges) + 1`` long; the training share of each open outer bin is 1/(m+1) for m
    training values, the chance that a new value falls beyond their range) or per category
    (dicts).
    """

    feature: str
    method: Literal["psi", "chi2", "js"]
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    n: int
    expected: list[float] | dict[str, float]
    observed: list[float] | dict[str, float]
    bin_edges: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "method": self.method,
            "statistic": _finite(self.statistic),
            "p_value": _finite(self.p_value),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "n": self.n,
            "expected": self.expected,
            "observed": self.observed,
            "bin_edges": self.bin_edges,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureDrift:
        statistic = data.get("statistic")
        return cls(
            feature=str(data["feature"]),
            method=data["method"],
            statistic=float(statistic) if statistic is not None else math.inf,
            p_value=None if data.get("p_value") is None else float(data["p_value"]),
            threshold=float(data["threshold"]),
            drifted=bool(data["drifted"]),
            n=int(data["n"]),
            expected=data["expected"],
            observed=data["observed"],
            bin_edges=data.get("bin_edges"),
        )


@dataclass
class DriftReport:
    """Drift of every profiled feature found in the live data.

    ``n`` counts the live rows; ``drifted`` lists the features that drifted; ``absent`` the
    profiled features the live data did not have (they are filled with defaults, not
    checked). :meth:`to_dict` is the body of the service's ``GET /monitor/drift``.
    """

    profile: str
    features: dict[str, FeatureDrift]
    n: int
    drifted: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "n": self.n,
            "features": {k: f.to_dict() for k, f in self.features.items()},
            "drifted": list(self.drifted),
            "absent": list(self.absent),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReport:
        """A report from :meth:`to_dict`'s shape; MonitorError naming what is wrong."""
        try:
            features = {str(k): FeatureDrift.from_dict(v) for k, v in data["features"].items()}
            return cls(
                profile=str(data.get("profile") or "training"),
                features=features,
                n=int(data.get("n") or 0),
                drifted=[
                    str(d)
                    for d in data.get("drifted") or [k for k, f in features.items() if f.drifted]
                ],
                absent=[str(a) for a in data.get("absent") or []],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MonitorError(
                f"this is not a drift report (missing or malformed {exc}); expected the body of "
                "GET /monitor/drift: {profile, n, features, drifted}."
            ) from None


def feature_drift(
    feature: FeatureProfile,
    values: Sequence[Any] | Any,
    *,
    threshold: float | None = None,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    p_value: float | None = None,
) -> FeatureDrift:
    """Drift of the live ``values`` of one feature against its profile ``feature``.

    Numbers: PSI over the profile's quantile bins (with open outer bins, each share smoothed
    by :data:`EPSILON`); drifted when PSI > ``threshold`` (default
    :data:`DEFAULT_PSI_THRESHOLD`) and the change is significant (chi-square approximation,
    p < :data:`DEFAULT_P_VALUE`). Categories: a two-sample chi-square test of the training
    counts against the live counts (drifted when p < ``threshold``, default
    :data:`DEFAULT_P_VALUE`, and the JS distance is at least :data:`MIN_EFFECT_JS`); without
    scipy the JS distance (drifted above ``threshold``, default :data:`DEFAULT_JS_THRESHOLD`).
    ``p_value``, for categories tested with chi-square, is the p-value below which they
    drifted, ahead of ``threshold`` (it leaves numbers and the JS distance alone).
    Missing values are left out; nothing is flagged with fewer than ``min_samples`` values.
    """
    if feature.kind == "number":
        return _numeric_drift(feature, values, threshold, min_samples)
    return _category_drift(feature, values, threshold, min_samples, p_value)


def drift_report(
    profile: Profile,
    data: Any,
    *,
    threshold: float | None = None,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> DriftReport:
    """Drift of every profiled feature in ``data`` (a DataFrame, a list of records or a dict
    of lists). MonitorError when ``data`` shares no column with the profile."""
    frame = to_frame(data, what="the live data")
    present = [name for name in profile.features if name in frame.columns]
    if not present and len(frame.columns):
        raise MonitorError(
            f"the live data's columns ({', '.join(map(str, frame.columns[:8]))}) match none of "
            f"profile {profile.name!r}'s features ({', '.join(list(profile.features)[:8])}); "
            "is this the profile of this model's training data?"
        )
    features: dict[str, FeatureDrift] = {}
    for name in present:
        chosen = threshold if profile.features[name].kind == "number" else None
        features[name] = feature_drift(
            profile.features[name], frame[name], threshold=chosen, min_samples=min_samples
        )
    return DriftReport(
        profile=profile.name,
        features=features,
        n=len(frame),
        drifted=[name for name, f in features.items() if f.drifted],
        absent=[name for name in profile.features if name not in frame.columns],
    )


def _numeric_drift(
    feature: FeatureProfile, values: Any, threshold: float | None, min_samples: int
) -> FeatureDrift:
    import numpy as np
    import pandas as pd

    limit = DEFAULT_PSI_THRESHOLD if threshold is None else threshold
    array = values if isinstance(values, np.ndarray) and values.dtype.kind == "f" else None
    if array is None:
        array = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(
            dtype=float
        )
    array = array[np.isfinite(array)]
    n = len(array)
    edges = np.asarray(feature.bin_edges, dtype=float)
    # A new value falls beyond the largest (or below the smallest) of m training values
    # with probability 1/(m+1): the expected share of each open outer bin.
    outer = 1 / (max(feature.count, 1) + 1)
    inner = np.asarray(feature.bin_fractions, dtype=float) * (1 - 2 * outer)
    expected = np.asarray([outer, *inner, outer])
    if len(edges) < 2 or n == 0:
        empty = [0.0] * len(expected)
        return FeatureDrift(
            feature.name,
            "psi",
            0.0,
            None,
            limit,
            False,
            n,
            expected.tolist(),
            empty,
            feature.bin_edges,
        )
    counts = np.bincount(bin_index(edges, array), minlength=len(edges) + 1)
    observed = counts / n
    e = (expected + EPSILON) / (1 + EPSILON * len(expected))
    o = (observed + EPSILON) / (1 + EPSILON * len(observed))
    psi = float(np.sum((o - e) * np.log(o / e)))
    used = int(np.count_nonzero((expected > 0) | (observed > 0)))
    rows = max(feature.count, 1)
    p_value = _chi2_sf(psi / (1 / n + 1 / rows), max(used - 1, 1))
    drifted = n >= min_samples and psi > limit and (p_value is None or p_value < DEFAULT_P_VALUE)
    return FeatureDrift(
        feature.name,
        "psi",
        psi,
        p_value,
        limit,
        bool(drifted),
        n,
        expected.tolist(),
        observed.tolist(),
        feature.bin_edges,
    )


def _category_drift(
    feature: FeatureProfile,
    values: Any,
    threshold: float | None,
    min_samples: int,
    p_value_limit: float | None = None,
) -> FeatureDrift:
    import numpy as np

    live: dict[str, int] = {}
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        key = _category_key(value)
        if key not in feature.categories and feature.capped:
            key = OTHER
        live[key] = live.get(key, 0) + 1
    n = sum(live.values())
    keys = list(feature.categories) + [k for k in live if k not in feature.categories]
    expected = np.asarray([feature.categories.get(k, 0.0) for k in keys])
    observed = np.asarray([live.get(k, 0) for k in keys], dtype=float) / max(n, 1)
    js = _js_distance(expected, observed) if n and feature.categories else 0.0
    expected_doc = dict(zip(keys, expected.tolist(), strict=True))
    observed_doc = dict(zip(keys, observed.tolist(), strict=True))
    if _chdtrc() is None:
        limit = DEFAULT_JS_THRESHOLD if threshold is None else threshold
        drifted = n >= min_samples and js > limit
        return FeatureDrift(
            feature.name, "js", js, None, limit, bool(drifted), n, expected_doc, observed_doc
        )
    given = p_value_limit if p_value_limit is not None else threshold
    limit = DEFAULT_P_VALUE if given is None else given
    if n == 0 or len(keys) < 2 or not feature.categories:  # nothing to compare
        return FeatureDrift(
            feature.name, "chi2", 0.0, 1.0, limit, False, n, expected_doc, observed_doc
        )
    train_counts = np.maximum(np.round(expected * max(feature.count, 1)), 0)
    table = np.vstack([train_counts, observed * n])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        chi2, p_value = 0.0, 1.0
    else:
        # Pearson's chi-square test of homogeneity (as scipy's chi2_contingency without
        # Yates' correction, at a fraction of its cost on a 2 x k table)
        expected_counts = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
        chi2 = float(np.sum((table - expected_counts) ** 2 / expected_counts))
        p_value = float(_chdtrc()(table.shape[1] - 1, chi2))
    drifted = n >= min_samples and p_value < limit and js >= MIN_EFFECT_JS
    return FeatureDrift(
        feature.name, "chi2", chi2, p_value, limit, bool(drifted), n, expected_doc, observed_doc
    )


def _js_distance(p: Any, q: Any) -> float:
    import numpy as np

    p = (p + EPSILON) / np.sum(p + EPSILON)
    q = (q + EPSILON) / np.sum(q + EPSILON)
    m = (p + q) / 2
    divergence = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
    return float(math.sqrt(max(float(divergence), 0.0)))


def _chdtrc() -> Any:
    """scipy's chi-square survival function (a ufunc: microseconds, where
    ``scipy.stats.chi2.sf`` takes a quarter of a millisecond), or None without scipy."""
    try:
        from scipy.special import chdtrc
    except ImportError:
        return None
    return chdtrc


def _chi2_sf(statistic: float, df: int) -> float | None:
    """P(X > statistic) for a chi-square with ``df`` degrees of freedom (scipy, else the
    Wilson-Hilferty normal approximation)."""
    if not math.isfinite(statistic):
        return 0.0
    chdtrc = _chdtrc()
    if chdtrc is not None:
        return float(chdtrc(df, statistic))
    z = ((statistic / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))
    return 0.5 * math.erfc(z / math.sqrt(2))


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return value
