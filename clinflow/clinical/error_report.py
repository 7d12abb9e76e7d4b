"""Per-file error NDJSON: one FHIR ``OperationOutcome`` per quarantined record.

Like the error files of a FHIR bulk import, each input file with quarantined records gets one
NDJSON object in S3 (encrypted by the object store), built from the quarantine table at the end
of the batch, so it is complete and identical however often partitions were retried. Lines are
ordered by byte offset and carry the reason code, the PHI-free message and the record's location
(absolute byte offset; line index within its partition or HL7 message index); never the raw
record, which stays encrypted in the quarantine table.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg
import orjson

REASON_SYSTEM = "urn:clinflow:quarantine-reason"

_ISSUE_CODE = {
    "LINE_TOO_LONG": "too-long",
    "INVALID_UTF8": "structure",
    "INVALID_JSON": "structure",
    "NOT_AN_OBJECT": "structure",
    "MISSING_RESOURCE_TYPE": "required",
    "UNKNOWN_RESOURCE_TYPE": "not-supported",
    "RESOURCE_TYPE_MISMATCH": "invalid",
    "MISSING_ID": "required",
    "FHIR_VALIDATION": "invalid",
    "HL7_DECODE": "structure",
    "HL7_PARSE": "structure",
    "HL7_MISSING_FIELD": "required",
    "HL7_UNSUPPORTED_TYPE": "not-supported",
    "HL7_MAPPING_INVALID": "invalid",
}

_SELECT = """
SELECT quarantine_id, batch_id, source_uri, line_index, message_index, byte_offset,
       reason_code, message, raw_truncated, attempt
FROM quarantine WHERE batch_id = $1 AND source_uri = $2
ORDER BY byte_offset
"""


def error_object_key(batch_id: str, file_index: int, name: str) -> str:
    """S3 key of the error NDJSON of input file ``file_index`` of a batch."""
    return f"clinical/batches/{batch_id}/errors/{file_index:04d}-{name}.errors.ndjson"


def error_line(row: Mapping[str, Any]) -> bytes:
    """One OperationOutcome line (with ``\\n``) for a quarantine row."""
    reason = str(row["reason_code"])
    where = [f"byte {row['byte_offset']}"]
    if row.get("message_index") is not None:
        where.append(f"message {row['message_index']}")
    elif row.get("line_index") is not None:
        where.append(f"partition line {row['line_index']}")
    ident = hashlib.sha256(
        f"{row['batch_id']}|{row['source_uri']}|{row['byte_offset']}".encode()
    ).hexdigest()[:32]
    doc = {
        "resourceType": "OperationOutcome",
        "id": ident,
        "issue": [
            {
                "severity": "error",
                "code": _ISSUE_CODE.get(reason, "processing"),
                "details": {"coding": [{"system": REASON_SYSTEM, "code": reason}]},
                "diagnostics": str(row["message"]),
                "location": where,
            }
        ],
        "extension": [
            {"url": f"{REASON_SYSTEM}/source", "valueString": str(row["source_uri"])},
            {"url": f"{REASON_SYSTEM}/quarantine-id", "valueInteger": int(row["quarantine_id"])},
            {"url": f"{REASON_SYSTEM}/attempt", "valueInteger": int(row["attempt"])},
            {"url": f"{REASON_SYSTEM}/truncated", "valueBoolean": bool(row["raw_truncated"])},
        ],
    }
    return orjson.dumps(doc) + b"\n"


async def aiter_error_lines(
    conn: asyncpg.Connection, batch_id: str, source_uri: str, *, prefetch: int = 1000
) -> AsyncIterator[bytes]:
    """The error lines of one file of a batch, streamed with a server-side cursor.

    Must run inside a transaction (asyncpg cursors need one).
    """
    async for row in conn.cursor(_SELECT, batch_id, source_uri, prefetch=prefetch):
        yield error_line(row)


async def count_errors(conn: asyncpg.Connection, batch_id: str, source_uri: str) -> int:
    """How many quarantine rows one file of a batch has."""
    value = await conn.fetchval(
        "SELECT count(*) FROM quarantine WHERE batch_id = $1 AND source_uri = $2",
        batch_id,
        source_uri,
    )
    return int(value or 0)
