"""One FHIR NDJSON line in, one loadable row or one quarantine record out.

Checks run in a fixed order and the first failure decides the reason code: line too long,
invalid UTF-8, invalid JSON, not a JSON object, missing ``resourceType``, unknown
``resourceType``, type other than the file promises, missing ``id``, structural validation
(``fhir.resources.R4B``, see ``fhir_validate``). What is validated is the normalised resource
(``fhir_normalise``), so a dateTime that only lacks its offset is repaired and counted, not
quarantined. The record is validated as received first: R4B refuses date-times without an
offset, so a valid record needs no search for them, and only a refused one is normalised in
full and validated again (the other normalisations never change validity).

Row keys: primary key ``(resourceType, id)``; version ``meta.versionId`` and
``meta.lastUpdated``. A record without ``meta.lastUpdated`` takes ``ctx.fallback_last_updated``
(the export's transactionTime: the resource was current at that instant), else the epoch; such
rows are flagged ``last_updated_from_meta=False`` and count the coercion
``last_updated_fallback``. With the epoch fallback a later copy of the same record never
replaces the stored one (equal versions are skipped), so callers that know the export time
should pass it.

Body: the received line, byte for byte, when normalisation changed nothing; otherwise the
normalised dict serialised with orjson. Never the re-dumped validated model (it changes values).
Pure and deterministic; safe to run in a process pool.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from clinflow.clinical.fhir_normalise import normalise_resource
from clinflow.clinical.fhir_validate import FhirInvalid, resource_class, validate_resource
from clinflow.clinical.models import (
    EPOCH,
    FhirRow,
    ProcessContext,
    Processed,
    Quarantined,
    QuarantineReason,
    QuarantineRecord,
    ValidationReport,
)
from clinflow.clinical.ndjson_reader import LineFields, RawLine, is_blank_line


@dataclass(slots=True)
class Accepted:
    """The fields of a valid record's row, before any model is built (the block path turns
    them straight into binary COPY tuples; ``process_fhir_line`` wraps them in ``FhirRow``)."""

    resource_type: str
    id: str
    version_id: str | None
    last_updated: datetime
    last_updated_from_meta: bool
    body: bytes
    content_sha256: str
    coercions: list[str]

    def processed(self) -> Processed:
        """The row models of this record: what ``process_fhir_line`` returns for it."""
        row = FhirRow(
            resource_type=self.resource_type,
            id=self.id,
            version_id=self.version_id,
            last_updated=self.last_updated,
            last_updated_from_meta=self.last_updated_from_meta,
            body=self.body,
            content_sha256=self.content_sha256,
        )
        return Processed(row=row, coercions=self.coercions)


def process_fhir_line(
    raw: bytes | RawLine, ctx: ProcessContext, *, offset: int = 0, line_index: int | None = None
) -> Processed | Quarantined:
    """Parse, normalise and validate one line. Never raises for bad content."""
    outcome = fhir_line_outcome(raw, ctx, offset=offset, line_index=line_index)
    return outcome.processed() if isinstance(outcome, Accepted) else outcome


def fhir_line_outcome(
    raw: bytes | RawLine, ctx: ProcessContext, *, offset: int = 0, line_index: int | None = None
) -> Accepted | Quarantined:
    """``process_fhir_line`` without building the row models. Never raises for bad content."""
    if isinstance(raw, RawLine):
        return _line_outcome(raw.data, raw.offset, raw.index, raw.length, raw.too_long, ctx)
    data = raw.rstrip(b"\r\n")
    return _line_outcome(data, offset, line_index, len(raw), False, ctx)


def _quarantined(
    ctx: ProcessContext,
    data: bytes,
    offset: int,
    index: int | None,
    truncated: bool,
    reason: QuarantineReason,
    message: str,
) -> Quarantined:
    return Quarantined(
        record=QuarantineRecord(
            source_uri=ctx.source_uri,
            line_index=index,
            byte_offset=offset,
            raw=data,
            raw_truncated=truncated,
            reason=reason,
            message=message,
            attempt=ctx.attempt,
        )
    )


def _line_outcome(
    data: bytes,
    offset: int,
    index: int | None,
    length: int,
    too_long: bool,
    ctx: ProcessContext,
) -> Accepted | Quarantined:
    """The checks of one line (``data`` without its newline), in the module's fixed order."""
    if too_long:
        return _quarantined(
            ctx,
            data,
            offset,
            index,
            True,
            QuarantineReason.LINE_TOO_LONG,
            f"line of {length} bytes exceeds the maximum; prefix of {len(data)} kept",
        )
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        # orjson accepts only valid UTF-8, so the UTF-8 check (which comes first in the reason
        # order) is only needed for lines it rejects.
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            reason, message = QuarantineReason.INVALID_UTF8, f"invalid UTF-8 at byte {bad.start}"
        else:
            reason, message = QuarantineReason.INVALID_JSON, f"invalid JSON at char {exc.pos}"
        return _quarantined(ctx, data, offset, index, False, reason, message)
    if not isinstance(doc, dict):
        return _quarantined(
            ctx,
            data,
            offset,
            index,
            False,
            QuarantineReason.NOT_AN_OBJECT,
            f"JSON {type(doc).__name__}, not object",
        )
    outcome = _resource_outcome(doc, data, ctx)
    if isinstance(outcome, Accepted):
        return outcome
    reason, message, coercions = outcome
    result = _quarantined(ctx, data, offset, index, False, reason, message)
    result.coercions.extend(coercions)
    return result


def process_fhir_resource(
    doc: dict[str, Any],
    original: bytes | None,
    ctx: ProcessContext,
    quarantine: Callable[[QuarantineReason, str], Quarantined],
) -> Processed | Quarantined:
    """Checks, normalisation and validation of a parsed resource (shared with the HL7 mapper).

    ``quarantine(reason, message)`` builds the caller's quarantine result.
    """
    outcome = _resource_outcome(doc, original, ctx)
    if isinstance(outcome, Accepted):
        return outcome.processed()
    reason, message, coercions = outcome
    result = quarantine(reason, message)
    result.coercions.extend(coercions)
    return result


# Why a resource was refused: reason, PHI-free message, coercions applied before the refusal.
_Refusal = tuple[QuarantineReason, str, list[str]]


def _resource_outcome(
    doc: dict[str, Any], original: bytes | None, ctx: ProcessContext
) -> Accepted | _Refusal:
    """The resource checks, normalisation and validation; a refusal is returned as data."""
    resource_type = doc.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        return QuarantineReason.MISSING_RESOURCE_TYPE, "no resourceType", []
    if resource_class(resource_type) is None:
        return (
            QuarantineReason.UNKNOWN_RESOURCE_TYPE,
            f"resourceType {resource_type[:64]!r} is not an R4 resource",
            [],
        )
    if ctx.expected_resource_type and resource_type != ctx.expected_resource_type:
        return (
            QuarantineReason.RESOURCE_TYPE_MISMATCH,
            f"{resource_type} in a file of {ctx.expected_resource_type}",
            [],
        )
    rid = doc.get("id")
    if not isinstance(rid, str) or not rid:
        return QuarantineReason.MISSING_ID, f"{resource_type} without id", []

    try:
        validate_resource(doc)
    except FhirInvalid as first:
        # Normalisation may repair it (a date-time without its offset): normalise, and
        # validate what would be stored.
        norm = normalise_resource(doc, original)
        if not norm.coercions:
            return QuarantineReason.FHIR_VALIDATION, str(first), norm.coercions
        try:
            validate_resource(doc)
        except FhirInvalid as exc:
            return QuarantineReason.FHIR_VALIDATION, str(exc), norm.coercions
    else:
        # Valid as received: R4B refuses date-times without an offset, so none is there, and
        # the other normalisations (code-system URIs, UCUM quantities) keep a resource valid.
        norm = normalise_resource(doc, original, naive_datetimes=False)

    coercions = norm.coercions.copy()
    meta_value = doc.get("meta")
    meta: dict[str, Any] = meta_value if isinstance(meta_value, dict) else {}
    version_id = meta.get("versionId")
    last_updated_raw = meta.get("lastUpdated")
    from_meta = isinstance(last_updated_raw, str)
    if from_meta:
        last_updated = _instant(str(last_updated_raw))
    else:
        last_updated = ctx.fallback_last_updated or EPOCH
        coercions.append("last_updated_fallback")
    body = original if (original is not None and not norm.coercions) else orjson.dumps(doc)
    return Accepted(
        resource_type,
        rid,
        str(version_id) if version_id is not None else None,
        last_updated,
        from_meta,
        body,
        hashlib.sha256(body).hexdigest(),
        coercions,
    )


@lru_cache(maxsize=4096)
def _instant(text: str) -> datetime:
    """``datetime.fromisoformat(text)``, cached: an export's records share few version times."""
    return datetime.fromisoformat(text)


def process_ndjson_lines(
    lines: Iterable[RawLine], ctx: ProcessContext, report: ValidationReport
) -> Iterator[Processed | Quarantined]:
    """Process a stream of lines, counting each into ``report``; blank lines are only counted."""
    for line in lines:
        if line.is_blank:
            report.blank_lines += 1
            continue
        result = process_fhir_line(line, ctx)
        report.add(result)
        yield result


def process_ndjson_outcomes(
    lines: Iterable[LineFields], ctx: ProcessContext, report: ValidationReport
) -> Iterator[Accepted | Quarantined]:
    """``process_ndjson_lines`` over line fields (``ndjson_blocks.block_line_fields``,
    ``line_fields``), yielding ``Accepted`` instead of ``Processed``: the same records, the same
    counts in ``report``, without building a model or a ``RawLine`` per record.

    The blank, record and valid counts of accepted rows reach ``report`` when the iteration
    ends (or the generator is closed); the per-key counts as each record is yielded.
    """
    by_type = report.by_resource_type
    coercions = report.coercions
    blank = accepted = 0
    try:
        for offset, index, data, length, too_long in lines:
            if is_blank_line(data, too_long):
                blank += 1
                continue
            result = _line_outcome(data, offset, index, length, too_long, ctx)
            if isinstance(result, Accepted):
                # ValidationReport.add for a Processed result, inlined.
                accepted += 1
                for code in result.coercions:
                    coercions[code] = coercions.get(code, 0) + 1
                by_type[result.resource_type] = by_type.get(result.resource_type, 0) + 1
            else:
                report.add(result)
            yield result
    finally:
        report.blank_lines += blank
        report.records += accepted
        report.valid += accepted


def line_fields(lines: Iterable[RawLine]) -> Iterator[LineFields]:
    """``RawLine`` objects as the fields ``process_ndjson_outcomes`` reads."""
    for line in lines:
        yield line.offset, line.index, line.data, line.length, line.too_long
