"""A rolling window of live inputs per feature, checked for drift every N inputs or T
seconds: what a service keeps in memory (thread-safe, cheap to feed)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from mlnb.monitor._defaults import (
    DEFAULT_CHECK_EVERY,
    DEFAULT_CHECK_SECONDS,
    DEFAULT_MIN_SAMPLES,
    DEFAULT_WINDOW,
)
from mlnb.monitor._drift import DriftReport, FeatureDrift, feature_drift
from mlnb.monitor._profile import Profile

__all__ = ["DriftMonitor"]


class DriftMonitor:
    """Keeps the last ``window`` values of each profiled feature and computes drift.

    ``observe(records)`` appends (microseconds a record); ``due()`` is true once
    ``check_every`` records arrived since the last check, or ``check_seconds`` passed with at
    least one new record; ``check()`` computes a :class:`DriftReport` over the window and
    keeps it as ``last``; ``newly_drifted`` lists the features that crossed their threshold
    at that check (for an alert event), ``recovered`` those back under it.
    ``observe_and_check`` does both, returning a report only when a check ran.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        window: int = DEFAULT_WINDOW,
        check_every: int = DEFAULT_CHECK_EVERY,
        check_seconds: float = DEFAULT_CHECK_SECONDS,
        threshold: float | None = None,
        min_samples: int = DEFAULT_MIN_SAMPLES,
    ) -> None:
        self.profile = profile
        self.window = window
        self.check_every = check_every
        self.check_seconds = check_seconds
        self.threshold = threshold
        self.min_samples = min_samples
        self._numbers = {n for n, f in profile.features.items() if f.kind == "number"}
        self._values: dict[str, deque[Any]] = {
            name: deque(maxlen=window) for name in profile.features
        }
        self._rows: deque[int] = deque(maxlen=window)  # 1 per record, to count the window
        self._lock = threading.Lock()
        self._since = 0
        self._last_time = time.monotonic()
        self.seen = 0
        self.last: DriftReport | None = None
        self.newly_drifted: list[str] = []
        self.recovered: list[str] = []

    def observe(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append the profiled features of each record (a missing one is left out)."""
        with self._lock:
            for record in records:
                for name, values in self._values.items():
                    value = record.get(name)
                    if value is None:
                        continue
                    if name in self._numbers:
                        try:
                            value = float(value)
                        except (TypeError, ValueError):
                            continue
                        if math.isnan(value):
                            continue
                    values.append(value)
                self._rows.append(1)
                self._since += 1
                self.seen += 1

    def due(self) -> bool:
        if self._since >= self.check_every:
            return True
        return self._since > 0 and time.monotonic() - self._last_time >= self.check_seconds

    def check(self) -> DriftReport:
        """Drift of the current window against the profile (also kept as ``last``)."""
        import numpy as np

        with self._lock:
            snapshot = {
                name: (
                    np.fromiter(values, dtype=float, count=len(values))
                    if name in self._numbers
                    else list(values)
                )
                for name, values in self._values.items()
            }
            rows = len(self._rows)
            self._since = 0
            self._last_time = time.monotonic()
        features: dict[str, FeatureDrift] = {}
        for name, values in snapshot.items():
            feature = self.profile.features[name]
            threshold = self.threshold if name in self._numbers else None
            features[name] = feature_drift(
                feature, values, threshold=threshold, min_samples=self.min_samples
            )
        drifted = [name for name, f in features.items() if f.drifted]
        before = set(self.last.drifted) if self.last is not None else set()
        self.newly_drifted = [name for name in drifted if name not in before]
        self.recovered = sorted(before - set(drifted))
        self.last = DriftReport(self.profile.name, features, rows, drifted, [])
        return self.last

    def observe_and_check(self, records: Iterable[Mapping[str, Any]]) -> DriftReport | None:
        self.observe(records)
        return self.check() if self.due() else None
