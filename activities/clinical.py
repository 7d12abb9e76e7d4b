"""Activities of clinical data batches: begin, plan, load partitions, finish, reconcile.

Thin adapters over ``clinflow.clinical``. Each is idempotent and retry-safe:

- ``clinical.begin_batch`` records the batch (once), reads the source's watermark, appends the
  start to the audit chain (deterministic entry id) and emits the OpenLineage START event.
- ``clinical.plan_partitions`` cuts one stored file into line-aligned byte ranges with small
  ranged reads at the cuts (a page of partitions at a time).
- ``clinical.load_partition`` streams one byte range (ranged, segment-aligned decrypting GETs),
  validates chunks of records in the process pool, verifies chunk signatures, and commits each
  chunk (COPY + merge, quarantine rows, progress row) in one transaction. It heartbeats the
  committed offset; a retry resumes after the last committed chunk, so nothing is loaded or
  counted twice.
- ``clinical.finish_batch`` writes the per-file error NDJSON objects, stores the final report,
  commits the watermark (completed batches only), audits and emits COMPLETE or FAIL.
- ``clinical.reconcile`` re-checks open quarantined records with the current pipeline.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import orjson
from temporalio import activity

from activities.clinical_models import (
    BatchFile,
    BeginBatchRequest,
    FinishBatchRequest,
    FinishBatchResult,
    PartitionResult,
    PartitionTask,
    PlannedPartition,
    PlanRequest,
    PlanResult,
    ReconcileRequest,
    ReconcileResult,
)
from activities.clinical_transform import (
    ChunkOutput,
    CopyChunkOutput,
    FhirBlockChunk,
    HL7Chunk,
    pool_ready,
    raw_block_items,
    transform_fhir_block,
    transform_hl7_chunk,
)
from activities.deps import Deps
from activities.errors import taxonomy_errors
from clinflow.audit_chain import AuditEntry
from clinflow.clinical import (
    FhirRow,
    LoadCounts,
    ProcessContext,
    Processed,
    QuarantineReason,
    ValidationReport,
    agunzip_chunks,
    commit_watermark,
    finish_batch,
    get_watermark,
    insert_quarantine,
    load_chunk,
    process_fhir_line,
    process_hl7_message,
    split_hl7_messages,
    start_batch,
)
from clinflow.clinical.chunk_signing import (
    ChunkKey,
    chunk_key,
    sign_raw,
    verify_copy_output,
    verify_output,
)
from clinflow.clinical.error_report import aiter_error_lines, count_errors, error_object_key
from clinflow.clinical.hl7_split import HL7RawMessage
from clinflow.clinical.lineage import (
    LineageDataset,
    LineageEmitter,
    LineageRun,
    LineageState,
    output_tables,
)
from clinflow.clinical.loader import load_copy_rows
from clinflow.clinical.ndjson_blocks import RawBlock, aiter_ndjson_blocks
from clinflow.clinical.ndjson_reader import DEFAULT_KEEP_PREFIX, RawLine
from clinflow.clinical.quarantine_store import aesgcm_sealer, open_sealed
from clinflow.errors import FatalSchemaMismatch, RecoverableTimeout

T = TypeVar("T")

# A chunk is at most chunk_rows records and at most this many bytes. Chunks in flight (raw
# block out, COPY tuples back) are capped per worker process: 2 per validation process plus
# the one being committed, at least one per running partition, at most PIPELINE_DEPTH_MAX per
# partition. So the worker's memory is bounded whatever the input, and a partition running
# alone (the tail of a batch) still keeps two validation processes busy while it commits.
CHUNK_MAX_BYTES = 2 * 1024 * 1024
HL7_MAX_FILE_BYTES = 256 * 1024 * 1024
PIPELINE_DEPTH_MAX = 3
NOT_RECHECKED = frozenset({QuarantineReason.LINE_TOO_LONG, QuarantineReason.RESOURCE_TYPE_MISMATCH})

_PROGRESS_GET = """
SELECT committed_offset, chunks, done, report, counts FROM clinical_partition_progress
WHERE batch_id = $1 AND attempt_token = $2 AND partition_id = $3
"""
_PROGRESS_PUT = """
INSERT INTO clinical_partition_progress AS p
    (batch_id, attempt_token, partition_id, committed_offset, chunks, done, report, counts)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)
ON CONFLICT (batch_id, attempt_token, partition_id) DO UPDATE SET
    committed_offset = excluded.committed_offset, chunks = excluded.chunks,
    done = excluded.done, report = excluded.report, counts = excluded.counts, updated_at = now()
WHERE p.committed_offset = $9 AND p.chunks = $10 AND NOT p.done
RETURNING 1
"""


class PartitionSuperseded(RecoverableTimeout):
    """A newer attempt of the same partition owns its progress (code
    ``partition_attempt_superseded``); the older attempt's chunk is rolled back."""


@dataclass
class _Progress:
    offset: int
    chunks: int
    done: bool
    report: ValidationReport
    counts: LoadCounts
    insert_first: bool = True  # try COPY straight into the table (see loader.load_copy_rows)


def _json(model: ValidationReport | LoadCounts) -> str:
    return orjson.dumps(model.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS).decode()


def ack_object_key(batch_id: str, file_index: int, name: str) -> str:
    """S3 key of the ACK NDJSON object of HL7 input file ``file_index``."""
    return f"clinical/batches/{batch_id}/acks/{file_index:04d}-{name}.acks.ndjson"


async def _batched(source: AsyncIterator[bytes], size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    buf = bytearray()
    async for item in source:
        buf += item
        if len(buf) >= size:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


class ClinicalActivities:
    """The clinical batch activities of one worker process.

    ``executor`` runs the CPU-bound transform (a ``ProcessPoolExecutor`` to use every core);
    None runs it in the default thread pool (one core, for small deployments and tests).
    """

    def __init__(self, deps: Deps, executor: Executor | None = None) -> None:
        self.deps = deps
        self.executor = executor
        self._pool_started = False
        # Chunks in flight in this process, over all running partitions (see CHUNK_MAX_BYTES).
        self._in_flight = 0
        self._chunk_budget = 2 * max(deps.settings.clinical_process_pool_size, 1) + 1
        self.lineage = LineageEmitter(deps.settings)

    # -- helpers ------------------------------------------------------------------------------

    def _lineage_run(
        self, batch_id: str, attempt: str, kind: str, source: str, files: list[BatchFile]
    ) -> LineageRun:
        pg_ns, tables = output_tables(self.deps.settings)
        return LineageRun(
            batch_id=batch_id,
            attempt_token=attempt,
            kind=kind,
            source_system=source,
            inputs=[LineageDataset(namespace=f"s3://{f.bucket}", name=f.key) for f in files],
            outputs=[LineageDataset(namespace=pg_ns, name=t) for t in tables],
        )

    def _start_pool(self) -> None:
        """Start and warm every validation process now (no-op tasks), so they are ready
        while the batch is being planned instead of when its first chunk arrives. A process
        pool spawns one process per submission while none is idle."""
        if self._pool_started or not isinstance(self.executor, ProcessPoolExecutor):
            return
        self._pool_started = True
        for _ in range(self.deps.settings.clinical_process_pool_size):
            self.executor.submit(pool_ready)

    async def _run_cpu(self, fn: Callable[[Any], T], arg: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, fn, arg)

    async def _read_range(self, file: BatchFile, start: int, end: int) -> bytes:
        out = bytearray()
        async for chunk in self.deps.store.download_range(file.bucket, file.key, start, end):
            out += chunk
        return bytes(out)

    # -- begin / finish -------------------------------------------------------------------------

    @activity.defn(name="clinical.begin_batch")
    @taxonomy_errors
    async def begin_batch(self, req: BeginBatchRequest) -> datetime | None:
        """Record the batch, read the watermark, audit and emit START. Idempotent."""
        self._start_pool()
        async with self.deps.pool.acquire() as conn:
            await start_batch(conn, req.batch_id, req.source_system, req.kind)
            watermark = await get_watermark(conn, req.source_system)
        await self.deps.audit.append(
            AuditEntry(
                entry_id=f"clinical:{req.batch_id}:{req.attempt_token}:started",
                occurred_at=req.when,
                actor=req.submitted_by,
                action="clinical.batch.started",
                location=f"workflow:{req.workflow_id}",
                reason=f"{req.kind} batch from source {req.source_system}",
                subject_ref=f"batch:{req.batch_id}",
                details={
                    "files": [{"uri": f.uri, "sha256": f.sha256, "size": f.size} for f in req.files]
                },
            )
        )
        run = self._lineage_run(
            req.batch_id, req.attempt_token, req.kind, req.source_system, req.files
        )
        await asyncio.to_thread(self.lineage.emit, run, "START", req.when)
        return watermark

    @activity.defn(name="clinical.finish_batch")
    @taxonomy_errors
    async def finish_batch(self, req: FinishBatchRequest) -> FinishBatchResult:
        """Error objects, final report, watermark, audit and lineage. Idempotent."""
        error_objects: list[str] = []
        for index, file in enumerate(req.files):
            async with self.deps.pool.acquire() as conn:
                n = await count_errors(conn, req.batch_id, file.uri)
            if not n:
                continue
            key = error_object_key(req.batch_id, index, file.name)
            await self.deps.store.upload(
                self.deps.settings.s3_bucket_quarantine,
                key,
                self._error_stream(req.batch_id, file.uri),
                content_type="application/fhir+ndjson",
            )
            error_objects.append(f"s3://{self.deps.settings.s3_bucket_quarantine}/{key}")
            activity.heartbeat(index)
        committed: datetime | None = None
        async with self.deps.pool.acquire() as conn:
            await finish_batch(conn, req.batch_id, req.status, req.report)
            newest = req.counts.max_last_updated
            if req.status == "completed" and newest is not None:
                await commit_watermark(conn, req.source_system, newest, req.batch_id)
                committed = await get_watermark(conn, req.source_system)
        await self.deps.audit.append(
            AuditEntry(
                entry_id=f"clinical:{req.batch_id}:{req.attempt_token}:{req.status}",
                occurred_at=req.when,
                actor=f"workflow:{req.workflow_id}",
                action=f"clinical.batch.{req.status}",
                location=f"workflow:{req.workflow_id}",
                reason=req.error or f"{req.kind} batch {req.status}",
                subject_ref=f"batch:{req.batch_id}",
                details={
                    "records": req.report.records,
                    "valid": req.report.valid,
                    "quarantined": req.report.quarantined,
                    "inserted": req.counts.inserted,
                    "updated": req.counts.updated,
                    "skipped": req.counts.skipped,
                    "discarded_below_watermark": req.counts.discarded_below_watermark,
                    "error_objects": error_objects,
                },
            )
        )
        run = self._lineage_run(
            req.batch_id, req.attempt_token, req.kind, req.source_system, req.files
        )
        if req.status == "completed":
            run.outputs[0].rows = req.counts.inserted + req.counts.updated
            run.outputs[1].rows = req.report.quarantined_total
        state: LineageState = "COMPLETE" if req.status == "completed" else "FAIL"
        await asyncio.to_thread(self.lineage.emit, run, state, req.when, req.error)
        return FinishBatchResult(error_objects=error_objects, watermark_committed=committed)

    async def _error_stream(self, batch_id: str, source_uri: str) -> AsyncIterator[bytes]:
        async with self.deps.pool.acquire() as conn, conn.transaction():
            async for block in _batched(aiter_error_lines(conn, batch_id, source_uri)):
                yield block

    # -- planning -------------------------------------------------------------------------------

    @activity.defn(name="clinical.plan_partitions")
    @taxonomy_errors
    async def plan_partitions(self, req: PlanRequest) -> PlanResult:
        """Up to ``max_partitions`` line-aligned ranges from ``from_offset`` (deterministic).

        gzip and HL7 files are one partition each. Only small windows at the cuts are read.
        """
        size = req.file.size
        if req.kind == "hl7" or req.file.compressed:
            part = PlannedPartition(file_index=req.file_index, index=0, start=0, end=size)
            return PlanResult(partitions=[part] if size else [], next_offset=None)
        parts: list[PlannedPartition] = []
        pos = req.from_offset
        index = req.first_index
        window = 64 * 1024
        while pos < size and len(parts) < req.max_partitions:
            end = size
            cut = pos + req.target_bytes
            if cut < size:
                scan = cut - 1
                end = size
                while scan < size:
                    block = await self._read_range(req.file, scan, min(scan + window, size))
                    if not block:
                        break
                    idx = block.find(b"\n")
                    if idx >= 0:
                        end = scan + idx + 1
                        break
                    scan += len(block)
            parts.append(
                PlannedPartition(file_index=req.file_index, index=index, start=pos, end=end)
            )
            index += 1
            pos = end
        return PlanResult(partitions=parts, next_offset=pos if pos < size else None)

    # -- loading --------------------------------------------------------------------------------

    async def _get_progress(self, task: PartitionTask) -> _Progress | None:
        async with self.deps.pool.acquire() as conn:
            row = await conn.fetchrow(
                _PROGRESS_GET, task.batch_id, task.attempt_token, task.partition.partition_id
            )
        if row is None:
            return None
        return _Progress(
            offset=int(row["committed_offset"]),
            chunks=int(row["chunks"]),
            done=bool(row["done"]),
            report=ValidationReport.model_validate_json(row["report"]),
            counts=LoadCounts.model_validate_json(row["counts"]),
        )

    async def _commit_chunk(
        self,
        task: PartitionTask,
        out: ChunkOutput | CopyChunkOutput,
        context: str,
        key: ChunkKey,
        progress: _Progress,
        next_offset: int,
    ) -> None:
        """Verify the chunk's output signature, then load it with its progress, atomically."""
        if isinstance(out, CopyChunkOutput):
            verify_copy_output(
                key, context, out.rows.data, out.rows.summary(), out.records, out.signature
            )
        else:
            verify_output(key, context, out.rows, out.records, out.signature, out.acks)
        payload_kid, payload_key = self.deps.keyring.active("payload")
        seal = aesgcm_sealer(payload_kid, payload_key)
        report = progress.report.merge(out.report)
        async with self.deps.pool.acquire() as conn, conn.transaction():
            if isinstance(out, CopyChunkOutput):
                counts, refused = await load_copy_rows(
                    conn, out.rows, insert_first=progress.insert_first
                )
                if refused:  # keys already stored (a reload, updates): merge the rest directly
                    progress.insert_first = False
            else:
                counts = await load_chunk(
                    conn,
                    out.rows,
                    task.batch_id,
                    task.source_system,
                    watermark=task.watermark,
                    policy=task.options.watermark_policy,
                )
            await insert_quarantine(conn, out.records, task.batch_id, task.source_system, seal=seal)
            total = progress.counts.merge(counts)
            await self._put_progress(
                conn, task, progress, next_offset, progress.chunks + 1, False, report, total
            )
        progress.offset = next_offset
        progress.chunks += 1
        progress.report = report
        progress.counts = total
        activity.heartbeat({"committed_offset": next_offset, "chunks": progress.chunks})

    async def _mark_done(self, task: PartitionTask, progress: _Progress) -> None:
        async with self.deps.pool.acquire() as conn:
            await self._put_progress(
                conn,
                task,
                progress,
                progress.offset,
                progress.chunks,
                True,
                progress.report,
                progress.counts,
            )

    async def _put_progress(
        self,
        conn: asyncpg.Connection,
        task: PartitionTask,
        progress: _Progress,
        offset: int,
        chunks: int,
        done: bool,
        report: ValidationReport,
        counts: LoadCounts,
    ) -> None:
        """Advance the progress row only from the state this attempt last saw (fencing).

        Two attempts of one partition can overlap (a heartbeat timeout starts a retry while
        the first attempt still runs); the one whose view is stale gets PartitionSuperseded
        and its transaction (rows included) rolls back, so nothing is counted twice.
        """
        moved = await conn.fetchval(
            _PROGRESS_PUT,
            task.batch_id,
            task.attempt_token,
            task.partition.partition_id,
            offset,
            chunks,
            done,
            _json(report),
            _json(counts),
            progress.offset,
            progress.chunks,
        )
        if moved is None:
            raise PartitionSuperseded(
                "partition_attempt_superseded",
                "another attempt of this partition committed first; this one stops",
                subject=f"{task.batch_id}/{task.partition.partition_id}",
            )

    @activity.defn(name="clinical.load_partition")
    @taxonomy_errors
    async def load_partition(self, task: PartitionTask) -> PartitionResult:
        """Stream, validate and load one partition; resumes after its last committed chunk."""
        # The heartbeat details carry the committed offset for operators (Temporal UI); the
        # progress row, committed in the same transaction as each chunk, is the resume point:
        # it is never behind the last heartbeat and never ahead of what is in the tables.
        progress = await self._get_progress(task)
        resumed: int | None = None
        if progress is None:
            progress = _Progress(task.partition.start, 0, False, ValidationReport(), LoadCounts())
        else:
            resumed = progress.offset
        ack_object: str | None = None
        if not progress.done:
            beat = asyncio.create_task(self._heartbeat_loop(task, progress))
            try:
                if task.kind == "hl7":
                    ack_object = await self._load_hl7(task, progress)
                else:
                    await self._load_fhir(task, progress)
                await self._mark_done(task, progress)
            finally:
                beat.cancel()
        elif task.kind == "hl7":
            ack_object = f"s3://{self.deps.settings.s3_bucket_batches}/" + ack_object_key(
                task.batch_id, task.partition.file_index, task.file.name
            )
        await self._audit_partition(task, progress)
        return PartitionResult(
            partition_id=task.partition.partition_id,
            report=progress.report,
            counts=progress.counts,
            chunks=progress.chunks,
            resumed_from=resumed,
            ack_object=ack_object,
        )

    async def _heartbeat_loop(self, task: PartitionTask, progress: _Progress) -> None:
        """Heartbeat the committed offset several times per heartbeat timeout, also while a
        chunk is being validated, so a live attempt is never mistaken for a dead one."""
        interval = max(task.options.heartbeat_seconds / 4, 0.2)
        while True:
            activity.heartbeat({"committed_offset": progress.offset, "chunks": progress.chunks})
            await asyncio.sleep(interval)

    async def _audit_partition(self, task: PartitionTask, progress: _Progress) -> None:
        part = task.partition
        await self.deps.audit.append(
            AuditEntry(
                entry_id=(
                    f"clinical:{task.batch_id}:{task.attempt_token}:partition:{part.partition_id}"
                ),
                occurred_at=datetime.now(UTC),
                actor=f"workflow:{task.workflow_id}",
                action="clinical.partition.loaded",
                location=f"workflow:{task.workflow_id}",
                reason="partition validated and loaded",
                subject_ref=f"{task.file.uri}#bytes={part.start}-{part.end}",
                payload_sha256=task.file.sha256,
                details={
                    "records": progress.report.records,
                    "valid": progress.report.valid,
                    "quarantined": progress.report.quarantined_total,
                    "inserted": progress.counts.inserted,
                    "updated": progress.counts.updated,
                    "skipped": progress.counts.skipped,
                    "chunks": progress.chunks,
                },
            )
        )

    def _context(self, task: PartitionTask) -> ProcessContext:
        return ProcessContext(
            source_uri=task.file.uri,
            expected_resource_type=task.file.resource_type,
            fallback_last_updated=task.transaction_time,
            attempt=1,
        )

    async def _blocks(self, task: PartitionTask, resume: int) -> AsyncIterator[RawBlock | RawLine]:
        """The partition from ``resume`` as raw blocks of whole lines (no per-line work here)."""
        file, part = task.file, task.partition
        opts = {
            "max_lines": task.options.chunk_rows,
            "max_bytes": CHUNK_MAX_BYTES,
            "max_line_bytes": task.options.max_line_bytes,
            "keep_prefix": min(DEFAULT_KEEP_PREFIX, task.options.max_line_bytes),
        }
        if file.compressed:
            stream = agunzip_chunks(self.deps.store.download(file.bucket, file.key))
            async for item in aiter_ndjson_blocks(stream, 0, None, resume_from=resume, **opts):
                yield item
            return
        ranged = self.deps.store.download_range(file.bucket, file.key, resume, part.end)
        async for item in aiter_ndjson_blocks(ranged, resume, part.end, **opts):
            yield item

    async def _load_fhir(self, task: PartitionTask, progress: _Progress) -> None:
        """Raw blocks go to the transform pool; COPY tuples come back: one hand-over per chunk."""
        key = chunk_key(self.deps.keyring)
        ctx = self._context(task)
        resume = progress.offset
        pending: deque[tuple[asyncio.Future[CopyChunkOutput], str, int]] = deque()

        async def drain_one() -> None:
            fut, context, next_offset = pending.popleft()
            try:
                out = await fut
            finally:
                self._in_flight -= 1
            await self._commit_chunk(task, out, context, key, progress, next_offset)

        try:
            async for item in self._blocks(task, resume):
                context = f"{task.batch_id}/{task.partition.partition_id}@{item.offset}"
                chunk = FhirBlockChunk(
                    context=context,
                    item=item,
                    signature=sign_raw(key, context, raw_block_items(item)),
                    ctx=ctx,
                    key=key,
                    max_line_bytes=task.options.max_line_bytes,
                    keep_prefix=min(DEFAULT_KEEP_PREFIX, task.options.max_line_bytes),
                    resume_from=resume,
                    watermark=task.watermark,
                    policy=task.options.watermark_policy,
                    source_system=task.source_system,
                    batch_id=task.batch_id,
                )
                job = asyncio.ensure_future(self._run_cpu(transform_fhir_block, chunk))
                pending.append((job, context, item.next_offset))
                self._in_flight += 1
                while len(pending) >= PIPELINE_DEPTH_MAX or (
                    len(pending) > 1 and self._in_flight > self._chunk_budget
                ):
                    await drain_one()
            while pending:
                await drain_one()
        finally:
            for fut, _, _ in pending:
                fut.cancel()
            self._in_flight -= len(pending)

    async def _load_hl7(self, task: PartitionTask, progress: _Progress) -> str:
        """Whole-file HL7 partition: messages in chunks; ACKs for every message stored in S3."""
        file = task.file
        if file.size > HL7_MAX_FILE_BYTES:
            raise FatalSchemaMismatch(
                "hl7_file_too_large",
                f"HL7 file of {file.size} bytes exceeds {HL7_MAX_FILE_BYTES}",
                subject=file.uri,
            )
        data = await self._read_range(file, 0, file.size)
        split = await asyncio.to_thread(split_hl7_messages, data)
        del data
        key = chunk_key(self.deps.keyring)
        ctx = self._context(task).model_copy(update={"expected_resource_type": None})
        acks: list[bytes] = []
        step = max(1, min(task.options.chunk_rows, 500))
        messages = split.messages
        for i in range(0, len(messages), step):
            part = messages[i : i + step]
            items = [(m.index, m.offset, m.data) for m in part]
            context = f"{task.batch_id}/{task.partition.partition_id}#{part[0].index}"
            sig = sign_raw(key, context, [(m.offset, m.data) for m in part])
            out = await self._run_cpu(
                transform_hl7_chunk, HL7Chunk(context, items, sig, ctx, task.ack_time, key)
            )
            acks.extend(out.acks)
            next_offset = messages[i + step].offset if i + step < len(messages) else file.size
            if part[0].offset < progress.offset:
                continue  # committed by an earlier attempt: only its ACKs are rebuilt
            await self._commit_chunk(task, out, context, key, progress, next_offset)
        bucket = self.deps.settings.s3_bucket_batches
        ack_key = ack_object_key(task.batch_id, task.partition.file_index, file.name)
        await self.deps.store.put_bytes(
            bucket, ack_key, b"".join(acks), content_type="application/x-ndjson"
        )
        return f"s3://{bucket}/{ack_key}"

    # -- reconciliation -------------------------------------------------------------------------

    @activity.defn(name="clinical.reconcile")
    @taxonomy_errors
    async def reconcile(self, req: ReconcileRequest) -> ReconcileResult:
        """Re-check open quarantined records with today's pipeline; load what now passes.

        A recovered record is loaded (same merge rules) and its quarantine row set to
        ``recovered`` in the same transaction; one that still fails gets ``attempt + 1`` and
        its current reason. Truncated records and type mismatches are not re-checked.
        """
        reasons = req.reasons or [str(r) for r in QuarantineReason if r not in NOT_RECHECKED]
        async with self.deps.pool.acquire() as conn:
            rows = await conn.fetch(
                """
                SELECT q.quarantine_id, q.batch_id, q.source_system, q.source_uri, q.line_index,
                       q.message_index, q.byte_offset, q.reason_code, q.raw_ciphertext,
                       q.raw_key_id, q.attempt, b.kind
                FROM quarantine q JOIN batches b USING (batch_id)
                WHERE q.status = 'open' AND NOT q.raw_truncated AND q.raw_ciphertext IS NOT NULL
                  AND q.reason_code = ANY($1::text[]) AND ($2::text IS NULL OR q.batch_id = $2)
                ORDER BY q.quarantine_id LIMIT $3
                """,
                reasons,
                req.batch_id,
                req.limit,
            )
        result = ReconcileResult()
        for i, row in enumerate(rows):
            result.examined += 1
            raw = open_sealed(
                self.deps.keyring.get("payload", row["raw_key_id"]), row["raw_ciphertext"]
            )
            ctx = ProcessContext(source_uri=row["source_uri"], attempt=int(row["attempt"]) + 1)
            fhir_rows: list[FhirRow] = []
            reason: str | None = None
            message = ""
            if row["kind"] == "hl7":
                msg = HL7RawMessage(
                    index=int(row["message_index"] or 0), offset=int(row["byte_offset"]), data=raw
                )
                res = process_hl7_message(msg, ctx, ack_time=req.when)
                if res.quarantine is None:
                    fhir_rows = res.rows
                else:
                    reason, message = str(res.quarantine.reason), res.quarantine.message
            else:
                out = process_fhir_line(raw, ctx, offset=int(row["byte_offset"]))
                if isinstance(out, Processed):
                    fhir_rows = [out.row]
                else:
                    reason, message = str(out.record.reason), out.record.message
            async with self.deps.pool.acquire() as conn, conn.transaction():
                if reason is None:
                    counts = await load_chunk(
                        conn, fhir_rows, row["batch_id"], row["source_system"]
                    )
                    result.counts = result.counts.merge(counts)
                    await conn.execute(
                        "UPDATE quarantine SET status = 'recovered', resolved_at = now(), "
                        "attempt = attempt + 1 WHERE quarantine_id = $1",
                        row["quarantine_id"],
                    )
                    result.recovered += 1
                    code = str(row["reason_code"])
                    result.recovered_by_reason[code] = result.recovered_by_reason.get(code, 0) + 1
                else:
                    await conn.execute(
                        "UPDATE quarantine SET attempt = attempt + 1, reason_code = $2, "
                        "message = $3 WHERE quarantine_id = $1",
                        row["quarantine_id"],
                        reason,
                        message,
                    )
                    result.still_quarantined += 1
            if i % 100 == 0:
                activity.heartbeat(i)
        await self.deps.audit.append(
            AuditEntry(
                entry_id=req.audit_entry_id,
                occurred_at=req.when,
                actor="schedule:clinical-reconcile",
                action="clinical.quarantine.reconciled",
                reason="quarantined records re-checked with the current pipeline",
                subject_ref="table:quarantine",
                details=result.model_dump(mode="json", exclude={"counts"}),
            )
        )
        return result
