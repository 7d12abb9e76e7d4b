"""A circuit breaker for calls to external validation endpoints (e.g. an IRB portal).

After ``failure_threshold`` consecutive failures the breaker opens: calls fail fast with
:class:`CircuitOpen` (a RECOVERABLE_TIMEOUT, so the caller's retry policy backs off) until
``cool_down`` seconds have passed. Then one trial call is let through (half-open): success
closes the breaker, failure opens it for another cool-down. State lives in the process that
owns the breaker (one per endpoint per worker process); it is not shared between workers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum

from clinflow.errors import RecoverableTimeout


class BreakerState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class CircuitOpen(RecoverableTimeout):
    """The breaker is open: the endpoint is not called until the cool-down passes."""


class CircuitBreaker:
    """Counts consecutive failures of one endpoint and fails fast while it is open.

    Thread-safe. ``clock`` returns monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        cool_down: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cool_down <= 0:
            raise ValueError("cool_down must be positive")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cool_down = cool_down
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cool_down:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def before_call(self) -> None:
        """Allow a call or raise :class:`CircuitOpen` (code CIRCUIT_OPEN).

        While half-open only one trial call is allowed at a time; the others fail fast.
        """
        with self._lock:
            state = self._state()
            if state is BreakerState.CLOSED:
                return
            if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
                self._trial_in_flight = True
                return
            assert self._opened_at is not None
            remaining = max(self.cool_down - (self._clock() - self._opened_at), 0.0)
            raise CircuitOpen(
                "CIRCUIT_OPEN",
                f"{self.name} failed {self._failures} times in a row; "
                f"calls resume in {remaining:.1f}s",
                subject=self.name,
                details={"failures": self._failures, "retry_in_seconds": round(remaining, 1)},
            )

    def record_success(self) -> None:
        """The call succeeded: close the breaker and reset the failure count."""
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False

    def record_failure(self) -> None:
        """The call failed: count it; open (or re-open) the breaker at the threshold."""
        with self._lock:
            self._failures += 1
            if self._trial_in_flight or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
            self._trial_in_flight = False


__all__ = ["BreakerState", "CircuitBreaker", "CircuitOpen"]
