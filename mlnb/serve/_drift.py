"""The service's drift: :class:`mlnb.monitor.DriftMonitor` (the one monitor, in
``mlnb.monitor``) checking in its background thread, and this thin owner of what the
service makes of each check: the ``mlnb_drift_*`` gauges, the ``drift`` alert event when a
feature crosses its threshold, and the body of ``GET /monitor/drift``.

Configured by :class:`ServeSettings` (``MLNB_DRIFT_WINDOW``, ``MLNB_DRIFT_EVERY``,
``MLNB_DRIFT_SECONDS``, ``MLNB_DRIFT_MIN_SECONDS``, ``MLNB_DRIFT_THRESHOLD`` for numbers,
``MLNB_DRIFT_P_VALUE`` for categories) through :meth:`ServeSettings.drift_options`, which
``python -m benchmarks drift`` measures too.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from mlnb.serve._events import Events
from mlnb.serve._metrics import Metrics
from mlnb.serve._settings import ServeSettings

__all__ = ["ServiceDrift"]

log = logging.getLogger("mlnb.serve.quality")


class ServiceDrift:
    """Watches ``features`` of the live inputs against ``profile`` for one service."""

    def __init__(
        self,
        profile: Any,
        features: list[str],
        settings: ServeSettings,
        metrics: Metrics,
        events: Events,
    ) -> None:
        from mlnb.monitor import DriftMonitor

        self.metrics = metrics
        self.events = events
        self.monitor = DriftMonitor(profile, features=features, **settings.drift_options())
        self.result: dict[str, Any] = {
            "profile": getattr(profile, "name", None),
            "n": 0,
            "features": {},
            "drifted": [],
            "checked_at": None,
            "window": self.monitor.window,
        }
        self.monitor.start(self._checked)

    @property
    def features(self) -> list[str]:
        return self.monitor.features

    def observe(self, records: list[dict[str, Any]]) -> None:
        """Add live inputs (on the request path, in the event loop: O(1))."""
        self.monitor.observe(records)

    def check(self) -> dict[str, Any]:
        """Check now (the background thread does it when due); the new body."""
        self._checked(self.monitor.check())
        return self.result

    def _checked(self, report: Any) -> None:
        features = {name: drift.to_dict() for name, drift in report.features.items()}
        for name, doc in features.items():
            self.metrics.drift_statistic.labels(name).set(float(doc.get("statistic") or 0.0))
            self.metrics.drift_detected.labels(name).set(1.0 if doc.get("drifted") else 0.0)
        self.metrics.drift_window.set(report.n)
        self.result = {
            "profile": report.profile,
            "n": report.n,
            "seen": self.monitor.seen,
            "window": self.monitor.window,
            "features": features,
            "drifted": sorted(report.drifted),
            "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        newly = self.monitor.newly_drifted
        if newly:
            self.events.emit(
                "drift",
                f"drift detected in {', '.join(newly)} over the last {report.n} inputs",
                features={f: features[f].get("statistic") for f in newly},
                window=report.n,
            )
        if self.monitor.recovered:
            log.info("drift cleared for %s", ", ".join(self.monitor.recovered))

    def close(self) -> None:
        self.monitor.close()
