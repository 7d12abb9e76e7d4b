"""Quarantine rows and batch rows in PostgreSQL.

``insert_quarantine`` stores each record once per (batch, file, byte offset): a retried partition
re-inserts nothing (``ON CONFLICT DO NOTHING``), so the table stays identical. The raw record is
PHI and is never stored in clear: the caller passes ``seal`` (bytes -> key id, ciphertext),
e.g. ``aesgcm_sealer`` with the keyring's ``payload`` key, and/or an S3 reference per record.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import asyncpg
import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from clinflow.clinical.models import QuarantineRecord, ValidationReport

Sealer = Callable[[bytes], tuple[str, bytes]]
QUARANTINE_AAD = b"clinflow/quarantine/v1"

_INSERT = """
INSERT INTO quarantine
    (batch_id, source_system, source_uri, line_index, message_index, byte_offset, reason_code,
     message, raw_ciphertext, raw_key_id, raw_object_ref, raw_truncated, attempt)
SELECT $1, $2, * FROM unnest(
    $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::bytea[],
    $10::text[], $11::text[], $12::boolean[], $13::int[])
ON CONFLICT (batch_id, source_uri, byte_offset) DO NOTHING
RETURNING 1
"""


def aesgcm_sealer(key_id: str, key: bytes) -> Sealer:
    """A sealer producing ``nonce(12) || AES-256-GCM(raw)`` with a fixed associated data."""
    aead = AESGCM(key)

    def seal(raw: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(12)
        return key_id, nonce + aead.encrypt(nonce, raw, QUARANTINE_AAD)

    return seal


def open_sealed(key: bytes, blob: bytes) -> bytes:
    """Inverse of ``aesgcm_sealer``; raises ``cryptography.exceptions.InvalidTag`` if tampered."""
    return AESGCM(key).decrypt(blob[:12], blob[12:], QUARANTINE_AAD)


async def insert_quarantine(
    conn: asyncpg.Connection,
    records: Sequence[QuarantineRecord],
    batch_id: str,
    source_system: str,
    *,
    seal: Sealer | None,
    object_refs: Sequence[str | None] | None = None,
) -> int:
    """Insert quarantine rows; returns how many were new. Needs ``seal`` or ``object_refs``."""
    if not records:
        return 0
    if seal is None and object_refs is None:
        raise ValueError("quarantined raw records must be sealed or stored by reference")
    sealed = [seal(r.raw) if seal is not None else (None, None) for r in records]
    refs = list(object_refs) if object_refs is not None else [None] * len(records)
    rows = await conn.fetch(
        _INSERT,
        batch_id,
        source_system,
        [r.source_uri for r in records],
        [r.line_index for r in records],
        [r.message_index for r in records],
        [r.byte_offset for r in records],
        [str(r.reason) for r in records],
        [r.message for r in records],
        [s[1] for s in sealed],
        [s[0] for s in sealed],
        refs,
        [r.raw_truncated for r in records],
        [r.attempt for r in records],
    )
    return len(rows)


async def start_batch(
    conn: asyncpg.Connection, batch_id: str, source_system: str, kind: str
) -> bool:
    """Record a batch as running; a second call for the same id changes nothing (False)."""
    created = await conn.fetchval(
        "INSERT INTO batches (batch_id, source_system, kind) VALUES ($1, $2, $3) "
        "ON CONFLICT (batch_id) DO NOTHING RETURNING 1",
        batch_id,
        source_system,
        kind,
    )
    return created is not None


async def finish_batch(
    conn: asyncpg.Connection, batch_id: str, status: str, report: ValidationReport
) -> bool:
    """Store the final status and report; a repeat with the same values is a no-op (False)."""
    doc = orjson.dumps(report.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS).decode()
    changed = await conn.fetchval(
        "UPDATE batches SET status = $2, report = $3::jsonb, finished_at = now() "
        "WHERE batch_id = $1 AND (status IS DISTINCT FROM $2 OR report IS DISTINCT FROM $3::jsonb)"
        " RETURNING 1",
        batch_id,
        status,
        doc,
    )
    return changed is not None
