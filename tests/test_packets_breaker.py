"""The external check's circuit breaker: opens after N failures, fails fast, half-opens."""

from __future__ import annotations

import pytest

from clinflow.errors import ErrorCategory
from clinflow.packets.circuit_breaker import BreakerState, CircuitBreaker, CircuitOpen


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_and_fails_fast_until_cool_down() -> None:
    clock = Clock()
    breaker = CircuitBreaker("portal", failure_threshold=3, cool_down=10.0, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen) as info:
        breaker.before_call()
    assert info.value.category is ErrorCategory.RECOVERABLE_TIMEOUT
    assert info.value.code == "CIRCUIT_OPEN"
    clock.now += 10.0
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.before_call()  # the one trial call
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # others still fail fast while the trial runs
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 10.0
    breaker.before_call()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker("portal", failure_threshold=2, cool_down=1.0, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
