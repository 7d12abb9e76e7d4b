"""Turning the domain's error taxonomy into Temporal activity failures.

The category becomes the ``ApplicationError`` type, so retry policies and
workflows route on it; COMPLIANCE_BLOCK and FATAL_SCHEMA_MISMATCH are
non-retryable; RECOVERABLE_TIMEOUT is retried with a jittered exponential delay
(``next_retry_delay``), bounded by the retry policy's maximum attempts.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from clinflow.errors import ClinflowError, ErrorCategory

P = ParamSpec("P")
R = TypeVar("R")

BACKOFF_BASE = timedelta(seconds=1)
BACKOFF_MAX = timedelta(seconds=60)


def jittered_delay(attempt: int, base: timedelta = BACKOFF_BASE) -> timedelta:
    """Exponential backoff with +/-50% jitter: ~1s, ~2s, ~4s ... capped at BACKOFF_MAX."""
    raw = base.total_seconds() * (2 ** max(attempt - 1, 0))
    return timedelta(seconds=min(raw, BACKOFF_MAX.total_seconds()) * random.uniform(0.5, 1.5))


RECOVERABLE_ATTEMPTS = 3
"""Attempts a RECOVERABLE_TIMEOUT gets before it is final (then the caller dead-letters)."""

INFRASTRUCTURE_UNAVAILABLE = "INFRASTRUCTURE_UNAVAILABLE"
"""The failure type of an outage of the platform's own services (database, object store):
retried with jittered backoff for as long as the outage lasts, never a packet's verdict."""


def to_application_error(exc: ClinflowError) -> ApplicationError:
    """``exc`` as a typed ApplicationError. A RECOVERABLE_TIMEOUT is retried with a jittered
    delay and becomes non-retryable on its :data:`RECOVERABLE_ATTEMPTS`-th attempt, so retry
    policies may retry outages without bound and still stop the taxonomy's timeouts at three.
    """
    delay = None
    final = not exc.retryable
    if exc.category is ErrorCategory.RECOVERABLE_TIMEOUT and activity.in_activity():
        attempt = activity.info().attempt
        delay = jittered_delay(attempt)
        final = final or attempt >= RECOVERABLE_ATTEMPTS
    return ApplicationError(
        f"{exc.code}: {exc.reason}",
        exc.to_dict(),
        type=str(exc.category),
        non_retryable=final,
        next_retry_delay=None if final else delay,
    )


def infrastructure_error(exc: BaseException) -> ApplicationError:
    """An outage of the database or object store as a retryable, jittered failure."""
    attempt = activity.info().attempt if activity.in_activity() else 1
    return ApplicationError(
        f"{INFRASTRUCTURE_UNAVAILABLE}: {type(exc).__name__}",
        {"category": INFRASTRUCTURE_UNAVAILABLE, "code": type(exc).__name__},
        type=INFRASTRUCTURE_UNAVAILABLE,
        next_retry_delay=jittered_delay(attempt),
    )


def taxonomy_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorate an async activity so ClinflowError leaves it as a typed ApplicationError."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ClinflowError as exc:
            raise to_application_error(exc) from exc

    return wrapper


def failure_details(err: BaseException) -> dict[str, Any]:
    """The taxonomy dict carried by an ApplicationError (or its cause), for DLQ context."""
    cur: BaseException | None = err
    while cur is not None:
        if isinstance(cur, ApplicationError) and cur.details:
            first = cur.details[0]
            if isinstance(first, dict):
                return first
        cur = cur.__cause__
    return {"category": str(ErrorCategory.RECOVERABLE_TIMEOUT), "reason": str(err)}
