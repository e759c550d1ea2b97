"""Resource alerts: RSS, p99 latency and error rate, checked by a background thread every
``MLNB_RESOURCE_INTERVAL`` seconds (5) and exported as gauges.

Alert events: ``rss`` when the resident memory grows past ``MLNB_RSS_ALERT_FACTOR`` (2.0)
times its value after warm-up (the first check after ``MLNB_WARMUP_REQUESTS`` answers, 200),
``error_rate`` when more than ``MLNB_ERROR_RATE_ALERT`` (0.05) of the answers of an interval
were 5xx, ``latency`` when the interval's p99 exceeds ``MLNB_LATENCY_ALERT_MS`` (unset: no
alert). Each alert fires once and re-arms when the value is back under its threshold.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from mlnb.serve._events import Events
from mlnb.serve._metrics import Metrics
from mlnb.serve._settings import ServeSettings

__all__ = ["ResourceMonitor"]

log = logging.getLogger("mlnb.serve.resources")


class ResourceMonitor:
    def __init__(
        self, metrics: Metrics, events: Events, settings: ServeSettings | None = None
    ) -> None:
        import psutil

        settings = settings or ServeSettings()
        self.metrics = metrics
        self.events = events
        self.process = psutil.Process()
        self.interval = settings.resource_interval
        self.factor = settings.rss_alert_factor
        self.warmup = settings.warmup_requests
        self.error_rate_limit: float | None = settings.error_rate_alert
        latency_ms = settings.latency_alert_ms
        self.latency_limit = None if latency_ms is None else latency_ms / 1000
        self.baseline: int | None = None
        self.answers = 0
        self.last: dict[str, Any] = {}
        self._firing: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlnb-resources", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:
                log.exception("the resource check failed")

    def _alert(self, kind: str, firing: bool, message: str, **details: Any) -> None:
        if firing and kind not in self._firing:
            self._firing.add(kind)
            self.events.emit(kind, message, **details)
        elif not firing:
            self._firing.discard(kind)

    def check(self) -> dict[str, Any]:
        metrics = self.metrics
        rss = int(self.process.memory_info().rss)
        metrics.rss.set(rss)
        latencies, metrics.recent_latencies = metrics.recent_latencies, []
        (answers, errors), metrics.recent_statuses = metrics.recent_statuses, [0, 0]
        self.answers += answers
        if self.baseline is None and self.answers >= self.warmup:
            self.baseline = rss
            metrics.rss_baseline.set(rss)
        if self.baseline is not None:
            limit = self.factor * self.baseline
            self._alert(
                "rss",
                rss > limit,
                f"resident memory {rss / 2**20:.0f} MiB is over {self.factor:g}x its value "
                f"after warm-up ({self.baseline / 2**20:.0f} MiB)",
                rss=rss,
                baseline=self.baseline,
            )
        rate = errors / answers if answers else 0.0
        metrics.error_rate.set(rate)
        if self.error_rate_limit is not None and answers >= 20:
            self._alert(
                "error_rate",
                rate > self.error_rate_limit,
                f"{rate:.1%} of the last {answers} answers were server errors "
                f"(alert above {self.error_rate_limit:.1%})",
                error_rate=rate,
            )
        p99 = 0.0
        if latencies:
            latencies.sort()
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        metrics.latency_p99.set(p99)
        if self.latency_limit is not None and latencies:
            self._alert(
                "latency",
                p99 > self.latency_limit,
                f"p99 latency {p99 * 1000:.0f} ms over the last {len(latencies)} answers "
                f"(alert above {self.latency_limit * 1000:.0f} ms)",
                p99_ms=p99 * 1000,
            )
        self.last = {
            "rss_bytes": rss,
            "rss_baseline_bytes": self.baseline,
            "rss_alert_factor": self.factor,
            "error_rate": rate,
            "p99_latency_ms": p99 * 1000,
        }
        return self.last

    def close(self) -> None:
        self._stop.set()
