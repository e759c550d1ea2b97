"""Prometheus metrics of a service, in a registry of its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

__all__ = ["Metrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, service: Any) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, CPU, fds
        self.requests = Counter(
            "mlnb_requests", "Requests by endpoint and status", ["endpoint", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "mlnb_request_duration_seconds", "Request latency", ["endpoint"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "mlnb_requests_in_flight", "Requests being served", registry=self.registry
        )
        self.errors = Counter(
            "mlnb_errors", "Errors by endpoint and kind (validation, model_input, server)",
            ["endpoint", "kind"], registry=self.registry,
        )  # fmt: skip
        self.batch_rows = Histogram(
            "mlnb_batch_rows", "Rows per model call (micro-batching)", ["endpoint"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=self.registry,
        )  # fmt: skip
        self.batch_requests = Histogram(
            "mlnb_batch_requests", "Requests merged into one model call", ["endpoint"],
            buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry,
        )  # fmt: skip
        info = Gauge(
            "mlnb_model_info", "The model being served (value 1)", ["name", "version", "hash"],
            registry=self.registry,
        )  # fmt: skip
        for model in service.metadata.get("models", []):
            info.labels(
                str(model.get("name")), str(model.get("version")), str(model.get("hash"))[:12]
            ).set(1)
        self._latency_children: dict[str, Any] = {}
        self._request_children: dict[tuple[str, int], Any] = {}

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        latency = self._latency_children.get(endpoint)
        if latency is None:
            latency = self._latency_children[endpoint] = self.latency.labels(endpoint)
        latency.observe(seconds)
        key = (endpoint, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(endpoint, str(status))
        counter.inc()

    def batch_observer(self, endpoint: str) -> Callable[[int, int], None]:
        rows = self.batch_rows.labels(endpoint)
        requests = self.batch_requests.labels(endpoint)

        def observe(n_requests: int, n_rows: int) -> None:
            requests.observe(n_requests)
            rows.observe(n_rows)

        return observe

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
