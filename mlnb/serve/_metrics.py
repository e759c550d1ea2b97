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
        self.model_info = info = Gauge(
            "mlnb_model_info", "The model being served (value 1)", ["name", "version", "hash"],
            registry=self.registry,
        )  # fmt: skip
        for model in service.metadata.get("models", []):
            info.labels(
                str(model.get("name")), str(model.get("version")), str(model.get("hash"))[:12]
            ).set(1)
        # -- production safety nets (quality, drift, routing, breaker, audit, resources)
        r = self.registry
        self.filled = Counter(
            "mlnb_filled_fields", "Missing features filled from the profile",
            ["endpoint", "feature"], registry=r,
        )  # fmt: skip
        self.out_of_range = Counter(
            "mlnb_out_of_range", "Values far outside the training range", ["endpoint", "feature"],
            registry=r,
        )  # fmt: skip
        self.drift_statistic = Gauge(
            "mlnb_drift_statistic", "Drift statistic of live inputs (PSI, chi-square or JS)",
            ["feature"], registry=r,
        )  # fmt: skip
        self.drift_detected = Gauge(
            "mlnb_drift_detected", "1 when the feature has drifted", ["feature"], registry=r
        )
        self.drift_window = Gauge(
            "mlnb_drift_window_size", "Live inputs in the drift window", registry=r
        )
        self.alerts = Counter("mlnb_alerts", "Alert events by kind", ["kind"], registry=r)
        self.predictions = Counter(
            "mlnb_predictions", "Answers by endpoint and the model that gave them",
            ["endpoint", "role"], registry=r,
        )  # fmt: skip
        self.fallbacks = Counter(
            "mlnb_fallback", "Answers given by the fallback", ["endpoint", "reason"], registry=r
        )
        self.breaker_state = Gauge(
            "mlnb_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", ["endpoint"],
            registry=r,
        )  # fmt: skip
        self.shadow = Counter(
            "mlnb_shadow", "Shadow calls of the challenger by outcome (agree, disagree, error, "
            "dropped)", ["endpoint", "outcome"], registry=r,
        )  # fmt: skip
        self.audit_records = Counter("mlnb_audit_records", "Audit records written", registry=r)
        self.audit_dropped = Counter(
            "mlnb_audit_dropped", "Audit records lost (write errors)", registry=r
        )
        self.feedback = Counter(
            "mlnb_feedback", "Feedback labels received", ["endpoint"], registry=r
        )
        self.live_accuracy = Gauge(
            "mlnb_live_accuracy", "Accuracy of the answers given feedback labels", ["endpoint"],
            registry=r,
        )  # fmt: skip
        self.rss = Gauge("mlnb_rss_bytes", "Resident memory of this process", registry=r)
        self.rss_baseline = Gauge(
            "mlnb_rss_baseline_bytes", "Resident memory after warm-up", registry=r
        )
        self.error_rate = Gauge(
            "mlnb_error_rate", "Share of 5xx answers over the last check interval", registry=r
        )
        self.latency_p99 = Gauge(
            "mlnb_latency_p99_seconds", "p99 latency over the last check interval", registry=r
        )
        self.reloads = Counter(
            "mlnb_model_reloads", "Model reloads (following an alias) by outcome", ["outcome"],
            registry=r,
        )  # fmt: skip
        self.recent_latencies: list[float] = []
        self.recent_statuses = [0, 0]  # answers, 5xx answers since the last resource check
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
        recent = self.recent_latencies
        if len(recent) < 10_000:
            recent.append(seconds)
        self.recent_statuses[0] += 1
        if status >= 500:
            self.recent_statuses[1] += 1

    def batch_observer(self, endpoint: str) -> Callable[[int, int], None]:
        rows = self.batch_rows.labels(endpoint)
        requests = self.batch_requests.labels(endpoint)

        def observe(n_requests: int, n_rows: int) -> None:
            requests.observe(n_requests)
            rows.observe(n_rows)

        return observe

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
