"""The online drift monitor: a rolling window of live inputs per feature, checked for drift
every N inputs or T seconds. It is the one a service runs (``mlnb.serve`` owns its metrics
and events around it) and the one ``python -m benchmarks drift`` measures.

Guarantees: :meth:`DriftMonitor.observe` is O(1) per call and thread-safe (it is called on
a service's request path, in the event loop); the values are taken apart per feature only
by :meth:`DriftMonitor.check`, off the request path. Thresholds keep their meaning per
kind: ``threshold`` is the PSI above which a number drifted, ``p_value`` the chi-square
p-value below which a category drifted (see :func:`mlnb.monitor.feature_drift`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
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

log = logging.getLogger("mlnb.monitor")


class DriftMonitor:
    """Keeps the last ``window`` values of each profiled feature (``features``: a subset of
    the profile's, by default all of them) and computes drift.

    ``observe(records)`` appends; ``due()`` is true once ``check_every`` records arrived
    since the last check, or ``check_seconds`` passed with at least one new record;
    ``check()`` computes a :class:`DriftReport` over the window (a feature with no value in
    it is listed under ``absent``) and keeps it as ``last``; ``newly_drifted`` lists the
    features that crossed their threshold at that check (for an alert event), ``recovered``
    those back under it. ``observe_and_check`` does both, returning a report only when a
    check ran. ``start(on_check)`` checks in a background thread instead (when due, at most
    one check per ``min_seconds``), handing each report to ``on_check``; ``close()`` stops it.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        features: Iterable[str] | None = None,
        window: int = DEFAULT_WINDOW,
        check_every: int = DEFAULT_CHECK_EVERY,
        check_seconds: float = DEFAULT_CHECK_SECONDS,
        min_seconds: float = 0.0,
        threshold: float | None = None,
        p_value: float | None = None,
        min_samples: int = DEFAULT_MIN_SAMPLES,
    ) -> None:
        self.profile = profile
        names = list(profile.features) if features is None else list(features)
        unknown = [name for name in names if name not in profile.features]
        if unknown:
            raise ValueError(
                f"features not in profile {profile.name!r}: {', '.join(unknown[:8])}; "
                "watch only profiled features"
            )
        self.features = names
        self.window = window
        self.check_every = check_every
        self.check_seconds = check_seconds
        self.min_seconds = min_seconds
        self.threshold = threshold
        self.p_value = p_value
        self.min_samples = min_samples
        self._numbers = {n for n in names if profile.features[n].kind == "number"}
        self._values: dict[str, deque[Any]] = {name: deque(maxlen=window) for name in names}
        self._rows = 0  # records in the window, at most `window`
        # records not yet taken apart per feature (only the last `window` can matter)
        self._pending: deque[Mapping[str, Any]] = deque(maxlen=window)
        self._lock = threading.Lock()
        self._check_lock = threading.Lock()
        self._since = 0
        self._last_time = time.monotonic()
        self.seen = 0
        self.last: DriftReport | None = None
        self.newly_drifted: list[str] = []
        self.recovered: list[str] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def observe(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Add live records (a missing or non-numeric value of a number is left out)."""
        batch = records if isinstance(records, list) else list(records)
        with self._lock:
            self._pending.extend(batch)
            self._since += len(batch)
            self.seen += len(batch)
            self._rows = min(self.window, self._rows + len(batch))
            wake = self._since >= self.check_every
        if wake:
            self._wake.set()

    def due(self) -> bool:
        if self._since >= self.check_every:
            return True
        return self._since > 0 and time.monotonic() - self._last_time >= self.check_seconds

    def _take_pending(self) -> tuple[dict[str, Any], int]:
        """Move the pending records into the per-feature windows; a snapshot of them."""
        import numpy as np

        with self._lock:
            pending = list(self._pending)
            self._pending.clear()
            rows = self._rows
            self._since = 0
            self._last_time = time.monotonic()
        for record in pending:
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
        snapshot = {
            name: (
                np.fromiter(values, dtype=float, count=len(values))
                if name in self._numbers
                else list(values)
            )
            for name, values in self._values.items()
        }
        return snapshot, rows

    def check(self) -> DriftReport:
        """Drift of the current window against the profile (also kept as ``last``)."""
        with self._check_lock:
            snapshot, rows = self._take_pending()
            features: dict[str, FeatureDrift] = {}
            absent: list[str] = []
            for name, values in snapshot.items():
                if not len(values):
                    absent.append(name)
                    continue
                numeric = name in self._numbers
                features[name] = feature_drift(
                    self.profile.features[name],
                    values,
                    threshold=self.threshold if numeric else None,
                    p_value=None if numeric else self.p_value,
                    min_samples=self.min_samples,
                )
            drifted = [name for name, f in features.items() if f.drifted]
            before = set(self.last.drifted) if self.last is not None else set()
            self.newly_drifted = [name for name in drifted if name not in before]
            self.recovered = sorted(before - set(drifted))
            self.last = DriftReport(self.profile.name, features, rows, drifted, absent)
            return self.last

    def observe_and_check(self, records: Iterable[Mapping[str, Any]]) -> DriftReport | None:
        self.observe(records)
        return self.check() if self.due() else None

    # -- checking in the background (what a service does) ---------------------------------
    def start(self, on_check: Callable[[DriftReport], None]) -> None:
        """Check in a daemon thread whenever due; ``on_check`` gets each report."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, args=(on_check,), name="mlnb-drift", daemon=True
        )
        self._thread.start()

    def _run(self, on_check: Callable[[DriftReport], None]) -> None:
        last_seen = -1
        last_check = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.check_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            if self.seen == last_seen:
                continue  # nothing new since the last check
            gap = time.monotonic() - last_check
            if gap < self.min_seconds and self._stop.wait(self.min_seconds - gap):
                return
            last_seen = self.seen
            last_check = time.monotonic()
            try:
                on_check(self.check())
            except Exception:
                log.exception("the drift check failed")

    def close(self) -> None:
        """Stop the background checks (if started); the window stays readable."""
        self._stop.set()
        self._wake.set()
