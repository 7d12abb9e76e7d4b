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


def to_application_error(exc: ClinflowError) -> ApplicationError:
    delay = None
    if exc.category is ErrorCategory.RECOVERABLE_TIMEOUT and activity.in_activity():
        delay = jittered_delay(activity.info().attempt)
    return ApplicationError(
        f"{exc.code}: {exc.reason}",
        exc.to_dict(),
        type=str(exc.category),
        non_retryable=not exc.retryable,
        next_retry_delay=delay,
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
