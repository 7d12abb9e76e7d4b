"""The small data types of the clinical-data pipeline.

Models that cross a Temporal boundary (``InputFile``, ``Partition``, ``ValidationReport``,
``LoadCounts``, ``ProcessContext``) are small pydantic models carrying references and counts,
never record bodies. ``FhirRow`` and ``QuarantineRecord`` carry record content (PHI) and stay
inside one activity: they go to PostgreSQL, never into a workflow history.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class QuarantineReason(StrEnum):
    """Why a record was set aside. Stable codes: reports and the reconciliation job key on them."""

    LINE_TOO_LONG = "LINE_TOO_LONG"
    INVALID_UTF8 = "INVALID_UTF8"
    INVALID_JSON = "INVALID_JSON"
    NOT_AN_OBJECT = "NOT_AN_OBJECT"
    MISSING_RESOURCE_TYPE = "MISSING_RESOURCE_TYPE"
    UNKNOWN_RESOURCE_TYPE = "UNKNOWN_RESOURCE_TYPE"
    RESOURCE_TYPE_MISMATCH = "RESOURCE_TYPE_MISMATCH"
    MISSING_ID = "MISSING_ID"
    FHIR_VALIDATION = "FHIR_VALIDATION"
    HL7_DECODE = "HL7_DECODE"
    HL7_PARSE = "HL7_PARSE"
    HL7_MISSING_FIELD = "HL7_MISSING_FIELD"
    HL7_UNSUPPORTED_TYPE = "HL7_UNSUPPORTED_TYPE"
    HL7_MAPPING_INVALID = "HL7_MAPPING_INVALID"


class InputFile(BaseModel):
    """One data file found by discovery (a local path; S3 callers build the same model)."""

    model_config = ConfigDict(frozen=True)

    uri: str = Field(description="Local path or s3:// URI of the file.")
    resource_type: str | None = Field(
        None, description="Resource type the manifest or file name promises, if any."
    )
    size: int = Field(ge=0)
    compressed: bool = Field(False, description="gzip, detected by magic bytes.")


class ExportInputs(BaseModel):
    """What discovery found: the data files and the export's as-of time if it states one."""

    model_config = ConfigDict(frozen=True)

    files: list[InputFile]
    transaction_time: datetime | None = None


class Partition(BaseModel):
    """A line-aligned byte range ``[start, end)`` of one file; gzip files are one partition."""

    model_config = ConfigDict(frozen=True)

    uri: str
    index: int = Field(ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    compressed: bool = False
    resource_type: str | None = None

    @property
    def length(self) -> int:
        return self.end - self.start


class ProcessContext(BaseModel):
    """What per-record processing needs to know about where a record comes from."""

    model_config = ConfigDict(frozen=True)

    source_uri: str = ""
    expected_resource_type: str | None = Field(
        None, description="When set, a record of another type is quarantined (mismatch)."
    )
    fallback_last_updated: datetime | None = Field(
        None,
        description=(
            "Version time for records without meta.lastUpdated: the export's transactionTime "
            "when known. None means the epoch (see fhir_record)."
        ),
    )
    attempt: int = Field(1, ge=1)


class FhirRow(BaseModel):
    """One resource ready for the load: key, version, body. Contains PHI: never log it."""

    resource_type: str
    id: str
    version_id: str | None
    last_updated: datetime
    last_updated_from_meta: bool = Field(
        description="False when the version time is a fallback (watermarks ignore such rows)."
    )
    body: bytes = Field(description="UTF-8 JSON of the (normalised) resource as received.")
    content_sha256: str


class QuarantineRecord(BaseModel):
    """A record set aside with full context. ``raw`` is PHI: the caller encrypts it."""

    source_uri: str
    line_index: int | None = Field(None, description="Line within the partition (0-based).")
    message_index: int | None = Field(None, description="HL7 message index within the file.")
    byte_offset: int = Field(ge=0)
    raw: bytes = Field(description="The record, or a prefix of it for LINE_TOO_LONG.")
    raw_truncated: bool = False
    reason: QuarantineReason
    message: str = Field(description="PHI-free explanation (paths and error kinds, no values).")
    attempt: int = 1


class Processed(BaseModel):
    row: FhirRow
    coercions: list[str] = Field(default_factory=list)


class Quarantined(BaseModel):
    record: QuarantineRecord
    coercions: list[str] = Field(default_factory=list)


class ValidationReport(BaseModel):
    """Counts for a partition or a whole batch; ``merge`` sums two reports (order-free)."""

    records: int = 0
    valid: int = 0
    blank_lines: int = 0
    quarantined: dict[str, int] = Field(default_factory=dict)
    coercions: dict[str, int] = Field(default_factory=dict)
    by_resource_type: dict[str, int] = Field(default_factory=dict)
    hl7_messages: int = 0
    hl7_routes: dict[str, int] = Field(default_factory=dict)
    hl7_acks: dict[str, int] = Field(default_factory=dict)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    def add(self, result: Processed | Quarantined) -> None:
        """Count one processed or quarantined FHIR record."""
        self.records += 1
        _bump_all(self.coercions, result.coercions)
        if isinstance(result, Processed):
            self.valid += 1
            _bump(self.by_resource_type, result.row.resource_type)
        else:
            _bump(self.quarantined, str(result.record.reason))

    def merge(self, other: ValidationReport) -> ValidationReport:
        """A new report with the sums of both; neither input changes."""
        return ValidationReport(
            records=self.records + other.records,
            valid=self.valid + other.valid,
            blank_lines=self.blank_lines + other.blank_lines,
            quarantined=_sum(self.quarantined, other.quarantined),
            coercions=_sum(self.coercions, other.coercions),
            by_resource_type=_sum(self.by_resource_type, other.by_resource_type),
            hl7_messages=self.hl7_messages + other.hl7_messages,
            hl7_routes=_sum(self.hl7_routes, other.hl7_routes),
            hl7_acks=_sum(self.hl7_acks, other.hl7_acks),
        )


class LoadCounts(BaseModel):
    """What one merge did. ``skipped`` = older or equal versions (and in-chunk duplicates)."""

    model_config = ConfigDict(frozen=True)

    received: int = 0
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    discarded_below_watermark: int = 0
    max_last_updated: datetime | None = Field(
        None, description="Newest meta.lastUpdated among the rows (watermark candidate)."
    )

    def merge(self, other: LoadCounts) -> LoadCounts:
        newest = [t for t in (self.max_last_updated, other.max_last_updated) if t is not None]
        return LoadCounts(
            received=self.received + other.received,
            inserted=self.inserted + other.inserted,
            updated=self.updated + other.updated,
            skipped=self.skipped + other.skipped,
            discarded_below_watermark=(
                self.discarded_below_watermark + other.discarded_below_watermark
            ),
            max_last_updated=max(newest) if newest else None,
        )


WatermarkPolicy = Literal["discard", "keep"]


def _bump(counts: dict[str, int], key: str, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


def _bump_all(counts: dict[str, int], keys: list[str]) -> None:
    for key in keys:
        _bump(counts, key)


def _sum(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    total: Counter[str] = Counter(a)
    total.update(b)
    return dict(sorted(total.items()))
