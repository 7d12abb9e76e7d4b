"""One FHIR NDJSON line in, one loadable row or one quarantine record out.

Checks run in a fixed order and the first failure decides the reason code: line too long,
invalid UTF-8, invalid JSON, not a JSON object, missing ``resourceType``, unknown
``resourceType``, type other than the file promises, missing ``id``, structural validation
(``fhir.resources.R4B``, see ``fhir_validate``). Normalisation (``fhir_normalise``) runs before
validation, so a dateTime that only lacks its offset is repaired and counted, not quarantined.

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
from datetime import datetime
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
from clinflow.clinical.ndjson_reader import RawLine


def process_fhir_line(
    raw: bytes | RawLine, ctx: ProcessContext, *, offset: int = 0, line_index: int | None = None
) -> Processed | Quarantined:
    """Parse, normalise and validate one line. Never raises for bad content."""
    if isinstance(raw, RawLine):
        line = raw
    else:
        data = raw.rstrip(b"\r\n")
        line = RawLine(offset, line_index or 0, data, len(raw))

    def quarantine(reason: QuarantineReason, message: str) -> Quarantined:
        return Quarantined(
            record=QuarantineRecord(
                source_uri=ctx.source_uri,
                line_index=line.index if isinstance(raw, RawLine) else line_index,
                byte_offset=line.offset,
                raw=line.data,
                raw_truncated=line.too_long,
                reason=reason,
                message=message,
                attempt=ctx.attempt,
            )
        )

    if line.too_long:
        return quarantine(
            QuarantineReason.LINE_TOO_LONG,
            f"line of {line.length} bytes exceeds the maximum; prefix of {len(line.data)} kept",
        )
    try:
        line.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return quarantine(QuarantineReason.INVALID_UTF8, f"invalid UTF-8 at byte {exc.start}")
    try:
        doc = orjson.loads(line.data)
    except orjson.JSONDecodeError as exc:
        return quarantine(QuarantineReason.INVALID_JSON, f"invalid JSON at char {exc.pos}")
    if not isinstance(doc, dict):
        return quarantine(QuarantineReason.NOT_AN_OBJECT, f"JSON {type(doc).__name__}, not object")
    return process_fhir_resource(doc, line.data, ctx, quarantine)


def process_fhir_resource(
    doc: dict[str, Any],
    original: bytes | None,
    ctx: ProcessContext,
    quarantine: Callable[[QuarantineReason, str], Quarantined],
) -> Processed | Quarantined:
    """Checks, normalisation and validation of a parsed resource (shared with the HL7 mapper).

    ``quarantine(reason, message)`` builds the caller's quarantine result.
    """
    resource_type = doc.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        return quarantine(QuarantineReason.MISSING_RESOURCE_TYPE, "no resourceType")
    if resource_class(resource_type) is None:
        return quarantine(
            QuarantineReason.UNKNOWN_RESOURCE_TYPE,
            f"resourceType {resource_type[:64]!r} is not an R4 resource",
        )
    if ctx.expected_resource_type and resource_type != ctx.expected_resource_type:
        return quarantine(
            QuarantineReason.RESOURCE_TYPE_MISMATCH,
            f"{resource_type} in a file of {ctx.expected_resource_type}",
        )
    rid = doc.get("id")
    if not isinstance(rid, str) or not rid:
        return quarantine(QuarantineReason.MISSING_ID, f"{resource_type} without id")

    norm = normalise_resource(doc, original)
    try:
        validate_resource(doc)
    except FhirInvalid as exc:
        result = quarantine(QuarantineReason.FHIR_VALIDATION, str(exc))
        result.coercions.extend(norm.coercions)
        return result

    coercions = list(norm.coercions)
    meta_value = doc.get("meta")
    meta: dict[str, Any] = meta_value if isinstance(meta_value, dict) else {}
    version_id = meta.get("versionId")
    last_updated_raw = meta.get("lastUpdated")
    from_meta = isinstance(last_updated_raw, str)
    if from_meta:
        last_updated = datetime.fromisoformat(str(last_updated_raw))
    else:
        last_updated = ctx.fallback_last_updated or EPOCH
        coercions.append("last_updated_fallback")
    body = original if (original is not None and not norm.coercions) else orjson.dumps(doc)
    row = FhirRow(
        resource_type=resource_type,
        id=rid,
        version_id=str(version_id) if version_id is not None else None,
        last_updated=last_updated,
        last_updated_from_meta=from_meta,
        body=body,
        content_sha256=hashlib.sha256(body).hexdigest(),
    )
    return Processed(row=row, coercions=coercions)


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
