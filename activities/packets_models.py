"""Payloads of the site-packet flow: workflow inputs, signals, queries and activity I/O.

Small pydantic models only: documents travel as claim checks (:class:`DocumentRef`: bucket,
key, sha256, size), never as bytes. Imported by workflows (through the sandbox pass-through),
activities and starters alike, so this module imports neither temporalio nor any I/O library.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from clinflow.audit_chain import AuditEntry
from clinflow.errors import ErrorCategory
from clinflow.esign import SignedDecision
from clinflow.packets.extraction_models import DocumentRecord
from clinflow.packets.manifest import PacketManifest
from clinflow.packets.models import (
    Classification,
    DocumentRef,
    DocumentType,
    Finding,
    GapReport,
)

REVIEW_ROLE = "regulatory_affairs"


class PacketStatusName(StrEnum):
    """Values of the ClinflowStatus search attribute of a packet workflow."""

    PROCESSING = "PROCESSING"
    BLOCKED = "BLOCKED"
    ESCALATED = "ESCALATED"
    AWAITING_DOCUMENTS = "AWAITING_DOCUMENTS"
    VALIDATED = "VALIDATED"
    VALIDATED_WITH_WARNINGS = "VALIDATED_WITH_WARNINGS"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    DEAD_LETTERED = "DEAD_LETTERED"
    INCOMPLETE = "INCOMPLETE"


WAITING_STATUSES = frozenset(
    {PacketStatusName.BLOCKED, PacketStatusName.ESCALATED, PacketStatusName.AWAITING_DOCUMENTS}
)
TERMINAL_STATUSES = frozenset(
    {
        PacketStatusName.VALIDATED,
        PacketStatusName.VALIDATED_WITH_WARNINGS,
        PacketStatusName.APPROVED,
        PacketStatusName.REJECTED,
        PacketStatusName.DEAD_LETTERED,
        PacketStatusName.INCOMPLETE,
    }
)


# --------------------------------------------------------------------------- inputs
class DocumentInput(BaseModel):
    """One submitted file: its name in the packet, where its bytes are, what was declared."""

    model_config = ConfigDict(frozen=True)

    name: str
    ref: DocumentRef
    declared_type: DocumentType | None = None
    declared_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    received_at: datetime

    @property
    def ingestion_sha256(self) -> str:
        """The hash the packet claims for these bytes (manifest first, else the upload's)."""
        return self.declared_sha256 or self.ref.sha256


class ObjectRef(BaseModel):
    bucket: str
    key: str


class PacketClaim(BaseModel):
    """Where a batch child's full input is stored (its region's claim check).

    A batch only ever holds the redacted input (:func:`residency_head`) and this reference;
    the child loads the full input on its own regional queue (``packets.load_packet``)."""

    ref: ObjectRef
    packet_id: str


class PacketInput(BaseModel):
    """Everything a SitePacketWorkflow needs; set by the starter from its settings.

    With ``claim`` set the input is a residency head: the manifest carries identifiers only
    (no files, no deviation texts), ``documents`` is empty, and the workflow loads the full
    input from the claim before doing anything else."""

    manifest: PacketManifest
    documents: list[DocumentInput]
    submitted_by: str
    source: str = Field("cli", description="cli | watch | upload | batch | replay")
    correlation_id: str
    submitted_at: datetime
    review_deadline_seconds: float = 72 * 3600.0
    gap_deadline_seconds: float = 14 * 86400.0
    external_check: bool = False
    external_queue: str = "packets-external"
    replay_of: str | None = Field(None, description="The DLQ entry this run replays.")
    claim: PacketClaim | None = None

    @property
    def packet_id(self) -> str:
        return self.manifest.packet_id


def residency_head(inp: PacketInput, claim: PacketClaim) -> PacketInput:
    """``inp`` reduced to what may cross a region boundary: ids, region, protocol, dates.

    File names (which name people), deviation descriptions (free text) and document
    references stay in the region, behind ``claim``.
    """
    manifest = inp.manifest.model_copy(update={"files": [], "deviations": []})
    return inp.model_copy(update={"manifest": manifest, "documents": [], "claim": claim})


class ReviewInput(BaseModel):
    """A reviewer's decision on a COMPLIANCE_BLOCK (signal ``approve``/``reject``, update
    ``review``). ``token`` is the reviewer's bearer token; only Regulatory Affairs may decide.
    ``decision`` is implied by the signal name; the update needs it.

    ``signed`` is the electronic signature (21 CFR Part 11): the reviewer's Ed25519-signed
    :class:`~clinflow.esign.Decision` (printed name, UTC time, meaning approval/rejection)
    over the packet's ``record_sha256`` (see the ``status`` query). A decision without it is
    refused (``ESIGN_MISSING``) and the attempt audited."""

    reviewer_id: str
    role: str = REVIEW_ROLE
    reason: str
    signature_meaning: str = "I approve this packet for site activation"
    token: str = ""
    decision: Literal["APPROVE", "REJECT"] | None = None
    signed: SignedDecision | None = None


class ReviewOutcome(BaseModel):
    """The synchronous answer of the ``review`` update."""

    accepted: bool
    status: PacketStatusName
    code: str | None = None
    message: str = ""


class AddDocumentsInput(BaseModel):
    """More documents for a packet waiting on gaps (signal/update ``add_documents``)."""

    documents: list[DocumentInput]
    submitted_by: str = "unknown"


# --------------------------------------------------------------------------- status
class DocumentSummary(BaseModel):
    name: str
    document_key: str
    doc_type: DocumentType = DocumentType.UNKNOWN
    page_count: int = 0
    ocr_pages: list[int] = Field(default_factory=list)
    state: str = "PENDING"
    classified_as: DocumentType | None = Field(
        None, description="What the classifier read (the declared type may differ)."
    )
    classification_confidence: float | None = None
    signature: str | None = Field(None, description="signed | unsigned | uncertain")
    signature_evidence: list[str] = Field(
        default_factory=list, description="Per signature block: status, kind, page, label."
    )
    codes: list[str] = Field(default_factory=list, description="The document's finding codes.")


class ReviewRecord(BaseModel):
    request_id: str
    reviewer_id: str
    role: str
    decision: str
    accepted: bool
    code: str | None = None
    at: datetime
    signature: str | None = Field(
        None, description="The e-signature's manifestation (printed name, meaning, UTC time)."
    )


class PacketStatus(BaseModel):
    """What the ``status`` query returns and the workflow's result."""

    packet_id: str
    workflow_id: str
    status: PacketStatusName
    region: str
    site_id: str
    protocol_version: str
    reasons: list[str] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    findings: list[Finding] = Field(default_factory=list)
    gaps: GapReport | None = None
    documents: list[DocumentSummary] = Field(default_factory=list)
    reviews: list[ReviewRecord] = Field(default_factory=list)
    escalated: bool = False
    dlq_ids: list[str] = Field(default_factory=list)
    rejection_reason: str | None = None
    gap_deadline: datetime | None = None
    record_sha256: str = Field(
        "", description="The packet's record hash: what a reviewer's e-signature covers."
    )


class PacketSettled(BaseModel):
    """A child packet reached a terminal or waiting state (sent to its batch)."""

    packet_id: str
    status: PacketStatusName | str
    reasons: list[str] = Field(default_factory=list)
    categories: dict[str, int] = Field(default_factory=dict)
    queue: str = ""
    note: str = ""


# --------------------------------------------------------------------------- batches
class BatchPlan(BaseModel):
    """The stored list of packet inputs a batch processes (claim check for large batches)."""

    packets: list[PacketInput]


class BatchSummary(BaseModel):
    """Counts per outcome and per error category, and one line per packet."""

    batch_id: str
    total: int
    started: int = 0
    settled: int = 0
    outcomes: dict[str, int] = Field(default_factory=dict)
    categories: dict[str, int] = Field(default_factory=dict)
    queues: dict[str, int] = Field(default_factory=dict)
    packets: list[PacketSettled] = Field(default_factory=list)
    runs: int = 1


class BatchInput(BaseModel):
    batch_id: str
    plan: ObjectRef
    total: int
    max_parallel: int = 20
    page_size: int = 50
    continue_after: int = 500
    queue_prefix: str = "packets"
    regions: list[str] = Field(default_factory=lambda: ["us", "eu", "uk"])
    urgent_days: int = 14
    offset: int = 0
    in_flight: list[str] = Field(default_factory=list)
    carried: BatchSummary | None = None


def packet_queue(
    prefix: str,
    region: str,
    target: date | None,
    today: date,
    urgent_days: int,
    regions: list[str] | tuple[str, ...],
) -> str:
    """The task queue of a packet: its region's, or its region's urgent queue when it activates
    within ``urgent_days`` from today (urgent packets never leave their region).

    A target date already past is overdue and must be re-planned: it takes its regional
    queue, not urgent slots. Raises ValueError when the region has no queue.
    """
    if region not in regions:
        raise ValueError(f"no task queue for region {region!r}; configured: {list(regions)}")
    if target is not None and 0 <= (target - today).days <= urgent_days:
        return f"{prefix}-{region}-urgent"
    return f"{prefix}-{region}"


# --------------------------------------------------------------------------- activity I/O
class RedactInput(BaseModel):
    status: PacketStatus


class RegisterPacketInput(BaseModel):
    packet: PacketInput
    entry: AuditEntry


class DocumentStepInput(BaseModel):
    packet_id: str
    document_key: str
    site_id: str
    protocol_version: str
    document: DocumentInput


class HashVerifyResult(BaseModel):
    sha256: str
    size: int
    encrypted: bool
    findings: list[Finding] = Field(default_factory=list)


class StoreResult(BaseModel):
    """``reused`` is True when this document key was already validated (not redone)."""

    document_key: str
    reused: bool = False
    record: DocumentRecord | None = None
    findings: list[Finding] = Field(default_factory=list)
    page_count: int = 0
    ocr_pages: list[int] = Field(default_factory=list)


class AnalyseInput(BaseModel):
    """One stored document to parse and analyse (classify, extract, validate)."""

    packet_id: str
    document_key: str
    name: str
    ref: DocumentRef
    manifest: PacketManifest
    as_of: date
    ingestion_sha256: str
    declared_type: DocumentType | None = None


class AnalyseResult(BaseModel):
    """What the analysis of one document gave: small, for the workflow's history."""

    kind: str
    page_count: int
    ocr_pages: list[int] = Field(default_factory=list)
    ocr_mean_confidence: float | None = None
    classification: Classification
    record: DocumentRecord
    findings: list[Finding]
    structural_passed: bool
    semantic_passed: bool | None = Field(None, description="None when skipped (fatal).")


class AuditInput(BaseModel):
    entry: AuditEntry


class PacketChecksInput(BaseModel):
    packet_id: str
    hashes: dict[str, str] = Field(
        default_factory=dict, description="Every submitted file name -> sha256 (duplicates)."
    )
    manifest: PacketManifest
    records: list[DocumentRecord]
    as_of: date
    extra_findings: list[Finding] = Field(default_factory=list)


class FindingsResult(BaseModel):
    findings: list[Finding]


class ExternalCheckInput(BaseModel):
    packet_id: str
    site_id: str
    protocol_number: str
    protocol_version: str


class ExternalCheckResult(BaseModel):
    skipped: bool
    findings: list[Finding] = Field(default_factory=list)


class TransitionInput(BaseModel):
    """A packet state change: the packets row and the audit chain, in one step."""

    packet_id: str
    status: PacketStatusName
    outcome: str | None = None
    entry: AuditEntry
    gaps: GapReport | None = None


class DeadLetterInput(BaseModel):
    packet_id: str
    workflow_id: str
    document_key: str | None = None
    document_name: str | None = None
    category: ErrorCategory
    code: str
    reason: str
    stage: str
    ref: DocumentRef | None = None
    details: dict[str, str] = Field(default_factory=dict)
    entry: AuditEntry


class RejectPacketInput(BaseModel):
    """A packet that cannot be started (e.g. its region has no checklist or task queue)."""

    packet: PacketInput
    code: str = "MANIFEST_INVALID"
    reason: str
    entry: AuditEntry


class DeadLetterResult(BaseModel):
    dlq_id: str
    created: bool


class ReviewCheckInput(BaseModel):
    packet_id: str
    request_id: str
    decision: Literal["APPROVE", "REJECT"]
    review: ReviewInput
    blocking_codes: list[str]
    occurred_at: datetime
    record_sha256: str


class ReviewVerdict(BaseModel):
    accepted: bool
    reviewer_id: str
    role: str
    code: str | None = None
    message: str = ""
    signature: str | None = None


class LoadPageInput(BaseModel):
    plan: ObjectRef
    offset: int
    limit: int


class LoadPageResult(BaseModel):
    packets: list[PacketInput]


class DescribeInput(BaseModel):
    workflow_id: str


__all__ = [
    "REVIEW_ROLE",
    "TERMINAL_STATUSES",
    "WAITING_STATUSES",
    "AddDocumentsInput",
    "AnalyseInput",
    "AnalyseResult",
    "AuditInput",
    "BatchInput",
    "BatchPlan",
    "BatchSummary",
    "DeadLetterInput",
    "DeadLetterResult",
    "DescribeInput",
    "DocumentInput",
    "DocumentStepInput",
    "DocumentSummary",
    "ExternalCheckInput",
    "ExternalCheckResult",
    "FindingsResult",
    "HashVerifyResult",
    "LoadPageInput",
    "LoadPageResult",
    "ObjectRef",
    "PacketChecksInput",
    "PacketClaim",
    "PacketInput",
    "PacketSettled",
    "PacketStatus",
    "PacketStatusName",
    "RedactInput",
    "RegisterPacketInput",
    "RejectPacketInput",
    "ReviewCheckInput",
    "ReviewInput",
    "ReviewOutcome",
    "ReviewRecord",
    "ReviewVerdict",
    "StoreResult",
    "TransitionInput",
    "packet_queue",
    "residency_head",
]
