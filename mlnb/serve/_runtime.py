"""What answers a request, and what is recorded about it.

For each request: the router picks the model (champion, or the challenger for a canary
share); the endpoint's circuit breaker lets the call through or not; a failure of the
primary model (or an open breaker) is answered by the endpoint's fallback; the answer is
recorded in the audit log before it leaves (the handler waits for it); in shadow mode the
challenger then runs off the response path and its answer is a second audit line of the
request (``"kind": "shadow"``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from mlnb.exceptions import NoFallback
from mlnb.serve._audit import AuditLog
from mlnb.serve._breaker import STATE_VALUE, Breaker
from mlnb.serve._drift import ServiceDrift
from mlnb.serve._events import Events
from mlnb.serve._metrics import Metrics
from mlnb.serve._quality import Quality
from mlnb.serve._resources import ResourceMonitor
from mlnb.serve._routing import Follower, Router
from mlnb.serve._runners import EndpointPlan, Slot
from mlnb.serve._settings import ServeSettings

__all__ = ["Fallback", "NoFallback", "Outcome", "Runtime", "is_input_error", "profile_rule"]

log = logging.getLogger("mlnb.serve")
INPUT_ERRORS = (ValueError, TypeError, KeyError)


def is_input_error(exc: BaseException) -> bool:
    """The model refused values that passed the schema: the client's error (a 422)."""
    return isinstance(exc, INPUT_ERRORS)


@dataclass
class Fallback:
    run: Any  # body -> answer (sync)
    source: str  # "notebook: baseline" or "profile: most frequent target ..."


@dataclass
class Outcome:
    result: Any
    slot: Slot
    fallback: str | None = None  # why the fallback answered: primary_error, breaker_open

    @property
    def role(self) -> str:
        return "fallback" if self.fallback else self.slot.role


def profile_rule(profile: Any, kind: str) -> Fallback | None:
    """A constant answer from the profile's target: its most frequent value (its median
    for a float target). None when the profile has no target."""
    target = getattr(profile, "target_profile", None)
    if target is None or kind != "dataframe":
        return None
    value = target.median if target.dtype.startswith("float") else target.most_frequent
    if value is None:
        return None

    def run(records: list[dict[str, Any]]) -> list[Any]:
        return [value] * len(records)

    return Fallback(run, f"profile: constant {value!r} (the training target {profile.target!r})")


@dataclass
class Runtime:
    router: Router
    metrics: Metrics
    events: Events
    plans: dict[str, EndpointPlan]
    settings: ServeSettings = field(default_factory=ServeSettings)
    audit: AuditLog | None = None
    drift: ServiceDrift | None = None
    resources: ResourceMonitor | None = None
    follower: Follower | None = None
    breakers: dict[str, Breaker] = field(default_factory=dict)
    fallbacks: dict[str, Fallback] = field(default_factory=dict)
    qualities: dict[str, Quality] = field(default_factory=dict)
    profile: Any = None
    profile_error: str | None = None
    shadow_limit: int = 4096  # requests waiting for the challenger; more are dropped
    shadow_window: float = 0.1
    #: the share of the time the challenger may take: after a call of t seconds the next
    #: window is at least t / shadow_share long (bigger batches, the same calls per second)
    shadow_share: float = 0.03
    shadow_max_window: float = 2.0  # the longest a window is stretched to
    _shadow_delay: float = 0.0  # the next window's length (0: shadow_window)
    _shadow_cpu: float = 0.0  # the CPU time of the challenger's calls of the last window
    _shadows: set[asyncio.Task[None]] = field(default_factory=set)
    _shadow_queue: list[tuple[str, Any, Any, dict[str, Any]]] = field(default_factory=list)
    _shadow_flush_scheduled: bool = False
    _shadow_pending: int = 0
    _shadow_counters: dict[tuple[str, str], Any] = field(default_factory=dict)

    def add_breaker(self, path: str) -> Breaker:
        metrics, events = self.metrics, self.events
        gauge = metrics.breaker_state.labels(path)
        gauge.set(0)

        def changed(old: str, new: str, reason: str) -> None:
            gauge.set(STATE_VALUE[new])
            if new == "open":
                events.emit(
                    "breaker_open", f"circuit breaker of {path} opened: {reason}", endpoint=path
                )
            else:
                log.warning("circuit breaker of %s: %s -> %s (%s)", path, old, new, reason)

        budget_ms = self.settings.latency_budget_ms
        breaker = Breaker(
            failures=self.settings.breaker_failures,
            cooldown=self.settings.breaker_cooldown_s,
            budget=None if budget_ms is None else budget_ms / 1000,
            on_change=changed,
        )
        self.breakers[path] = breaker
        return breaker

    async def answer(self, path: str, body: Any, client_id: str | None) -> Outcome:
        """The answer to ``body``; raises the model's input errors (422), its other errors
        when there is no fallback (500), NoFallback when the breaker is open (503)."""
        router = self.router
        slot = router.choose(client_id)
        if slot.role == "challenger":
            try:
                return Outcome(await slot.runners[path](body), slot)
            except Exception as exc:
                if is_input_error(exc):
                    raise
                self.metrics.errors.labels(path, "challenger").inc()
                log.warning(
                    "the challenger failed (%s: %s); the champion answers", type(exc).__name__, exc
                )
                slot = router.champion
        breaker = self.breakers[path]
        error: BaseException | None = None
        if breaker.allow():
            started = time.perf_counter()
            try:
                result = await slot.runners[path](body)
            except Exception as exc:
                if is_input_error(exc):
                    breaker.neutral()
                    raise
                breaker.failure(f"{type(exc).__name__}: {exc}")
                error = exc
                reason = "primary_error"
            else:
                breaker.success(time.perf_counter() - started)
                return Outcome(result, slot)
        else:
            reason = "breaker_open"
        fallback = self.fallbacks.get(path)
        if fallback is None:
            if error is not None:
                raise error
            raise NoFallback(
                f"the model of {path} is failing and its circuit breaker is open "
                f"(last failure: {breaker.last_reason}); it is probed again every "
                f"{breaker.cooldown:g} s. Define a baseline with @mlnb.fallback('{path}') in "
                "the notebook, or export a profile with a target, to answer meanwhile."
            )
        if error is not None:
            log.error("the model failed; the fallback answers", exc_info=error)
        from starlette.concurrency import run_in_threadpool

        result = await run_in_threadpool(fallback.run, body)
        self.metrics.fallbacks.labels(path, reason).inc()
        return Outcome(result, slot, reason)

    def shadow(self, path: str, body: Any, champion_answer: Any, doc: dict[str, Any]) -> None:
        """Queue ``body`` for the challenger, off the response path. Shadow calls are
        gathered for ``MLNB_SHADOW_WINDOW_MS`` (100) and sent as one model call per endpoint,
        so shadowing costs one extra model call per window, not per request; a window is
        stretched (up to ``shadow_max_window``, 2 s) so the challenger's calls take at most
        ``shadow_share`` (3%) of one core: a costlier call, a longer window gathering more
        requests into it (none is left out below ``shadow_limit``). ``doc`` is the
        request's audit record (already written); once the challenger answered, a line
        ``{"kind": "shadow", "request_id": ..., "challenger": {...}}`` is added to it."""
        if self._shadow_pending >= self.shadow_limit:
            self.metrics.shadow.labels(path, "dropped").inc()
            self._record_shadow(
                doc, {"error": "dropped: too many requests waiting for the challenger"}
            )
            return
        self._shadow_pending += 1
        self._shadow_queue.append((path, body, champion_answer, doc))
        if not self._shadow_flush_scheduled:
            self._shadow_flush_scheduled = True
            loop = asyncio.get_running_loop()
            loop.call_later(max(self.shadow_window, self._shadow_delay), self._flush_shadow)

    def _flush_shadow(self) -> None:
        self._shadow_flush_scheduled = False
        queued, self._shadow_queue = self._shadow_queue, []
        by_path: dict[str, list[tuple[str, Any, Any, dict[str, Any]]]] = {}
        for item in queued:
            by_path.setdefault(item[0], []).append(item)
        for path, items in by_path.items():
            task = asyncio.get_running_loop().create_task(self._shadow(path, items))
            self._shadows.add(task)
            task.add_done_callback(self._shadows.discard)

    async def _shadow(self, path: str, items: list[tuple[str, Any, Any, dict[str, Any]]]) -> None:
        from starlette.concurrency import run_in_threadpool

        challenger = self.router.challenger
        answers: list[tuple[Any, str | None]] = []
        started = time.perf_counter()
        try:
            if challenger is None:
                answers = [(None, "no challenger")] * len(items)
                return
            run = self._timed(challenger.runners[path].run)
            merged = None
            self._shadow_cpu = 0.0
            if self.plans[path].shape.kind == "dataframe" and len(items) > 1:
                records = [r for item in items for r in item[1]]
                try:
                    merged = await run_in_threadpool(run, records)
                    if len(merged) != len(records):
                        merged = None
                except Exception:
                    merged = None  # one request's rows may be what failed: each on its own
            if merged is not None:
                start = 0
                for item in items:
                    answers.append((merged[start : start + len(item[1])], None))
                    start += len(item[1])
            else:
                for item in items:
                    try:
                        answers.append((await run_in_threadpool(run, item[1]), None))
                    except Exception as exc:
                        answers.append((None, f"{type(exc).__name__}: {exc}"))
            # the CPU time the challenger's calls took (not their wait for the pool or the
            # GIL: a busy machine slows both models, not the challenger's share)
            self._shadow_delay = min(self.shadow_max_window, self._shadow_cpu / self.shadow_share)
        finally:
            self._shadow_pending -= len(items)
            latency = round((time.perf_counter() - started) * 1000, 3)
            model = _model_doc(challenger) if challenger is not None else None
            answers += [(None, "cancelled")] * (len(items) - len(answers))
            for (_, _, champion_answer, doc), (answer, error) in zip(items, answers, strict=True):
                agree = error is None and answer == champion_answer
                outcome = "error" if error else ("agree" if agree else "disagree")
                self._shadow_counter(path, outcome).inc()
                self._record_shadow(
                    doc,
                    {
                        "model": model,
                        "outputs": answer,
                        "agree": agree,
                        "error": error,
                        "latency_ms": latency,
                        "batch_requests": len(items),
                    },
                )

    def _timed(self, run: Any) -> Any:
        """``run``, adding the CPU time of each call (in its thread) to ``_shadow_cpu``."""

        def timed(body: Any) -> Any:
            started = time.thread_time()
            try:
                return run(body)
            finally:
                self._shadow_cpu += time.thread_time() - started

        return timed

    def _record_shadow(self, doc: dict[str, Any], challenger: dict[str, Any]) -> None:
        """The challenger's side of a request, as its own line (not waited for)."""
        if self.audit is not None:
            self.audit.record(
                {
                    "kind": "shadow",
                    "request_id": doc.get("request_id"),
                    "time": doc.get("time"),
                    "endpoint": doc.get("endpoint"),
                    "challenger": challenger,
                },
                remember=False,
            )

    def _shadow_counter(self, path: str, outcome: str) -> Any:
        key = (path, outcome)
        counter = self._shadow_counters.get(key)
        if counter is None:
            counter = self._shadow_counters[key] = self.metrics.shadow.labels(path, outcome)
        return counter

    def close(self) -> None:
        queued, self._shadow_queue = self._shadow_queue, []
        for _, _, _, doc in queued:  # never shadowed
            self._record_shadow(doc, {"error": "the service stopped first"})
        for part in (self.drift, self.resources, self.follower):
            if part is not None:
                part.close()
        if self.audit is not None:
            self.audit.close()


def _model_doc(slot: Slot) -> dict[str, Any]:
    return {"name": slot.model.get("name"), "version": slot.model.get("version")}
