"""PacketBatchWorkflow: many packets, fanned out as child SitePacketWorkflows.

The batch plan (every packet's input) is stored in the object store and read a page at a
time, so the batch's own history carries references, not packets. Children start on their
region's task queue ``<prefix>-<region>``, or on ``<prefix>-<region>-urgent`` when their
planned site-initiation date is within ``urgent_days`` of today (a date already past is overdue
for re-planning and goes to its regional queue). A packet whose region no queue serves is ended
visibly: DEAD_LETTERED with MANIFEST_INVALID, a DLQ entry and an audit entry. At most
``max_parallel`` children are unsettled at once (a sliding window); after ``continue_after``
starts the batch continues as new with the children still in flight.

A child *settles* when it reaches a terminal state or starts waiting for people (BLOCKED,
ESCALATED, AWAITING_DOCUMENTS): it signals ``packet_settled`` to the batch once. Children are
started with parent-close policy ABANDON, so the batch returns its summary while blocked
children keep waiting for their reviewers; the summary reports them as waiting. A packet whose
workflow already exists (duplicate submission) is not started again: its current status is
looked up and reported with the note ``already submitted``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.packets import PacketActivities
    from activities.packets_models import (
        BatchInput,
        BatchSummary,
        DescribeInput,
        LoadPageInput,
        PacketInput,
        PacketSettled,
        PacketStatus,
        PacketStatusName,
        RejectPacketInput,
        packet_queue,
    )
    from clinflow.audit_chain import AuditEntry
    from workflows.packets import SitePacketWorkflow

from workflows.search_attributes import KIND, PROTOCOL, REGION, SITE, SOURCE, STATUS

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_attempts=3,
    non_retryable_error_types=["FATAL_SCHEMA_MISMATCH"],
)
# Bookkeeping writes (a rejected packet's row and DLQ entry) wait out database outages.
BOOKKEEPING_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=0,
    non_retryable_error_types=["FATAL_SCHEMA_MISMATCH", "COMPLIANCE_BLOCK"],
)
# How often the batch looks up children it cannot watch directly (started by an earlier run).
RECHECK = timedelta(seconds=30)


@workflow.defn
class PacketBatchWorkflow:
    """Runs a batch of packets with bounded parallelism; returns counts per outcome/category."""

    def __init__(self) -> None:
        self._summary: BatchSummary | None = None
        self._settled: dict[str, PacketSettled] = {}
        self._in_flight: dict[str, str] = {}  # packet id -> task queue
        self._watched: set[str] = set()
        self._watchers: list[asyncio.Task[None]] = []

    @workflow.signal(name="packet_settled")
    def packet_settled(self, settled: PacketSettled) -> None:
        """A child reached a terminal or waiting state."""
        self._settled.setdefault(settled.packet_id, settled)

    @workflow.query(name="progress")
    def progress(self) -> BatchSummary | None:
        """Counts so far (started, settled, per outcome, per category)."""
        return self._summary

    @workflow.run
    async def run(self, inp: BatchInput) -> BatchSummary:
        summary = inp.carried or BatchSummary(batch_id=inp.batch_id, total=inp.total)
        if inp.carried is not None:
            summary.runs += 1
        self._summary = summary
        workflow.upsert_search_attributes(
            [KIND.value_set("packet-batch"), STATUS.value_set("RUNNING")]
        )
        self._in_flight = dict.fromkeys(inp.in_flight, "")
        offset = inp.offset
        buffer: list[PacketInput] = []
        started_here = 0
        while True:
            self._apply_settled()
            room = inp.max_parallel - len(self._in_flight)
            while room > 0 and (buffer or offset < inp.total):
                if not buffer:
                    page = await workflow.execute_activity_method(
                        PacketActivities.load_batch_page,
                        LoadPageInput(plan=inp.plan, offset=offset, limit=inp.page_size),
                        start_to_close_timeout=timedelta(minutes=1),
                        retry_policy=RETRY,
                    )
                    if not page.packets:
                        offset = inp.total
                        break
                    buffer = page.packets
                    offset += len(page.packets)
                packet = buffer.pop(0)
                await self._start(packet, inp)
                started_here += 1
                room = inp.max_parallel - len(self._in_flight)
                self._apply_settled()
            done_loading = offset >= inp.total and not buffer
            if done_loading and not self._in_flight:
                break
            if started_here >= inp.continue_after and not done_loading:
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._apply_settled()
                workflow.continue_as_new(
                    inp.model_copy(
                        update={
                            "offset": offset - len(buffer),
                            "in_flight": list(self._in_flight),
                            "carried": summary,
                        }
                    )
                )
            try:
                await workflow.wait_condition(
                    lambda: any(pid in self._settled for pid in self._in_flight),
                    timeout=RECHECK,
                )
            except TimeoutError:
                await self._recheck_unwatched()
        workflow.upsert_search_attributes([STATUS.value_set("COMPLETED")])
        return summary

    async def _start(self, packet: PacketInput, inp: BatchInput) -> None:
        m = packet.manifest
        pid = packet.packet_id
        assert self._summary is not None
        self._summary.started += 1
        if pid in self._in_flight or any(p.packet_id == pid for p in self._summary.packets):
            self._record(PacketSettled(packet_id=pid, status="DUPLICATE_IN_BATCH"))
            return
        try:
            queue = packet_queue(
                inp.queue_prefix,
                m.region,
                m.target_activation_date,
                workflow.now().date(),
                inp.urgent_days,
                inp.regions,
            )
        except ValueError as exc:
            # No queue serves the region: end the packet visibly (row, DLQ entry, audit).
            rejected = await workflow.execute_activity_method(
                PacketActivities.reject_packet,
                RejectPacketInput(
                    packet=packet,
                    reason=str(exc),
                    entry=AuditEntry(
                        entry_id=f"{pid}:rejected:{workflow.info().workflow_id}",
                        occurred_at=workflow.now(),
                        actor=f"workflow:{workflow.info().workflow_id}",
                        action="packet.rejected",
                        location=f"temporal:{workflow.info().task_queue}",
                        reason="MANIFEST_INVALID",
                        subject_ref=pid,
                        details={"region": m.region, "source": "batch"},
                    ),
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=BOOKKEEPING_RETRY,
            )
            self._record(
                PacketSettled(
                    packet_id=pid,
                    status=PacketStatusName.DEAD_LETTERED.value,
                    reasons=["MANIFEST_INVALID"],
                    categories={"FATAL_SCHEMA_MISMATCH": 1},
                    note=f"{exc} (DLQ {rejected.dlq_id})",
                )
            )
            return
        try:
            handle = await workflow.start_child_workflow(
                SitePacketWorkflow.run,
                packet.model_copy(update={"source": "batch"}),
                id=pid,
                task_queue=queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=_packet_attributes(packet),
                static_summary=f"packet {pid} ({queue})",
            )
        except WorkflowAlreadyStartedError:
            existing = await workflow.execute_activity_method(
                PacketActivities.describe_packet,
                DescribeInput(workflow_id=pid),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RETRY,
            )
            self._record(existing.model_copy(update={"note": "already submitted"}))
            return
        self._in_flight[pid] = queue
        self._watched.add(pid)
        self._watchers.append(asyncio.create_task(self._watch(pid, queue, handle)))

    async def _watch(
        self, pid: str, queue: str, handle: workflow.ChildWorkflowHandle[Any, PacketStatus]
    ) -> None:
        """A child that ends without settling (failed, terminated) still settles the batch."""
        try:
            result = await handle
            self._settled.setdefault(
                pid,
                PacketSettled(
                    packet_id=pid,
                    status=result.status,
                    reasons=result.reasons,
                    categories={k: v for k, v in result.counts.items() if k != "GAP"},
                    queue=queue,
                ),
            )
        except Exception as exc:
            self._settled.setdefault(
                pid,
                PacketSettled(
                    packet_id=pid, status="WORKFLOW_FAILED", queue=queue, note=type(exc).__name__
                ),
            )

    async def _recheck_unwatched(self) -> None:
        """Look up children started by an earlier run (their settle signal may be lost)."""
        for pid in [p for p in self._in_flight if p not in self._watched]:
            if pid in self._settled:
                continue
            current = await workflow.execute_activity_method(
                PacketActivities.describe_packet,
                DescribeInput(workflow_id=pid),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RETRY,
            )
            if current.status != PacketStatusName.PROCESSING.value:
                self._settled.setdefault(pid, current)

    def _apply_settled(self) -> None:
        for pid in [p for p in self._in_flight if p in self._settled]:
            queue = self._in_flight.pop(pid)
            settled = self._settled[pid]
            if queue and not settled.queue:
                settled = settled.model_copy(update={"queue": queue})
            self._record(settled)

    def _record(self, settled: PacketSettled) -> None:
        s = self._summary
        assert s is not None
        s.settled += 1
        s.packets.append(settled)
        status = str(settled.status)
        s.outcomes[status] = s.outcomes.get(status, 0) + 1
        for category, count in settled.categories.items():
            s.categories[category] = s.categories.get(category, 0) + count
        if settled.queue:
            s.queues[settled.queue] = s.queues.get(settled.queue, 0) + 1


def _packet_attributes(packet: PacketInput) -> TypedSearchAttributes:
    m = packet.manifest
    return TypedSearchAttributes(
        [
            SearchAttributePair(KIND, "packet"),
            SearchAttributePair(STATUS, PacketStatusName.PROCESSING.value),
            SearchAttributePair(SITE, m.site_id),
            SearchAttributePair(PROTOCOL, f"{m.protocol_number}-v{m.protocol_version}"),
            SearchAttributePair(REGION, m.region),
            SearchAttributePair(SOURCE, "batch"),
        ]
    )


__all__ = ["PacketBatchWorkflow"]
