"""Every knob of an exported service, read once from the environment into :class:`ServeSettings`.

``ServeSettings.from_env()`` is the only place in ``mlnb.serve`` that reads an ``MLNB_*``
variable; the parts of the service get their values from it. The failure policy is
``mlnb.config``'s: an unset or empty variable takes the default below; any other value the
knob does not accept is a :class:`ServiceError` at start-up, one line naming the variable,
the value, what is allowed and the fix (``mlnb serve`` prints it and exits with 6).

:data:`KNOBS` documents each knob (variable, default, meaning); the README's table of
service settings is :func:`settings_table`, and a test keeps the two equal.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb.config import env_choice, env_flag, env_float, env_int, env_str
from mlnb.monitor import (
    DEFAULT_CHECK_EVERY,
    DEFAULT_CHECK_SECONDS,
    DEFAULT_P_VALUE,
    DEFAULT_PSI_THRESHOLD,
    DEFAULT_WINDOW,
)
from mlnb.serve._appendfile import SYNC_MODES
from mlnb.serve._service import ServiceError

__all__ = [
    "DEFAULT_TIMEOUT_HEADER_READ",
    "DEFAULT_TIMEOUT_KEEP_ALIVE",
    "KNOBS",
    "LOG_LEVELS",
    "ROUTING_MODES",
    "SYNC_MODES",
    "Knob",
    "ServeSettings",
    "settings_table",
]

DEFAULT_TIMEOUT_HEADER_READ = 10.0
DEFAULT_TIMEOUT_KEEP_ALIVE = 5.0
ROUTING_MODES = ("off", "shadow", "canary")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
SYNC_HINT = (
    "fsync: nothing answered is lost, even on power loss; write: survives a crash of the "
    "service, not of the machine; async: the last ~50 ms of answers may be lost"
)


@dataclass(frozen=True)
class Knob:
    """One documented setting: its field, variable, default as shown, meaning, and a
    valid value other than the default (the test sets it and sees the field change)."""

    field: str
    env: str
    default: str
    help: str
    example: str


KNOBS: tuple[Knob, ...] = (
    Knob(
        "api_key",
        "MLNB_API_KEY",
        "none",
        "key every request but the probes must send (`X-API-Key` or `Authorization: Bearer`)",
        "s3cret",
    ),
    Knob(
        "max_body_bytes",
        "MLNB_MAX_BODY_BYTES",
        "1048576",
        "largest request body in bytes (a 413 past it)",
        "2048",
    ),
    Knob(
        "batching",
        "MLNB_BATCHING",
        "per endpoint",
        "micro-batch concurrent requests (`1`/`0`); unset: on where the endpoint is vectorized",
        "0",
    ),
    Knob(
        "max_batch_rows",
        "MLNB_MAX_BATCH_ROWS",
        "512",
        "most records in one micro-batched model call",
        "64",
    ),
    Knob(
        "service_dir",
        "MLNB_SERVICE_DIR",
        "none",
        "the folder `create_app()` serves when given none (`mlnb serve DIR` sets it)",
        "/srv/svc",
    ),
    Knob(
        "log_level",
        "MLNB_LOG_LEVEL",
        "INFO",
        "level of the JSON log lines: DEBUG, INFO, WARNING, ERROR, CRITICAL",
        "debug",
    ),
    Knob(
        "signing_key",
        "MLNB_SIGNING_KEY",
        "none",
        "with it, the export's signature is required and checked before anything loads",
        "k3y",
    ),
    Knob(
        "cors_origins",
        "MLNB_CORS_ORIGINS",
        "none",
        "comma-separated origins that may call the service from a browser (no wildcard)",
        "https://app.example",
    ),
    Knob(
        "timeout_header_read",
        "MLNB_TIMEOUT_HEADER_READ",
        "10",
        "seconds a connection has to send complete request headers (`--timeout-header-read`)",
        "2.5",
    ),
    Knob(
        "timeout_keep_alive",
        "MLNB_TIMEOUT_KEEP_ALIVE",
        "5",
        "seconds an idle kept-alive connection stays open (`--timeout-keep-alive`)",
        "1",
    ),
    Knob(
        "limit_concurrency",
        "MLNB_LIMIT_CONCURRENCY",
        "from the open-files limit",
        "connections per worker; past it a 503 with `Retry-After` (`--limit-concurrency`)",
        "50",
    ),
    Knob(
        "audit",
        "MLNB_AUDIT",
        "on",
        "the audit log of every answer (`off`: no log, no `/feedback`)",
        "off",
    ),
    Knob(
        "audit_dir",
        "MLNB_AUDIT_DIR",
        "`DIR/audit`",
        "folder of the audit log and `events.jsonl`",
        "/var/log/svc",
    ),
    Knob(
        "audit_sync",
        "MLNB_AUDIT_SYNC",
        "fsync",
        "what an answer waits for: `fsync`, `write` or `async` (see below)",
        "write",
    ),
    Knob(
        "audit_max_bytes",
        "MLNB_AUDIT_MAX_BYTES",
        "67108864",
        "size in bytes at which an audit file rotates",
        "1_000_000",
    ),
    Knob("drift", "MLNB_DRIFT", "on", "the online drift monitor (`off`: none)", "off"),
    Knob(
        "drift_window",
        "MLNB_DRIFT_WINDOW",
        str(DEFAULT_WINDOW),
        "live inputs kept per feature",
        "200",
    ),
    Knob(
        "drift_every",
        "MLNB_DRIFT_EVERY",
        str(DEFAULT_CHECK_EVERY),
        "a check after this many input rows ...",
        "50",
    ),
    Knob(
        "drift_seconds",
        "MLNB_DRIFT_SECONDS",
        f"{DEFAULT_CHECK_SECONDS:g}",
        "... or after this many seconds with new inputs",
        "0.5",
    ),
    Knob(
        "drift_min_seconds",
        "MLNB_DRIFT_MIN_SECONDS",
        "1",
        "at most one check per this many seconds under load",
        "0.1",
    ),
    Knob(
        "drift_threshold",
        "MLNB_DRIFT_THRESHOLD",
        f"{DEFAULT_PSI_THRESHOLD:g}",
        "PSI above which a number has drifted (numbers only)",
        "0.25",
    ),
    Knob(
        "drift_p_value",
        "MLNB_DRIFT_P_VALUE",
        f"{DEFAULT_P_VALUE:g}",
        "chi-square p-value below which a category has drifted (categories only)",
        "0.001",
    ),
    Knob(
        "challenger",
        "MLNB_CHALLENGER",
        "none",
        "a second model version, e.g. `models:/NAME@challenger` (`--challenger`)",
        "models:/m@challenger",
    ),
    Knob(
        "routing",
        "MLNB_ROUTING",
        "the export's, else shadow",
        "`shadow`, `canary` or `off` (`--routing`)",
        "canary",
    ),
    Knob(
        "canary_weight",
        "MLNB_CANARY_WEIGHT",
        "the export's, else 0.1",
        "share of requests the challenger answers in canary mode, 0 to 1",
        "0.5",
    ),
    Knob(
        "shadow_window_ms",
        "MLNB_SHADOW_WINDOW_MS",
        "100",
        "shadow calls gathered this long are one model call (longer when the "
        "challenger's calls would take more than 3% of one core)",
        "10",
    ),
    Knob(
        "follow",
        "MLNB_FOLLOW",
        "the export's",
        "registry alias followed for hot reload, e.g. `champion` (`--follow`; `off`: none)",
        "champion",
    ),
    Knob(
        "follow_interval",
        "MLNB_FOLLOW_INTERVAL",
        "5",
        "seconds between checks of the followed alias",
        "1",
    ),
    Knob(
        "breaker_failures",
        "MLNB_BREAKER_FAILURES",
        "5",
        "consecutive failures or budget overruns that open an endpoint's breaker",
        "3",
    ),
    Knob(
        "breaker_cooldown_s",
        "MLNB_BREAKER_COOLDOWN_S",
        "10",
        "seconds an open breaker waits before a probe",
        "0.5",
    ),
    Knob(
        "latency_budget_ms",
        "MLNB_LATENCY_BUDGET_MS",
        "none",
        "an answer slower than this counts as a failure for the breaker",
        "50",
    ),
    Knob(
        "resources", "MLNB_RESOURCES", "on", "the resource gauges and alerts (`off`: none)", "off"
    ),
    Knob(
        "resource_interval", "MLNB_RESOURCE_INTERVAL", "5", "seconds between resource checks", "1"
    ),
    Knob(
        "rss_alert_factor",
        "MLNB_RSS_ALERT_FACTOR",
        "2",
        "an `rss` alert past this multiple of the RSS after warm-up",
        "3",
    ),
    Knob(
        "warmup_requests",
        "MLNB_WARMUP_REQUESTS",
        "200",
        "answers before the RSS baseline is taken",
        "10",
    ),
    Knob(
        "error_rate_alert",
        "MLNB_ERROR_RATE_ALERT",
        "0.05",
        "an `error_rate` alert past this share of 5xx answers in an interval",
        "0.2",
    ),
    Knob(
        "latency_alert_ms",
        "MLNB_LATENCY_ALERT_MS",
        "none",
        "a `latency` alert when an interval's p99 exceeds this",
        "250",
    ),
)


@dataclass(frozen=True)
class ServeSettings:
    """What a service was told by its environment (see :data:`KNOBS`)."""

    # the first four in the order of earlier versions (positional construction)
    api_key: str | None = dataclasses.field(default=None, repr=False)  # secrets: not shown
    max_body_bytes: int = 1024 * 1024
    batching: bool | None = None  # None: per endpoint (on when vectorized)
    max_batch_rows: int = 512
    service_dir: str | None = None
    log_level: str = "INFO"
    signing_key: str | None = dataclasses.field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    timeout_header_read: float = DEFAULT_TIMEOUT_HEADER_READ
    timeout_keep_alive: float = DEFAULT_TIMEOUT_KEEP_ALIVE
    limit_concurrency: int | None = None
    audit: bool = True
    audit_dir: Path | None = None
    audit_sync: str = "fsync"
    audit_max_bytes: int = 64 * 1024 * 1024
    drift: bool = True
    drift_window: int = DEFAULT_WINDOW
    drift_every: int = DEFAULT_CHECK_EVERY
    drift_seconds: float = DEFAULT_CHECK_SECONDS
    drift_min_seconds: float = 1.0
    drift_threshold: float = DEFAULT_PSI_THRESHOLD
    drift_p_value: float = DEFAULT_P_VALUE
    challenger: str | None = None
    routing: str | None = None  # None: the export's, else shadow
    canary_weight: float | None = None  # None: the export's, else 0.1
    shadow_window_ms: float = 100.0
    follow: str | None = None  # None: the export's
    follow_interval: float = 5.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 10.0
    latency_budget_ms: float | None = None
    resources: bool = True
    resource_interval: float = 5.0
    rss_alert_factor: float = 2.0
    warmup_requests: int = 200
    error_rate_alert: float = 0.05
    latency_alert_ms: float | None = None

    @classmethod
    def from_env(cls) -> ServeSettings:
        """Every knob from its variable; a bad value is a ServiceError naming it."""
        from mlnb.serve._cors import parse_origins

        E = ServiceError
        return cls(
            service_dir=env_str("MLNB_SERVICE_DIR"),
            log_level=env_choice("MLNB_LOG_LEVEL", "info", LOG_LEVELS, error=E).upper(),
            api_key=env_str("MLNB_API_KEY"),
            signing_key=env_str("MLNB_SIGNING_KEY"),
            max_body_bytes=env_int("MLNB_MAX_BODY_BYTES", 1024 * 1024, minimum=1, error=E),
            batching=env_flag("MLNB_BATCHING", None, error=E),
            max_batch_rows=env_int("MLNB_MAX_BATCH_ROWS", 512, minimum=1, error=E),
            cors_origins=tuple(parse_origins(env_str("MLNB_CORS_ORIGINS") or "")),
            timeout_header_read=env_float(
                "MLNB_TIMEOUT_HEADER_READ", DEFAULT_TIMEOUT_HEADER_READ, above=0, error=E
            ),
            timeout_keep_alive=env_float(
                "MLNB_TIMEOUT_KEEP_ALIVE", DEFAULT_TIMEOUT_KEEP_ALIVE, above=0, error=E
            ),
            limit_concurrency=env_int("MLNB_LIMIT_CONCURRENCY", None, minimum=1, error=E),
            audit=env_flag("MLNB_AUDIT", True, error=E),
            audit_dir=_path(env_str("MLNB_AUDIT_DIR")),
            audit_sync=env_choice("MLNB_AUDIT_SYNC", "fsync", SYNC_MODES, hint=SYNC_HINT, error=E),
            audit_max_bytes=env_int("MLNB_AUDIT_MAX_BYTES", 64 * 1024 * 1024, minimum=1, error=E),
            drift=env_flag("MLNB_DRIFT", True, error=E),
            drift_window=env_int("MLNB_DRIFT_WINDOW", DEFAULT_WINDOW, minimum=1, error=E),
            drift_every=env_int("MLNB_DRIFT_EVERY", DEFAULT_CHECK_EVERY, minimum=1, error=E),
            drift_seconds=env_float("MLNB_DRIFT_SECONDS", DEFAULT_CHECK_SECONDS, above=0, error=E),
            drift_min_seconds=env_float("MLNB_DRIFT_MIN_SECONDS", 1.0, minimum=0, error=E),
            drift_threshold=env_float(
                "MLNB_DRIFT_THRESHOLD", DEFAULT_PSI_THRESHOLD, above=0, error=E
            ),
            drift_p_value=env_float(
                "MLNB_DRIFT_P_VALUE", DEFAULT_P_VALUE, above=0, maximum=1, error=E
            ),
            challenger=env_str("MLNB_CHALLENGER"),
            routing=env_choice("MLNB_ROUTING", None, ROUTING_MODES, error=E),
            canary_weight=env_float("MLNB_CANARY_WEIGHT", None, minimum=0, maximum=1, error=E),
            shadow_window_ms=env_float("MLNB_SHADOW_WINDOW_MS", 100.0, minimum=0, error=E),
            follow=env_str("MLNB_FOLLOW"),
            follow_interval=env_float("MLNB_FOLLOW_INTERVAL", 5.0, above=0, error=E),
            breaker_failures=env_int("MLNB_BREAKER_FAILURES", 5, minimum=1, error=E),
            breaker_cooldown_s=env_float("MLNB_BREAKER_COOLDOWN_S", 10.0, minimum=0, error=E),
            latency_budget_ms=env_float("MLNB_LATENCY_BUDGET_MS", None, above=0, error=E),
            resources=env_flag("MLNB_RESOURCES", True, error=E),
            resource_interval=env_float("MLNB_RESOURCE_INTERVAL", 5.0, above=0, error=E),
            rss_alert_factor=env_float("MLNB_RSS_ALERT_FACTOR", 2.0, above=0, error=E),
            warmup_requests=env_int("MLNB_WARMUP_REQUESTS", 200, minimum=0, error=E),
            error_rate_alert=env_float(
                "MLNB_ERROR_RATE_ALERT", 0.05, minimum=0, maximum=1, error=E
            ),
            latency_alert_ms=env_float("MLNB_LATENCY_ALERT_MS", None, above=0, error=E),
        )

    def replace(self, **changes: Any) -> ServeSettings:
        """A copy with some knobs changed (``settings.replace(audit=False)``)."""
        return dataclasses.replace(self, **changes)

    def drift_options(self) -> dict[str, Any]:
        """The keyword arguments of ``mlnb.monitor.DriftMonitor`` this service runs with."""
        return {
            "window": self.drift_window,
            "check_every": self.drift_every,
            "check_seconds": self.drift_seconds,
            "min_seconds": self.drift_min_seconds,
            "threshold": self.drift_threshold,
            "p_value": self.drift_p_value,
        }

    def routing_for(self, metadata: dict[str, Any]) -> tuple[str, float]:
        """The routing mode and canary weight: these settings, else the export's, else
        shadow and 0.1 (an export's value that is not one is logged and replaced)."""
        import logging

        log = logging.getLogger("mlnb.serve")
        mode = self.routing or str(metadata.get("routing") or "shadow").lower()
        if mode not in ROUTING_MODES:
            log.error("the export's routing %r is not one of %s; using shadow", mode, ROUTING_MODES)
            mode = "shadow"
        weight = self.canary_weight
        if weight is None:
            try:
                weight = min(1.0, max(0.0, float(metadata.get("canary_weight", 0.1))))
            except (TypeError, ValueError):
                log.error("the export's canary_weight is not a number; using 0.1")
                weight = 0.1
        return mode, weight


def _path(raw: str | None) -> Path | None:
    return Path(raw).expanduser() if raw else None


def settings_table() -> str:
    """The README's table of the service's settings (Markdown), from :data:`KNOBS`."""
    lines = ["| variable | default | what it sets |", "|---|---|---|"]
    for knob in KNOBS:
        lines.append(f"| `{knob.env}` | {knob.default} | {knob.help} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # the README's table: python -m mlnb.serve._settings
    print(settings_table(), end="")
