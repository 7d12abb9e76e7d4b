"""The worker factory every worker entry point uses, and graceful shutdown."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from clinflow.settings import Settings

log = structlog.get_logger(__name__)


@dataclass
class QueuePlan:
    """What one task queue serves and with which limits (see ``build_worker``)."""

    workflows: Sequence[type] = ()
    activities: Sequence[Callable[..., Any]] = ()
    activity_executor: Executor | None = None
    max_concurrent_activities: int | None = None
    max_activities_per_second: float | None = None
    max_task_queue_activities_per_second: float | None = None


def build_worker(
    client: Client,
    settings: Settings,
    *,
    task_queue: str,
    plan: QueuePlan | None = None,
    workflows: Sequence[type] = (),
    activities: Sequence[Callable[..., Any]] = (),
) -> Worker:
    """A worker for one task queue with the project's limits and shutdown policy.

    Rate limits are declarative: ``max_activities_per_second`` caps this worker,
    ``max_task_queue_activities_per_second`` caps the whole task queue across all
    workers (enforced by the server).
    """
    plan = plan or QueuePlan(workflows=workflows, activities=activities)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(plan.workflows),
        activities=list(plan.activities),
        activity_executor=plan.activity_executor,
        max_concurrent_activities=plan.max_concurrent_activities
        or settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_activities_per_second=plan.max_activities_per_second,
        max_task_queue_activities_per_second=plan.max_task_queue_activities_per_second,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_graceful_shutdown_seconds),
    )


async def run_until_signalled(workers: Sequence[Worker]) -> None:
    """Run ``workers`` until SIGTERM or SIGINT, then drain them.

    On a signal each worker stops polling for new tasks and waits up to its
    graceful-shutdown timeout for in-flight activities to finish before they are
    cancelled; workflow tasks are handed back to the server for another worker.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runs = [asyncio.create_task(w.run()) for w in workers]
    log.info("worker.started", task_queues=[w.task_queue for w in workers])
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *runs], return_when=asyncio.FIRST_COMPLETED)
    if stopper in done:
        log.info("worker.draining")
    await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
    for task in runs:
        if task.done() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    stopper.cancel()
    log.info("worker.stopped")
