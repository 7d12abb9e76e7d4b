"""One HL7 v2 message in: its route, its ACK, its FHIR rows or a quarantine record.

Routing is by MSH-9.1 (message code): ADT and ORU are mapped to FHIR (``hl7_to_fhir``); ORM,
SIU and MDM are accepted and routed without a FHIR mapping; any other code is rejected (AR) and
quarantined as ``HL7_UNSUPPORTED_TYPE``. Every message gets an original-mode ACK (``MSA-1``
AA/AE/AR, ``MSA-2`` = the message's control id):

- AA: parsed, routed, and every mapped resource validated (``fhir.resources.R4B``);
- AR: undecodable or unparseable, MSH-9/MSH-10 missing, or an unsupported message type;
- AE: a supported message whose content cannot be mapped or whose mapped resources fail
  validation (quarantined as ``HL7_MISSING_FIELD`` or ``HL7_MAPPING_INVALID``).

The ACK's own control id is ``A`` + the first 19 characters of the original control id's
SHA-256 hex, so a retried message gets the same ACK (pass ``ack_time`` for a fixed MSH-7).
Decoding: UTF-8 first, then cp1252, then Latin-1 (counted as coercions). Pure; never raises for
content; safe in a process pool.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import hl7
from pydantic import BaseModel, Field

from clinflow.clinical.fhir_record import process_fhir_resource
from clinflow.clinical.hl7_split import HL7RawMessage
from clinflow.clinical.hl7_to_fhir import MappingError, MessageFacts, map_adt, map_oru, value
from clinflow.clinical.models import (
    FhirRow,
    ProcessContext,
    Quarantined,
    QuarantineReason,
    QuarantineRecord,
    ValidationReport,
)

MAPPED_ROUTES = {"ADT": map_adt, "ORU": map_oru}
ROUTED_ONLY = frozenset({"ORM", "SIU", "MDM"})
SUPPORTED_TYPES = frozenset(MAPPED_ROUTES) | ROUTED_ONLY


class HL7Result(BaseModel):
    """Outcome of one message. ``rows`` and ``quarantine.raw`` are PHI; ``ack`` is not logged."""

    index: int
    offset: int
    message_type: str = Field("", description="MSH-9 as code^event, '' when unreadable.")
    control_id: str = ""
    route: str | None = None
    ack_code: str
    ack: str = Field(description="The ACK message, segments separated by \\r.")
    rows: list[FhirRow] = Field(default_factory=list)
    quarantine: QuarantineRecord | None = None
    coercions: list[str] = Field(default_factory=list)


def decode_hl7(data: bytes) -> tuple[str, list[str]]:
    """Text of a message: UTF-8, else cp1252, else Latin-1 (never fails)."""
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), ["hl7_decoded_cp1252"]
    except UnicodeDecodeError:
        return data.decode("latin-1"), ["hl7_decoded_latin1"]


def ack_control_id(control_id: str) -> str:
    return "A" + hashlib.sha256(control_id.encode()).hexdigest()[:19]


def build_ack(
    msg: hl7.Message | None, control_id: str, code: str, text: str, ack_time: datetime
) -> str:
    """An ACK for ``msg`` (or a minimal one when the message could not be parsed)."""
    stamp = ack_time.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    if msg is not None:
        try:
            ack = msg.create_ack(ack_code=code, message_id=ack_control_id(control_id))
            ack.segment("MSH").assign_field(stamp, 7)
            if text:
                ack.segment("MSA").assign_field(text[:80], 3)
            return str(ack)
        except (KeyError, IndexError, AttributeError, TypeError):
            pass
    safe = text[:80].replace("|", " ").replace("^", " ").replace("~", " ").replace("&", " ")
    safe = safe.replace("\\", " ")
    return (
        f"MSH|^~\\&|||||{stamp}||ACK|{ack_control_id(control_id)}|P|2.5\r"
        f"MSA|{code}|{control_id}|{safe}\r"
    )


def process_hl7_message(
    raw: HL7RawMessage, ctx: ProcessContext, *, ack_time: datetime | None = None
) -> HL7Result:
    """Decode, parse, route, map and validate one message; build its ACK."""
    when = ack_time or datetime.now(UTC)
    text, coercions = decode_hl7(raw.data)

    def reject(
        reason: QuarantineReason,
        message: str,
        ack_code: str,
        msg: hl7.Message | None = None,
        control_id: str = "",
        message_type: str = "",
        route: str | None = None,
    ) -> HL7Result:
        return HL7Result(
            index=raw.index,
            offset=raw.offset,
            message_type=message_type,
            control_id=control_id,
            route=route,
            ack_code=ack_code,
            ack=build_ack(msg, control_id, ack_code, str(reason), when),
            quarantine=QuarantineRecord(
                source_uri=ctx.source_uri,
                message_index=raw.index,
                byte_offset=raw.offset,
                raw=raw.data,
                reason=reason,
                message=message,
                attempt=ctx.attempt,
            ),
            coercions=coercions,
        )

    try:
        msg = hl7.parse(text)
        msh = msg.segment("MSH")
    except Exception as exc:  # the parser raises assorted errors on malformed input
        return reject(QuarantineReason.HL7_PARSE, f"unparseable: {type(exc).__name__}", "AR")
    code = value(msh, 9, 1, 1).upper()
    event = value(msh, 9, 1, 2).upper()
    control_id = value(msh, 10)
    message_type = f"{code}^{event}" if event else code
    if not code:
        return reject(QuarantineReason.HL7_MISSING_FIELD, "MSH-9 (message type) empty", "AR", msg)
    if not control_id:
        return reject(
            QuarantineReason.HL7_MISSING_FIELD, "MSH-10 (control id) empty", "AR", msg,
            message_type=message_type,
        )  # fmt: skip
    if code not in SUPPORTED_TYPES:
        return reject(
            QuarantineReason.HL7_UNSUPPORTED_TYPE,
            f"message type {message_type[:16]} is not routed (supported: "
            f"{', '.join(sorted(SUPPORTED_TYPES))})",
            "AR", msg, control_id, message_type,
        )  # fmt: skip

    rows: list[FhirRow] = []
    mapper = MAPPED_ROUTES.get(code)
    if mapper is not None:
        fallback = ctx.fallback_last_updated.isoformat() if ctx.fallback_last_updated else None
        try:
            facts = MessageFacts(msg, fallback)
            resources = mapper(msg, facts)
        except MappingError as exc:
            return reject(
                QuarantineReason.HL7_MISSING_FIELD, str(exc), "AE", msg, control_id,
                message_type, code,
            )  # fmt: skip
        except Exception as exc:  # a malformed field the accessors did not anticipate
            return reject(
                QuarantineReason.HL7_MAPPING_INVALID, f"mapping failed: {type(exc).__name__}",
                "AE", msg, control_id, message_type, code,
            )  # fmt: skip
        coercions += facts.coercions
        for resource in resources:
            result = process_fhir_resource(resource, None, ctx, _mapping_failure)
            if isinstance(result, Quarantined):
                return reject(
                    QuarantineReason.HL7_MAPPING_INVALID, result.record.message, "AE", msg,
                    control_id, message_type, code,
                )  # fmt: skip
            coercions += result.coercions
            rows.append(result.row)
    return HL7Result(
        index=raw.index,
        offset=raw.offset,
        message_type=message_type,
        control_id=control_id,
        route=code,
        ack_code="AA",
        ack=build_ack(msg, control_id, "AA", "", when),
        rows=rows,
        coercions=coercions,
    )


def _mapping_failure(reason: QuarantineReason, message: str) -> Quarantined:
    return Quarantined(
        record=QuarantineRecord(
            source_uri="", byte_offset=0, raw=b"", reason=reason, message=message
        )
    )


def count_hl7(report: ValidationReport, result: HL7Result) -> None:
    """Add one message's outcome to ``report`` (messages, routes, ACK codes, rows, reasons)."""
    report.hl7_messages += 1
    report.records += 1
    key = result.route or "rejected"
    report.hl7_routes[key] = report.hl7_routes.get(key, 0) + 1
    report.hl7_acks[result.ack_code] = report.hl7_acks.get(result.ack_code, 0) + 1
    for c in result.coercions:
        report.coercions[c] = report.coercions.get(c, 0) + 1
    if result.quarantine is not None:
        reason = str(result.quarantine.reason)
        report.quarantined[reason] = report.quarantined.get(reason, 0) + 1
    else:
        report.valid += 1
        for row in result.rows:
            rt = row.resource_type
            report.by_resource_type[rt] = report.by_resource_type.get(rt, 0) + 1
