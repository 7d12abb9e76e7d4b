"""Inputs and results that cross Temporal boundaries in clinical batches (references and counts).

Nothing here carries a record body: files are S3 references (bucket, key, sha256 or ETag,
size), partitions are byte ranges, reports are counts. Every model is small enough for a
workflow history whatever the size of the export.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from clinflow.clinical.models import LoadCounts, ValidationReport

BatchKind = Literal["fhir", "hl7"]


class BatchFile(BaseModel):
    """One input file of a batch, as stored (claim check)."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    name: str = Field(description="Display name: the original file's base name.")
    size: int = Field(ge=0, description="Plaintext bytes.")
    sha256: str | None = Field(None, description="Plaintext SHA-256 (local inputs).")
    etag: str | None = Field(None, description="Store ETag (inputs read in place).")
    compressed: bool = False
    resource_type: str | None = None
    encrypted: bool = True

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class BatchOptions(BaseModel):
    """Tuning read from settings by the starter and fixed for the batch's lifetime."""

    model_config = ConfigDict(frozen=True)

    partition_bytes: int = Field(48 * 1024 * 1024, ge=1)
    max_parallel: int = Field(4, ge=1)
    partitions_per_run: int = Field(200, ge=1)
    chunk_rows: int = Field(2000, ge=1)
    max_line_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    heartbeat_seconds: float = Field(60.0, gt=0)
    watermark_policy: Literal["discard", "keep"] = "discard"


class PlannedPartition(BaseModel):
    """A partition the workflow planned: file position plus byte range."""

    model_config = ConfigDict(frozen=True)

    file_index: int = Field(ge=0)
    index: int = Field(ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=0)

    @property
    def partition_id(self) -> str:
        return f"{self.file_index:04d}-{self.index:06d}"


class BatchProgress(BaseModel):
    """What a continue-as-new hands to the next run: cursor, report, counts."""

    attempt_token: str
    started_at: datetime
    watermark: datetime | None = None
    file_index: int = 0
    next_offset: int = 0
    next_partition_index: int = 0
    queued: list[PlannedPartition] = Field(default_factory=list)
    partitions_done: int = 0
    resumed_partitions: int = 0
    runs: int = 1
    report: ValidationReport = Field(default_factory=ValidationReport)
    counts: LoadCounts = Field(default_factory=LoadCounts)
    ack_objects: list[str] = Field(default_factory=list)


class ClinicalBatchInput(BaseModel):
    """Start input of ClinicalBatchWorkflow (and of each continue-as-new run)."""

    batch_id: str
    kind: BatchKind
    source_system: str
    files: list[BatchFile]
    transaction_time: datetime | None = None
    submitted_by: str = "cli"
    options: BatchOptions = Field(default_factory=BatchOptions)
    progress: BatchProgress | None = None


class ClinicalBatchResult(BaseModel):
    batch_id: str
    kind: BatchKind
    source_system: str
    status: Literal["completed", "failed"]
    report: ValidationReport
    counts: LoadCounts
    files: int
    partitions: int
    resumed_partitions: int = Field(0, description="Partitions a retry resumed mid-way.")
    runs: int
    watermark_committed: datetime | None = None
    error_objects: list[str] = Field(default_factory=list)
    ack_objects: list[str] = Field(default_factory=list)


class BatchStatus(BaseModel):
    """Answer of the workflow's ``status`` query."""

    batch_id: str
    stage: str
    files: int
    file_index: int
    partitions_done: int
    in_flight: int
    runs: int
    report: ValidationReport
    counts: LoadCounts


# -- activity inputs and results -------------------------------------------------------------


class BeginBatchRequest(BaseModel):
    batch_id: str
    attempt_token: str
    workflow_id: str
    kind: BatchKind
    source_system: str
    files: list[BatchFile]
    submitted_by: str
    when: datetime


class PlanRequest(BaseModel):
    file: BatchFile
    file_index: int
    kind: BatchKind
    from_offset: int = 0
    first_index: int = 0
    max_partitions: int = Field(8, ge=1)
    target_bytes: int = Field(ge=1)


class PlanResult(BaseModel):
    partitions: list[PlannedPartition]
    next_offset: int | None = Field(description="Where planning continues; None: file done.")


class PartitionTask(BaseModel):
    batch_id: str
    attempt_token: str
    workflow_id: str
    kind: BatchKind
    source_system: str
    file: BatchFile
    partition: PlannedPartition
    watermark: datetime | None = None
    transaction_time: datetime | None = None
    ack_time: datetime
    options: BatchOptions


class PartitionResult(BaseModel):
    partition_id: str
    report: ValidationReport
    counts: LoadCounts
    chunks: int
    resumed_from: int | None = Field(None, description="Offset a retry resumed from.")
    ack_object: str | None = None


class FinishBatchRequest(BaseModel):
    batch_id: str
    attempt_token: str
    workflow_id: str
    kind: BatchKind
    source_system: str
    files: list[BatchFile]
    status: Literal["completed", "failed"]
    report: ValidationReport
    counts: LoadCounts
    when: datetime
    error: str | None = None


class FinishBatchResult(BaseModel):
    error_objects: list[str]
    watermark_committed: datetime | None


class ReconcileInput(BaseModel):
    """Start input of ReconciliationWorkflow (the Schedule's action uses the defaults)."""

    limit: int = Field(10000, ge=1)
    batch_id: str | None = None
    reasons: list[str] | None = None


class ReconcileRequest(BaseModel):
    limit: int = Field(10000, ge=1)
    batch_id: str | None = None
    reasons: list[str] | None = Field(
        None, description="Reason codes to retry; None = every reason that can be re-checked."
    )
    audit_entry_id: str
    when: datetime


class ReconcileResult(BaseModel):
    examined: int = 0
    recovered: int = 0
    still_quarantined: int = 0
    recovered_by_reason: dict[str, int] = Field(default_factory=dict)
    counts: LoadCounts = Field(default_factory=LoadCounts)
