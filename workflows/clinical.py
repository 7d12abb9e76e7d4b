"""ClinicalBatchWorkflow and ReconciliationWorkflow: clinical data batches through Temporal.

A batch's workflow id is its idempotency key (source system + content hash of the inputs,
chosen by the starter). The workflow only orchestrates:

1. begin: record the batch, read the source's watermark, audit, lineage START;
2. plan and load partitions with a sliding window of at most ``options.max_parallel``
   ``clinical.load_partition`` activities; planning is paged (a few partitions at a time), so
   histories and payloads stay small whatever the export size;
3. after ``options.partitions_per_run`` partitions (or when Temporal suggests it), drain the
   window and ``continue_as_new`` with the cursor, the merged report and the load counts;
4. finish: error NDJSON objects, final report, watermark (only after success), audit,
   lineage COMPLETE — or, when a partition fails for good, FAIL and a failed workflow.

Histories carry S3 references, byte ranges and counts; never a record.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.search_attributes import ERROR_CATEGORY as CATEGORY
from workflows.search_attributes import KIND, SOURCE, STATUS

with workflow.unsafe.imports_passed_through():
    from activities.clinical import ClinicalActivities
    from activities.clinical_models import (
        BatchProgress,
        BatchStatus,
        BeginBatchRequest,
        ClinicalBatchInput,
        ClinicalBatchResult,
        FinishBatchRequest,
        FinishBatchResult,
        PartitionResult,
        PartitionTask,
        PlannedPartition,
        PlanRequest,
        ReconcileInput,
        ReconcileRequest,
        ReconcileResult,
    )


NON_RETRYABLE = ["COMPLIANCE_BLOCK", "FATAL_SCHEMA_MISMATCH"]
# Bookkeeping activities: short, transient failures retried with backoff.
BOOKKEEPING_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=NON_RETRYABLE,
)
# Partition loads resume from their committed offset, so retrying them is cheap and safe.
PARTITION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=8,
    non_retryable_error_types=NON_RETRYABLE,
)


@workflow.defn
class ClinicalBatchWorkflow:
    """One FHIR or HL7 batch: partitions loaded in a bounded window, resumable, idempotent."""

    def __init__(self) -> None:
        self._req: ClinicalBatchInput | None = None
        self._progress: BatchProgress | None = None
        self._stage = "starting"
        self._in_flight = 0

    @workflow.query
    def status(self) -> BatchStatus:
        req = self._req
        assert req is not None
        progress = self._progress or BatchProgress(attempt_token="", started_at=workflow.now())
        return BatchStatus(
            batch_id=req.batch_id,
            stage=self._stage,
            files=len(req.files),
            file_index=progress.file_index,
            partitions_done=progress.partitions_done,
            in_flight=self._in_flight,
            runs=progress.runs,
            report=progress.report,
            counts=progress.counts,
        )

    @workflow.run
    async def run(self, req: ClinicalBatchInput) -> ClinicalBatchResult:
        self._req = req
        info = workflow.info()
        if req.progress is None:
            workflow.upsert_search_attributes(
                [
                    KIND.value_set("clinical-batch"),
                    SOURCE.value_set(req.source_system),
                    STATUS.value_set("running"),
                ]
            )
            progress = BatchProgress(attempt_token=info.run_id, started_at=workflow.now())
            self._stage = "beginning"
            progress.watermark = await workflow.execute_activity_method(
                ClinicalActivities.begin_batch,
                BeginBatchRequest(
                    batch_id=req.batch_id,
                    attempt_token=progress.attempt_token,
                    workflow_id=info.workflow_id,
                    kind=req.kind,
                    source_system=req.source_system,
                    files=req.files,
                    submitted_by=req.submitted_by,
                    when=workflow.now(),
                ),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=BOOKKEEPING_RETRY,
            )
        else:
            progress = req.progress.model_copy(update={"runs": req.progress.runs + 1})
        self._progress = progress

        try:
            more = await self._load_window(req, progress)
        except ActivityError as exc:
            await self._finish(req, progress, "failed", _failure_text(exc))
            workflow.upsert_search_attributes(
                [
                    STATUS.value_set("failed"),
                    CATEGORY.value_set(_failure_type(exc)),
                ]
            )
            raise ApplicationError(
                f"batch {req.batch_id} failed: {_failure_text(exc)}",
                type=_failure_type(exc),
                non_retryable=True,
            ) from exc
        if more:
            self._stage = "continuing"
            workflow.continue_as_new(req.model_copy(update={"progress": progress}))

        finished = await self._finish(req, progress, "completed", None)
        workflow.upsert_search_attributes([STATUS.value_set("completed")])
        self._stage = "completed"
        return ClinicalBatchResult(
            batch_id=req.batch_id,
            kind=req.kind,
            source_system=req.source_system,
            status="completed",
            report=progress.report,
            counts=progress.counts,
            files=len(req.files),
            partitions=progress.partitions_done,
            resumed_partitions=progress.resumed_partitions,
            runs=progress.runs,
            watermark_committed=finished.watermark_committed,
            error_objects=finished.error_objects,
            ack_objects=progress.ack_objects,
        )

    async def _plan_more(self, req: ClinicalBatchInput, progress: BatchProgress) -> bool:
        """Queue the next page of partitions; False when every file is planned."""
        opts = req.options
        while progress.file_index < len(req.files):
            plan = await workflow.execute_activity_method(
                ClinicalActivities.plan_partitions,
                PlanRequest(
                    file=req.files[progress.file_index],
                    file_index=progress.file_index,
                    kind=req.kind,
                    from_offset=progress.next_offset,
                    first_index=progress.next_partition_index,
                    max_partitions=max(opts.max_parallel, 4),
                    target_bytes=opts.partition_bytes,
                ),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=BOOKKEEPING_RETRY,
            )
            progress.queued.extend(plan.partitions)
            if plan.next_offset is None:
                progress.file_index += 1
                progress.next_offset = 0
                progress.next_partition_index = 0
            else:
                progress.next_offset = plan.next_offset
                progress.next_partition_index += len(plan.partitions)
            if plan.partitions:
                return True
        return False

    async def _load_window(self, req: ClinicalBatchInput, progress: BatchProgress) -> bool:
        """Run partitions in a sliding window; True when a continue-as-new should follow."""
        opts = req.options
        started = 0
        running: dict[asyncio.Future[PartitionResult], PlannedPartition] = {}
        self._stage = "loading"
        try:
            while True:
                budget_left = started < opts.partitions_per_run
                suggested = workflow.info().is_continue_as_new_suggested()
                while len(running) < opts.max_parallel and budget_left and not suggested:
                    if not progress.queued and not await self._plan_more(req, progress):
                        break
                    part = progress.queued.pop(0)
                    running[self._start_partition(req, progress, part)] = part
                    started += 1
                    budget_left = started < opts.partitions_per_run
                self._in_flight = len(running)
                if not running:
                    break
                done, _ = await workflow.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: running[f].partition_id):
                    del running[fut]
                    result = fut.result()
                    progress.report = progress.report.merge(result.report)
                    progress.counts = progress.counts.merge(result.counts)
                    progress.partitions_done += 1
                    if result.resumed_from is not None:
                        progress.resumed_partitions += 1
                    if result.ack_object:
                        progress.ack_objects.append(result.ack_object)
        finally:
            for fut in running:
                fut.cancel()
            self._in_flight = 0
        return bool(progress.queued) or progress.file_index < len(req.files)

    def _start_partition(
        self, req: ClinicalBatchInput, progress: BatchProgress, part: PlannedPartition
    ) -> asyncio.Future[PartitionResult]:
        info = workflow.info()
        return workflow.start_activity_method(
            ClinicalActivities.load_partition,
            PartitionTask(
                batch_id=req.batch_id,
                attempt_token=progress.attempt_token,
                workflow_id=info.workflow_id,
                kind=req.kind,
                source_system=req.source_system,
                file=req.files[part.file_index],
                partition=part,
                watermark=progress.watermark,
                transaction_time=req.transaction_time,
                ack_time=progress.started_at,
                options=req.options,
            ),
            activity_id=f"partition-{part.partition_id}-{progress.runs}",
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(seconds=req.options.heartbeat_seconds),
            retry_policy=PARTITION_RETRY,
        )

    async def _finish(
        self, req: ClinicalBatchInput, progress: BatchProgress, status: str, error: str | None
    ) -> FinishBatchResult:
        self._stage = "finishing"
        return await workflow.execute_activity_method(
            ClinicalActivities.finish_batch,
            FinishBatchRequest(
                batch_id=req.batch_id,
                attempt_token=progress.attempt_token,
                workflow_id=workflow.info().workflow_id,
                kind=req.kind,
                source_system=req.source_system,
                files=req.files,
                status="completed" if status == "completed" else "failed",
                report=progress.report,
                counts=progress.counts,
                when=workflow.now(),
                error=error,
            ),
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=BOOKKEEPING_RETRY,
        )


def _failure_type(exc: ActivityError) -> str:
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return cause.type
    return "RECOVERABLE_TIMEOUT"


def _failure_text(exc: ActivityError) -> str:
    cause = exc.cause
    return str(cause.message if isinstance(cause, ApplicationError) else (cause or exc))[:500]


@workflow.defn
class ReconciliationWorkflow:
    """Re-check open quarantined records (run by the off-peak Schedule); reports recoveries."""

    @workflow.run
    async def run(self, req: ReconcileInput) -> ReconcileResult:
        info = workflow.info()
        return await workflow.execute_activity_method(
            ClinicalActivities.reconcile,
            ReconcileRequest(
                limit=req.limit,
                batch_id=req.batch_id,
                reasons=req.reasons,
                audit_entry_id=f"clinical:reconcile:{info.workflow_id}:{info.run_id}",
                when=workflow.now(),
            ),
            start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=BOOKKEEPING_RETRY,
        )
