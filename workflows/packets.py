"""SitePacketWorkflow: one site's activation packet, from stored documents to a decision.

Per document (in parallel): hash-verify, store, analyse (parse, then classify + extract +
validate in one domain step, :func:`clinflow.packets.pipeline.evaluate_document`), audit.
Then the optional external IRB-portal check, the cross-document checks and the gap analysis,
and routing by the error taxonomy (:func:`clinflow.packets.routing.route`):

- FATAL_SCHEMA_MISMATCH (or RECOVERABLE_TIMEOUT after its retries) -> a DLQ entry per failure
  with full context, terminal DEAD_LETTERED;
- COMPLIANCE_BLOCK -> BLOCKED (search attribute ClinflowStatus + ``status`` query) until an
  accepted ``approve``/``reject`` signal or ``review`` update from Regulatory Affairs; an
  unanswered block escalates (ESCALATED, audited) after the review deadline and keeps
  waiting; approve -> continue, reject -> terminal REJECTED;
- gaps -> AWAITING_DOCUMENTS until ``add_documents`` (signal or ``submit_documents`` update)
  closes them, or the gap deadline passes -> terminal INCOMPLETE with the gap list;
- WARNING_DEVIATION -> recorded, VALIDATED_WITH_WARNINGS; nothing -> VALIDATED
  (APPROVED after an approval).

Every transition and decision is on the audit chain with an entry id derived from the
workflow id and the step, so retries and replays never duplicate an entry. The workflow id is
the packet key; the run's ``as_of`` date is ``workflow.now().date()``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.errors import failure_details
    from activities.packets import PacketActivities
    from activities.packets_models import (
        AddDocumentsInput,
        AnalyseInput,
        AnalyseResult,
        AuditInput,
        DeadLetterInput,
        DocumentInput,
        DocumentStepInput,
        DocumentSummary,
        ExternalCheckInput,
        PacketChecksInput,
        PacketInput,
        PacketSettled,
        PacketStatus,
        PacketStatusName,
        RedactInput,
        RegisterPacketInput,
        ReviewCheckInput,
        ReviewInput,
        ReviewOutcome,
        ReviewRecord,
        TransitionInput,
    )
    from clinflow.audit_chain import AuditEntry
    from clinflow.errors import ErrorCategory
    from clinflow.packets.extraction_models import DocumentRecord
    from clinflow.packets.identity import document_key, packet_record_sha256
    from clinflow.packets.models import (
        Decision,
        DecisionAction,
        DocumentType,
        Finding,
        GapReport,
        PacketOutcome,
    )
    from clinflow.packets.routing import route

from workflows.search_attributes import (
    ERROR_CATEGORY,
    KIND,
    PROTOCOL,
    REGION,
    SITE,
    SOURCE,
    STATUS,
)

# Retries: an outage of the database or object store (INFRASTRUCTURE_UNAVAILABLE) is retried
# with jittered exponential backoff for as long as it lasts, so it never decides a packet; a
# RECOVERABLE_TIMEOUT (e.g. the IRB portal) gets three attempts (the activity makes its third
# failure non-retryable, see activities.errors) and is then dead-lettered; COMPLIANCE_BLOCK and
# FATAL_SCHEMA_MISMATCH stop at once.
IO_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=0,
    non_retryable_error_types=["COMPLIANCE_BLOCK", "FATAL_SCHEMA_MISMATCH"],
)
SHORT = timedelta(seconds=15)
# A document stage that keeps timing out (a file that hangs its parser) is given up after this
# and dead-lettered as RECOVERABLE_TIMEOUT; outages shorter than this only delay it.
DOCUMENT_STAGE_LIMIT = timedelta(hours=2)
MINUTE = timedelta(minutes=1)

DEAD_LETTER_CATEGORIES = (ErrorCategory.FATAL_SCHEMA_MISMATCH, ErrorCategory.RECOVERABLE_TIMEOUT)
OUTCOME_STATUS = {
    PacketOutcome.VALIDATED: PacketStatusName.VALIDATED,
    PacketOutcome.VALIDATED_WITH_WARNINGS: PacketStatusName.VALIDATED_WITH_WARNINGS,
    PacketOutcome.APPROVED: PacketStatusName.APPROVED,
    PacketOutcome.REJECTED: PacketStatusName.REJECTED,
    PacketOutcome.DEAD_LETTERED: PacketStatusName.DEAD_LETTERED,
    PacketOutcome.INCOMPLETE: PacketStatusName.INCOMPLETE,
}


@dataclass
class _DocResult:
    """What processing one document gave (kept in workflow memory, not in payloads)."""

    document: DocumentInput
    key: str
    record: DocumentRecord | None = None
    findings: list[Finding] = field(default_factory=list)
    stage: str = ""
    analysis: AnalyseResult | None = None


def _summary(r: _DocResult) -> DocumentSummary:
    """A document's line in the packet status: type, classification, signature, codes."""
    extraction = r.record.extraction if r.record else None
    signature = extraction.signature if extraction else None
    blocks = getattr(signature, "blocks", []) or []
    return DocumentSummary(
        name=r.document.name,
        document_key=r.key,
        doc_type=r.record.doc_type if r.record else DocumentType.UNKNOWN,
        page_count=r.record.page_count if r.record else 0,
        ocr_pages=r.analysis.ocr_pages if r.analysis else [],
        state="PROCESSED" if r.record else f"FAILED_AT_{r.stage.upper()}",
        classified_as=r.analysis.classification.doc_type if r.analysis else None,
        classification_confidence=r.analysis.classification.confidence if r.analysis else None,
        signature=getattr(signature, "status", None) if signature else None,
        signature_evidence=[
            " ".join(
                str(x)
                for x in (
                    getattr(b, "status", ""),
                    getattr(b, "kind", ""),
                    f"page {b.page + 1}" if getattr(b, "page", None) is not None else "",
                    getattr(b, "label", ""),
                )
                if x
            )
            for b in blocks
        ],
        codes=sorted({f.code for f in r.findings}),
    )


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str, str | None]] = set()
    out: list[Finding] = []
    for f in findings:
        mark = (f.code, str(f.category), f.document)
        if mark not in seen:
            seen.add(mark)
            out.append(f)
    return out


@workflow.defn
class SitePacketWorkflow:
    """One packet: documents in, a routed decision out (see module docstring)."""

    @workflow.init
    def __init__(self, inp: PacketInput) -> None:
        m = inp.manifest
        self._input = inp
        self._status = PacketStatus(
            packet_id=inp.packet_id,
            workflow_id=workflow.info().workflow_id,
            status=PacketStatusName.PROCESSING,
            region=m.region,
            site_id=m.site_id,
            protocol_version=m.protocol_version,
        )
        self._docs: dict[str, _DocResult] = {}
        self._packet_findings: list[Finding] = []
        self._gaps: GapReport | None = None
        self._reviews: list[tuple[str, ReviewInput]] = []
        self._review_seq = 0
        self._approved_codes: set[str] = set()
        self._rejection: str | None = None
        self._doc_requests: list[AddDocumentsInput] = []
        self._step = 0
        self._parent_told = False
        self._added: list[DocumentInput] = []
        self._refresh_record_hash()

    def _refresh_record_hash(self) -> None:
        """The hash a reviewer's e-signature binds to: the packet id and every document."""
        submitted = [*self._input.documents, *self._added]
        self._status.record_sha256 = packet_record_sha256(
            self._input.packet_id, [(d.name, d.ref.sha256) for d in submitted]
        )

    # ------------------------------------------------------------------ messages
    @workflow.query(name="status")
    def status(self) -> PacketStatus:
        """The packet's live state: status, reasons, findings, gaps, documents, reviews."""
        return self._status

    @workflow.query(name="gaps")
    def gaps(self) -> GapReport | None:
        """The latest gap analysis (None before it ran)."""
        return self._gaps

    @workflow.signal(name="approve")
    def approve(self, review: ReviewInput) -> None:
        """A reviewer approves the blocks (verified before it counts)."""
        self._queue_review("APPROVE", review)

    @workflow.signal(name="reject")
    def reject(self, review: ReviewInput) -> None:
        """A reviewer rejects the packet (verified before it counts)."""
        self._queue_review("REJECT", review)

    def _queue_review(self, decision: str, review: ReviewInput) -> None:
        if self._status.status not in (PacketStatusName.BLOCKED, PacketStatusName.ESCALATED):
            workflow.logger.warning("review signal ignored: packet is not awaiting review")
            return
        self._reviews.append((decision, review))

    @workflow.update(name="review")
    async def review(self, review: ReviewInput) -> ReviewOutcome:
        """Approve or reject synchronously; the answer says whether it was accepted."""
        assert review.decision is not None
        verdict = await self._decide(review.decision, review)
        return ReviewOutcome(
            accepted=verdict,
            status=self._status.status,
            code=None if verdict else (self._status.reviews[-1].code or "REFUSED"),
            message="decision recorded" if verdict else "decision refused and audited",
        )

    @review.validator
    def _validate_review(self, review: ReviewInput) -> None:
        if review.decision not in ("APPROVE", "REJECT"):
            raise ValueError("decision must be APPROVE or REJECT")
        if not review.reason.strip():
            raise ValueError("a reason is required")
        if self._status.status not in (PacketStatusName.BLOCKED, PacketStatusName.ESCALATED):
            raise ValueError(f"the packet is {self._status.status}, not awaiting review")

    @workflow.signal(name="add_documents")
    def add_documents(self, req: AddDocumentsInput) -> None:
        """More documents for the packet (processed when it is awaiting documents)."""
        self._doc_requests.append(req)

    @workflow.update(name="submit_documents")
    async def submit_documents(self, req: AddDocumentsInput) -> PacketStatusName:
        """Like the ``add_documents`` signal; returns the status once they are processed."""
        self._doc_requests.append(req)
        await workflow.wait_condition(lambda: req not in self._doc_requests)
        await workflow.wait_condition(
            lambda: self._status.status is not PacketStatusName.PROCESSING
        )
        return self._status.status

    @submit_documents.validator
    def _validate_documents(self, req: AddDocumentsInput) -> None:
        if not req.documents:
            raise ValueError("no documents given")
        if self._status.status is not PacketStatusName.AWAITING_DOCUMENTS:
            raise ValueError(f"the packet is {self._status.status}, not awaiting documents")

    # ------------------------------------------------------------------ run
    @workflow.run
    async def run(self, inp: PacketInput) -> PacketStatus:
        if inp.claim is not None:
            # A batch child: the batch holds only the residency head; the full input is read
            # here, on the packet's own regional queue.
            loaded = await workflow.execute_activity_method(
                PacketActivities.load_packet,
                inp.claim,
                start_to_close_timeout=SHORT,
                retry_policy=IO_RETRY,
            )
            inp = loaded.model_copy(update={"source": inp.source, "claim": inp.claim})
            self._input = inp
            self._refresh_record_hash()
        m = inp.manifest
        workflow.upsert_search_attributes(
            [
                KIND.value_set("packet"),
                STATUS.value_set(PacketStatusName.PROCESSING.value),
                SITE.value_set(m.site_id),
                PROTOCOL.value_set(f"{m.protocol_number}-v{m.protocol_version}"),
                REGION.value_set(m.region),
                SOURCE.value_set(inp.source),
            ]
        )
        await workflow.execute_activity_method(
            PacketActivities.register_packet,
            RegisterPacketInput(packet=inp, entry=self._entry("received", "packet.received")),
            start_to_close_timeout=SHORT,
            retry_policy=IO_RETRY,
        )
        await self._process_documents(inp.documents)
        external = await self._external_check()
        await self._packet_checks(external)
        while True:
            decision = self._route()
            if decision.action is DecisionAction.DEAD_LETTER:
                await self._dead_letter()
                return await self._finish(PacketStatusName.DEAD_LETTERED, decision)
            if decision.action is DecisionAction.AWAIT_REVIEW:
                await self._set_status(PacketStatusName.BLOCKED, decision, "packet.blocked")
                await self._await_review(decision)
                if self._rejection is not None:
                    self._status.rejection_reason = self._rejection
                    return await self._finish(PacketStatusName.REJECTED, decision)
                continue
            if decision.action is DecisionAction.AWAIT_DOCUMENTS:
                if self._status.gap_deadline is None:
                    self._status.gap_deadline = workflow.now() + timedelta(
                        seconds=inp.gap_deadline_seconds
                    )
                await self._set_status(
                    PacketStatusName.AWAITING_DOCUMENTS, decision, "packet.awaiting_documents"
                )
                if not await self._await_documents(self._status.gap_deadline):
                    return await self._finish(PacketStatusName.INCOMPLETE, decision)
                continue
            return await self._finish(OUTCOME_STATUS[decision.outcome], decision)

    # ------------------------------------------------------------------ documents
    async def _process_documents(self, documents: list[DocumentInput]) -> None:
        """Process each distinct document once (duplicates by hash are reported, not redone)."""
        seen = {r.document.ref.sha256 for r in self._docs.values()}
        todo: list[DocumentInput] = []
        for doc in documents:
            if doc.name in self._docs:
                continue
            if doc.ref.sha256 in seen:
                continue
            seen.add(doc.ref.sha256)
            todo.append(doc)
        if not todo:
            return
        self._status.status = PacketStatusName.PROCESSING
        workflow.upsert_search_attributes([STATUS.value_set(PacketStatusName.PROCESSING.value)])
        results = await asyncio.gather(*(self._process_one(d) for d in todo))
        for result in results:
            self._docs[result.document.name] = result
        self._refresh_documents()

    async def _process_one(self, doc: DocumentInput) -> _DocResult:
        m = self._input.manifest
        key = document_key(doc.ref.sha256, m.site_id, m.protocol_version)
        out = _DocResult(document=doc, key=key)
        step = DocumentStepInput(
            packet_id=self._input.packet_id,
            document_key=key,
            site_id=m.site_id,
            protocol_version=m.protocol_version,
            document=doc,
        )
        try:
            out.stage = "hash_verify"
            verified = await workflow.execute_activity_method(
                PacketActivities.hash_verify,
                step,
                start_to_close_timeout=timedelta(minutes=10),
                schedule_to_close_timeout=DOCUMENT_STAGE_LIMIT,
                heartbeat_timeout=timedelta(seconds=15),
                retry_policy=IO_RETRY,
            )
            out.findings.extend(verified.findings)
            out.stage = "store"
            stored = await workflow.execute_activity_method(
                PacketActivities.store, step, start_to_close_timeout=SHORT, retry_policy=IO_RETRY
            )
            if stored.reused and stored.record is not None:
                out.record = stored.record
                out.findings.extend(stored.findings)
                return out
            out.stage = "analyse"
            analysed = await workflow.execute_activity_method(
                PacketActivities.analyse,
                AnalyseInput(
                    packet_id=self._input.packet_id,
                    document_key=key,
                    name=doc.name,
                    ref=doc.ref,
                    manifest=m,
                    as_of=workflow.now().date(),
                    ingestion_sha256=doc.ingestion_sha256,
                    declared_type=doc.declared_type,
                ),
                start_to_close_timeout=timedelta(minutes=30),
                schedule_to_close_timeout=DOCUMENT_STAGE_LIMIT,
                heartbeat_timeout=timedelta(seconds=15),
                retry_policy=IO_RETRY,
            )
            out.findings.extend(analysed.findings)
            out.record = analysed.record
            out.analysis = analysed
            out.stage = "audit"
            counts = Counter(str(f.category) for f in out.findings)
            await workflow.execute_activity_method(
                PacketActivities.audit,
                AuditInput(
                    entry=self._entry(
                        f"document:{key}:validated",
                        "packet.document.validated",
                        subject=key,
                        payload_sha256=doc.ref.sha256,
                        details={
                            "doc_type": str(analysed.record.doc_type),
                            "classified_as": str(analysed.classification.doc_type),
                            "pages": analysed.page_count,
                            "ocr_pages": len(analysed.ocr_pages),
                            "structural_passed": analysed.structural_passed,
                            "semantic_passed": analysed.semantic_passed,
                            "findings": dict(counts),
                            "codes": sorted({f.code for f in out.findings}),
                        },
                    )
                ),
                start_to_close_timeout=SHORT,
                retry_policy=IO_RETRY,
            )
        except ActivityError as err:
            info = failure_details(err)
            category = ErrorCategory(info.get("category", ErrorCategory.RECOVERABLE_TIMEOUT))
            out.findings.append(
                Finding(
                    code=str(info.get("code") or f"{out.stage.upper()}_FAILED"),
                    category=category,
                    message=str(info.get("reason") or "the stage failed"),
                    document=doc.name,
                    details={"stage": out.stage, "retry_state": str(err.retry_state)},
                )
            )
        return out

    def _refresh_documents(self) -> None:
        self._status.documents = [_summary(r) for r in self._docs.values()]

    # ------------------------------------------------------------------ packet checks
    async def _external_check(self) -> list[Finding]:
        inp = self._input
        if not inp.external_check:
            return []
        m = inp.manifest
        try:
            result = await workflow.execute_activity_method(
                PacketActivities.external_check,
                ExternalCheckInput(
                    packet_id=inp.packet_id,
                    site_id=m.site_id,
                    protocol_number=m.protocol_number,
                    protocol_version=m.protocol_version,
                ),
                task_queue=inp.external_queue,
                start_to_close_timeout=SHORT,
                schedule_to_close_timeout=timedelta(minutes=10),
                retry_policy=IO_RETRY,
            )
        except ActivityError as err:
            info = failure_details(err)
            return [
                Finding(
                    code=str(info.get("code") or "EXTERNAL_CHECK_UNAVAILABLE"),
                    category=ErrorCategory(info.get("category", ErrorCategory.RECOVERABLE_TIMEOUT)),
                    message=str(info.get("reason") or "the external check failed"),
                    details={"stage": "external_check", "retry_state": str(err.retry_state)},
                )
            ]
        return result.findings

    async def _packet_checks(self, extra: list[Finding] | None = None) -> None:
        inp = self._input
        records = [r.record for r in self._docs.values() if r.record is not None]
        submitted = [*inp.documents, *self._added]
        checks = PacketChecksInput(
            packet_id=inp.packet_id,
            hashes={d.name: d.ref.sha256 for d in submitted},
            manifest=inp.manifest,
            records=records,
            as_of=workflow.now().date(),
            extra_findings=extra or [],
        )
        cross = await workflow.execute_activity_method(
            PacketActivities.cross_checks,
            checks,
            start_to_close_timeout=MINUTE,
            retry_policy=IO_RETRY,
        )
        self._packet_findings = _dedupe(cross.findings)
        self._gaps = await workflow.execute_activity_method(
            PacketActivities.gaps, checks, start_to_close_timeout=MINUTE, retry_policy=IO_RETRY
        )

    def _findings(self) -> list[Finding]:
        docs = [f for r in self._docs.values() for f in r.findings]
        return _dedupe(docs + self._packet_findings)

    def _route(self) -> Decision:
        findings = self._findings()
        blocks = {f.code for f in findings if f.category is ErrorCategory.COMPLIANCE_BLOCK}
        approved = bool(blocks) and blocks <= self._approved_codes
        decision = route(findings, self._gaps, review_approved=approved)
        self._status.findings = findings
        self._status.gaps = self._gaps
        self._status.reasons = decision.reasons
        self._status.counts = decision.counts
        return decision

    # ------------------------------------------------------------------ outcomes
    async def _dead_letter(self) -> None:
        inp = self._input
        wf_id = workflow.info().workflow_id
        for f in self._findings():
            if f.category not in DEAD_LETTER_CATEGORIES:
                continue
            doc = next((r for r in self._docs.values() if r.document.name == f.document), None)
            result = await workflow.execute_activity_method(
                PacketActivities.dead_letter,
                DeadLetterInput(
                    packet_id=inp.packet_id,
                    workflow_id=wf_id,
                    document_key=doc.key if doc else None,
                    document_name=f.document,
                    category=f.category,
                    code=f.code,
                    reason=f.message,
                    stage=f.details.get("stage", doc.stage if doc else "packet"),
                    ref=doc.document.ref if doc else None,
                    details=f.details,
                    entry=self._entry(
                        f"dlq:{doc.key if doc else 'packet'}:{f.code}",
                        "packet.dead_lettered",
                        subject=doc.key if doc else inp.packet_id,
                        reason=f.message,
                        details={"category": str(f.category), "code": f.code},
                    ),
                ),
                start_to_close_timeout=MINUTE,
                retry_policy=IO_RETRY,
            )
            if result.dlq_id not in self._status.dlq_ids:
                self._status.dlq_ids.append(result.dlq_id)

    async def _await_review(self, decision: Decision) -> None:
        """Wait for an accepted decision; escalate once when the review deadline passes."""
        deadline = workflow.now() + timedelta(seconds=self._input.review_deadline_seconds)
        while not self._decided(decision):
            timeout: float | None = None
            if not self._status.escalated:
                timeout = max((deadline - workflow.now()).total_seconds(), 0.0)
            try:
                await workflow.wait_condition(
                    lambda: bool(self._reviews) or self._decided(decision), timeout=timeout
                )
            except TimeoutError:
                self._status.escalated = True
                await self._set_status(
                    PacketStatusName.ESCALATED,
                    decision,
                    "packet.review.escalated",
                    reason="no Regulatory Affairs decision before the review deadline",
                )
                continue
            while self._reviews and not self._decided(decision):
                verb, review = self._reviews.pop(0)
                await self._decide(verb, review)

    def _decided(self, decision: Decision) -> bool:
        blocks = set(decision.reasons)
        return self._rejection is not None or (bool(blocks) and blocks <= self._approved_codes)

    async def _decide(self, verb: str, review: ReviewInput) -> bool:
        """Verify and apply one decision; returns whether it was accepted."""
        self._review_seq += 1
        request_id = f"{workflow.info().workflow_id}:review:{self._review_seq}"
        blocking = list(self._status.reasons)
        verdict = await workflow.execute_activity_method(
            PacketActivities.verify_review,
            ReviewCheckInput(
                packet_id=self._input.packet_id,
                request_id=request_id,
                decision="APPROVE" if verb == "APPROVE" else "REJECT",
                review=review,
                blocking_codes=blocking,
                occurred_at=workflow.now(),
                record_sha256=self._status.record_sha256,
            ),
            start_to_close_timeout=SHORT,
            retry_policy=IO_RETRY,
        )
        waiting = self._status.status in (PacketStatusName.BLOCKED, PacketStatusName.ESCALATED)
        accepted = verdict.accepted and waiting and self._rejection is None
        self._status.reviews.append(
            ReviewRecord(
                request_id=request_id,
                reviewer_id=verdict.reviewer_id,
                role=verdict.role,
                decision=verb,
                accepted=accepted,
                code=verdict.code if not verdict.accepted else None,
                at=workflow.now(),
                signature=verdict.signature if accepted else None,
            )
        )
        if accepted:
            if verb == "APPROVE":
                self._approved_codes |= set(blocking)
            else:
                self._rejection = review.reason
        return accepted

    async def _await_documents(self, deadline: datetime) -> bool:
        """Wait for added documents until ``deadline``; False when it passed without any."""
        remaining = (deadline - workflow.now()).total_seconds()
        if remaining > 0 and not self._doc_requests:
            try:
                await workflow.wait_condition(lambda: bool(self._doc_requests), timeout=remaining)
            except TimeoutError:
                return False
        if not self._doc_requests:
            return False
        requests, self._doc_requests = self._doc_requests, []
        self._status.status = PacketStatusName.PROCESSING
        documents = [d for req in requests for d in req.documents]
        self._added.extend(documents)
        self._refresh_record_hash()
        await self._audit(
            f"documents-added:{self._step}",
            "packet.documents_added",
            details={"count": len(documents), "by": requests[0].submitted_by},
        )
        await self._process_documents(documents)
        await self._packet_checks()
        return True

    async def _finish(self, status: PacketStatusName, decision: Decision) -> PacketStatus:
        outcome = status.value if status in OUTCOME_STATUS.values() else None
        await self._set_status(status, decision, f"packet.{status.value.lower()}", outcome=outcome)
        if workflow.info().parent is None:
            return self._status
        # The result goes to the batch on the global queue: tokens and codes only.
        return await workflow.execute_activity_method(
            PacketActivities.redact_status,
            RedactInput(status=self._status),
            start_to_close_timeout=SHORT,
            retry_policy=IO_RETRY,
        )

    # ------------------------------------------------------------------ state + audit
    async def _set_status(
        self,
        status: PacketStatusName,
        decision: Decision,
        action: str,
        *,
        outcome: str | None = None,
        reason: str | None = None,
    ) -> None:
        self._status.status = status
        categories = [
            c
            for c in (
                ErrorCategory.FATAL_SCHEMA_MISMATCH,
                ErrorCategory.RECOVERABLE_TIMEOUT,
                ErrorCategory.COMPLIANCE_BLOCK,
                ErrorCategory.WARNING_DEVIATION,
            )
            if decision.counts.get(str(c))
        ]
        updates = [STATUS.value_set(status.value)]
        if categories:
            updates.append(ERROR_CATEGORY.value_set(str(categories[0])))
        workflow.upsert_search_attributes(updates)
        self._step += 1
        await workflow.execute_activity_method(
            PacketActivities.transition,
            TransitionInput(
                packet_id=self._input.packet_id,
                status=status,
                outcome=outcome,
                gaps=self._gaps,
                entry=self._entry(
                    f"status:{self._step}:{status.value}",
                    action,
                    reason=reason or ", ".join(decision.reasons) or None,
                    details={
                        "status": status.value,
                        "reasons": decision.reasons,
                        "counts": decision.counts,
                        "rejection": self._rejection,
                    },
                ),
            ),
            start_to_close_timeout=SHORT,
            retry_policy=IO_RETRY,
        )
        await self._tell_parent(decision)

    async def _tell_parent(self, decision: Decision) -> None:
        """Tell the batch (once) that this packet settled: terminal or waiting."""
        parent = workflow.info().parent
        if parent is None or self._parent_told:
            return
        self._parent_told = True
        settled = PacketSettled(
            packet_id=self._input.packet_id,
            status=self._status.status,
            reasons=decision.reasons,
            categories={k: v for k, v in decision.counts.items() if k != "GAP"},
            queue=workflow.info().task_queue,
        )
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                "packet_settled", settled
            )
        except Exception as exc:  # the batch may have finished; the packet goes on
            workflow.logger.warning("batch not told of settlement: %s", type(exc).__name__)

    async def _audit(self, step: str, action: str, **kw: Any) -> None:
        await workflow.execute_activity_method(
            PacketActivities.audit,
            AuditInput(entry=self._entry(step, action, **kw)),
            start_to_close_timeout=SHORT,
            retry_policy=IO_RETRY,
        )

    def _entry(
        self,
        step: str,
        action: str,
        *,
        subject: str | None = None,
        reason: str | None = None,
        payload_sha256: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """An audit entry whose id is the workflow id plus the step: retries never duplicate."""
        wf_id = workflow.info().workflow_id
        return AuditEntry(
            entry_id=f"{wf_id}:{step}",
            occurred_at=workflow.now(),
            actor=f"workflow:{wf_id}",
            action=action,
            location=f"temporal:{workflow.info().task_queue}",
            reason=reason,
            subject_ref=subject or self._input.packet_id,
            payload_sha256=payload_sha256,
            details={"source": self._input.source, **(details or {})},
        )


__all__ = ["IO_RETRY", "SitePacketWorkflow"]
