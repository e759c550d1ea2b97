"""Alert events of a service: one JSON log line (level warning), a counter
(``mlnb_alerts_total{kind=}``) and a line appended to ``events.jsonl`` next to the audit log."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from mlnb.serve._metrics import Metrics

__all__ = ["Events"]

log = logging.getLogger("mlnb.serve.events")


class Events:
    def __init__(self, metrics: Metrics, path: Path | None) -> None:
        self.metrics = metrics
        self.path = path
        self._lock = threading.Lock()
        self.recent: list[dict[str, Any]] = []  # the last 100 events, for /version

    def emit(self, kind: str, message: str, **details: Any) -> dict[str, Any]:
        """Record an alert event (callable from any thread)."""
        event = {
            "kind": "event",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "event": kind,
            "message": message,
            **details,
        }
        self.metrics.alerts.labels(kind).inc()
        log.warning(message, extra={"event": kind, "details": details})
        with self._lock:
            self.recent = [*self.recent[-99:], event]
            if self.path is not None:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    with self.path.open("ab") as out:
                        out.write(orjson.dumps(event, default=str) + b"\n")
                except OSError as exc:
                    log.error("cannot append to %s: %s", self.path, exc)
        return event
