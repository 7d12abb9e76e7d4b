"""Task queue of clinical data batches: workflows, activities, the validation process pool."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor

from activities.clinical import ClinicalActivities
from activities.clinical_transform import warm_up
from activities.deps import Deps
from clinflow.clinical.malloc_tuning import fix_mmap_threshold
from clinflow.settings import Settings
from workers.factory import QueuePlan
from workflows.clinical import ClinicalBatchWorkflow, ReconciliationWorkflow


def validation_executor(settings: Settings) -> Executor | None:
    """The process pool that validates records (None: validate in a worker thread).

    Processes are spawned, not forked: the worker process runs threads (Temporal's core, the
    event loop) that a fork would copy in an undefined state.
    """
    size = settings.clinical_process_pool_size
    if size <= 0:
        return None
    return ProcessPoolExecutor(
        max_workers=size,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=warm_up,
    )


def clinical_plan(settings: Settings, deps: Deps) -> dict[str, QueuePlan]:
    """The clinical task queue: batch and reconciliation workflows and their activities.

    Concurrent activities are capped near the partition window (each partition holds up to two
    chunks in memory), so the worker's memory stays bounded whatever the number of batches.
    """
    fix_mmap_threshold()  # chunk buffers in this process too (see malloc_tuning)
    acts = ClinicalActivities(deps, validation_executor(settings))
    return {
        settings.clinical_task_queue: QueuePlan(
            workflows=[ClinicalBatchWorkflow, ReconciliationWorkflow],
            activities=[
                acts.begin_batch,
                acts.plan_partitions,
                acts.load_partition,
                acts.finish_batch,
                acts.reconcile,
            ],
            max_concurrent_activities=2 * settings.clinical_max_parallel_partitions + 4,
        )
    }
