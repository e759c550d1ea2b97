"""Putting a service together: each endpoint's shape, batching and data-quality checks, the
champion and the challenger, breakers, fallbacks, the audit log, drift, resource alerts and
the alias follower, as configured by the export metadata and :class:`ServeSettings`."""

from __future__ import annotations

import logging
from typing import Any

from mlnb.serve._audit import AuditLog
from mlnb.serve._drift import ServiceDrift
from mlnb.serve._events import Events
from mlnb.serve._metrics import Metrics
from mlnb.serve._quality import Quality, load_profile
from mlnb.serve._resources import ResourceMonitor
from mlnb.serve._routing import Follower, Router, load_challenger
from mlnb.serve._runners import EndpointPlan, Slot, build_slot
from mlnb.serve._runtime import Fallback, Runtime, profile_rule
from mlnb.serve._schemas import shape_of
from mlnb.serve._service import Endpoint, Service
from mlnb.serve._settings import ServeSettings

__all__ = ["build_runtime"]

log = logging.getLogger("mlnb.serve")


def _vectorized(run: Any, example: Any) -> bool:
    """Does the endpoint answer n rows with n answers? (Checked once, with the example.)"""
    if not example:
        return False
    try:
        records = list(example) * 2
        return len(run(records)) == len(records)
    except Exception:
        return False


def _plan_endpoint(
    service: Service, endpoint: Endpoint, settings: ServeSettings, metrics: Metrics, runtime: Any
) -> tuple[EndpointPlan, Quality | None]:
    """Shape, batching and data-quality checks of one endpoint (fixed whichever model
    answers)."""
    meta: dict[str, Any] = next(
        (e for e in service.metadata.get("endpoints", []) if e.get("path") == endpoint.path), {}
    )
    example = meta.get("example") or service.example
    example_value = (example or {}).get("value")
    schema = meta.get("schema")
    quality = None
    if runtime.profile is not None and schema is not None:
        quality = Quality(runtime.profile, schema["columns"])
        if not quality.features:
            log.error(
                "the profile %r shares no column with %s (profile: %s; requests: %s); "
                "defaults, range checks and drift are off for it. Profile the data the model "
                "was trained on (mlnb.profile(X_train)) and export again.",
                getattr(runtime.profile, "name", None),
                endpoint.path,
                ", ".join(quality.mismatch["only_in_profile"][:5]),
                ", ".join(quality.mismatch["only_in_requests"][:5]),
            )
            quality = None
    rules = quality.rules() if quality is not None else None
    shape = shape_of(endpoint.function, vars(service.module), example_value, schema, rules)
    batching = False
    if shape.kind == "dataframe":
        run = EndpointPlan(endpoint.path, shape, False).runner_for(endpoint.function)
        example_records = (example or {}).get("records") or []
        wants_batch = endpoint.spec.batch if endpoint.spec.batch is not None else settings.batching
        batching = _vectorized(run, example_records) if wants_batch is None else bool(wants_batch)
    plan = EndpointPlan(
        endpoint.path,
        shape,
        batching,
        settings.max_batch_rows,
        metrics.batch_observer(endpoint.path) if batching else None,
    )
    return plan, quality


def _warm_up(service: Service, plans: dict[str, EndpointPlan]) -> Any:
    """A check for a slot about to be swapped in: it answers every endpoint's example."""

    def check(slot: Slot) -> None:
        for path, plan in plans.items():
            meta: dict[str, Any] = next(
                (e for e in service.metadata.get("endpoints", []) if e.get("path") == path), {}
            )
            example = meta.get("example")
            if not example:
                continue
            if plan.shape.kind == "dataframe":
                records = [dict(r) for r in example.get("records") or []]
                answers = slot.runners[path].run(records)
                if len(answers) != len(records):
                    raise ValueError(f"{path} answered {len(answers)} rows for {len(records)}")
            else:
                slot.runners[path].run(plan.shape.request.validate_python(example["value"]))

    return check


def build_runtime(service: Service, settings: ServeSettings, metrics: Metrics) -> Runtime:
    """Every part of the service's runtime, from its metadata and ``settings``."""
    metadata = service.metadata
    audit_dir = settings.audit_dir or service.folder / "audit"
    audit_on = settings.audit
    events = Events(metrics, audit_dir / "events.jsonl" if audit_on else None)
    profile, profile_error = load_profile(service.folder, metadata)
    plans: dict[str, EndpointPlan] = {}
    holder = Runtime(
        router=None,  # type: ignore[arg-type]  # set below, once the champion is built
        metrics=metrics,
        events=events,
        plans=plans,
        settings=settings,
        profile=profile,
        profile_error=profile_error,
    )
    holder.shadow_window = settings.shadow_window_ms / 1000
    for endpoint in service.endpoints:
        plan, quality = _plan_endpoint(service, endpoint, settings, metrics, holder)
        plans[endpoint.path] = plan
        if quality is not None:
            holder.qualities[endpoint.path] = quality
    champion = build_slot(service, "champion", plans)
    mode, weight = settings.routing_for(metadata)
    challenger, challenger_error = load_challenger(service, plans, settings.challenger)
    holder.router = Router(champion, challenger, mode, weight, challenger_error)
    for endpoint in service.endpoints:
        holder.add_breaker(endpoint.path)
        baseline = service.fallbacks.get(endpoint.path)
        if baseline is not None:
            holder.fallbacks[endpoint.path] = Fallback(
                plans[endpoint.path].runner_for(baseline), f"notebook: {baseline.__name__}"
            )
        elif profile is not None:
            rule = profile_rule(profile, plans[endpoint.path].shape.kind)
            if rule is not None:
                holder.fallbacks[endpoint.path] = rule
    unknown = sorted(set(service.fallbacks) - set(plans))
    if unknown:
        log.error(
            "@mlnb.fallback for %s, which is not an endpoint (endpoints: %s)",
            ", ".join(unknown),
            ", ".join(plans),
        )
    if audit_on:
        try:
            holder.audit = AuditLog(
                audit_dir, metrics, settings.audit_max_bytes, settings.audit_sync
            )
        except OSError as exc:
            log.error(
                "the audit log is off: cannot write in %s (%s); set MLNB_AUDIT_DIR", audit_dir, exc
            )
            events.path = None
    if profile is not None and settings.drift:
        features = sorted({f for q in holder.qualities.values() for f in q.features})
        if features:
            holder.drift = ServiceDrift(profile, features, settings, metrics, events)
    if settings.resources:
        holder.resources = ResourceMonitor(metrics, events, settings)
    follow = settings.follow or metadata.get("follow")
    if follow and follow.lower() not in {"off", "0", "none"}:
        interval = settings.follow_interval
        holder.follower = Follower(
            holder.router,
            plans,
            follow,
            interval,
            _warm_up(service, plans),
            lambda kind, message: events.emit(kind, message),
            lambda outcome: _reloaded(holder, outcome),
        )
    return holder


def _reloaded(runtime: Runtime, outcome: str) -> None:
    runtime.metrics.reloads.labels(outcome).inc()
    if outcome == "ok":  # a new model starts with closed breakers
        for breaker in runtime.breakers.values():
            breaker.reset()
        model = runtime.router.champion.model
        runtime.metrics.model_info.clear()
        runtime.metrics.model_info.labels(
            str(model.get("name")), str(model.get("version")), str(model.get("hash"))[:12]
        ).set(1)
