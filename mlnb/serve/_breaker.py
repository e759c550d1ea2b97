"""A circuit breaker per endpoint, in front of the primary model.

closed --(K consecutive failures or latency-budget overruns)--> open
open --(cool-down elapsed: the next request is a probe)--> half-open
half-open --(probe succeeds)--> closed;  half-open --(probe fails)--> open

While open, the endpoint's fallback (``@mlnb.fallback``, or the profile's rule) answers.
Settings: ``MLNB_BREAKER_FAILURES`` (5), ``MLNB_BREAKER_COOLDOWN_S`` (10),
``MLNB_LATENCY_BUDGET_MS`` (none). Used from the event loop only: no locks.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "Breaker"]

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class Breaker:
    def __init__(
        self,
        failures: int = 5,
        cooldown: float = 10.0,
        budget: float | None = None,
        on_change: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.failures = max(1, failures)
        self.cooldown = cooldown
        self.budget = budget  # seconds, or None
        self.on_change = on_change  # (old state, new state, reason)
        self.state = CLOSED
        self.consecutive = 0
        self.opened_at = 0.0
        self._probing = False
        self.last_reason = ""

    def allow(self) -> bool:
        """May the primary model be called now? (Half-open lets one probe through.)"""
        if self.state == CLOSED:
            return True
        if self.state == OPEN and time.monotonic() - self.opened_at >= self.cooldown:
            self._move(HALF_OPEN, "cool-down elapsed: probing the primary model")
        if self.state == HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def success(self, seconds: float) -> None:
        if self.budget is not None and seconds > self.budget:
            self.failure(f"latency {seconds * 1000:.0f} ms over the budget")
            return
        self._probing = False
        self.consecutive = 0
        if self.state != CLOSED:
            self._move(CLOSED, "the probe succeeded")

    def neutral(self) -> None:
        """The call ended without telling (the input was refused): let another probe in."""
        self._probing = False

    def failure(self, reason: str = "the model raised") -> None:
        self._probing = False
        self.consecutive += 1
        self.last_reason = reason
        if self.state == HALF_OPEN or (self.state == CLOSED and self.consecutive >= self.failures):
            self.opened_at = time.monotonic()
            self._move(OPEN, f"{self.consecutive} consecutive failure(s), last: {reason}")
        elif self.state == OPEN:
            self.opened_at = time.monotonic()

    def reset(self) -> None:
        """Closed, with no failure counted (a new model was swapped in)."""
        self.consecutive = 0
        self._probing = False
        if self.state != CLOSED:
            self._move(CLOSED, "a new model was swapped in")

    def _move(self, state: str, reason: str) -> None:
        old, self.state = self.state, state
        if self.on_change is not None and old != state:
            self.on_change(old, state, reason)

    def to_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "consecutive_failures": self.consecutive,
            "failures_to_open": self.failures,
            "cooldown_s": self.cooldown,
            "latency_budget_ms": None if self.budget is None else self.budget * 1000,
            "last_failure": self.last_reason or None,
        }
