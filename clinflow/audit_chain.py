"""The HMAC-SHA256-chained, append-only audit trail.

Each entry records who did what, when (UTC), where, why, to which subject, and
the SHA-256 of the payload concerned. Its MAC is
``HMAC-SHA256(key, prev_mac || canonical_json(entry))`` where the canonical JSON
covers every column but the MACs, so altering, removing or reordering any entry
breaks every MAC after it; ``verify_chain`` names the first entry that fails.

Appenders serialise on the chain's head row (``SELECT ... FOR UPDATE``), so
concurrent writers never fork the chain. Appends are idempotent on
``entry_id``: an activity retried after a crash gets the entry it already
wrote, not a second one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, Field

from clinflow.keyring import Keyring

GENESIS_MAC = bytes(32)
DEFAULT_CHAIN = "main"


class AuditEntry(BaseModel):
    """One audit event. Carries references and hashes, never PHI."""

    actor: str = Field(description="Who: a user id, a service principal, or a workflow id.")
    action: str = Field(description="What: a dotted verb, e.g. document.stored.")
    location: str = Field(default_factory=socket.gethostname, description="Where: host/service.")
    reason: str | None = Field(None, description="Why, in words.")
    subject_ref: str | None = Field(None, description="What it concerns: a document or batch ref.")
    payload_sha256: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    entry_id: str = Field(
        default_factory=lambda: str(uuid.uuid4()),
        description="Idempotency key: appending the same entry_id twice writes one entry.",
    )


class AuditRecord(BaseModel):
    chain: str
    seq: int
    entry_id: str
    mac: str
    created: bool = Field(description="False when the entry_id was already in the chain.")


class ChainBreak(BaseModel):
    chain: str
    seq: int
    entry_id: str | None
    problem: str


class VerifyReport(BaseModel):
    chain: str
    entries: int
    ok: bool
    first_break: ChainBreak | None = None


def _ts(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_json(chain: str, seq: int, key_id: str, entry: AuditEntry) -> bytes:
    """The exact bytes the MAC covers: sorted keys, no whitespace, UTC microsecond time."""
    body = {
        "chain": chain,
        "seq": seq,
        "key_id": key_id,
        "entry_id": entry.entry_id,
        "occurred_at": _ts(entry.occurred_at),
        "actor": entry.actor,
        "action": entry.action,
        "location": entry.location,
        "reason": entry.reason,
        "subject_ref": entry.subject_ref,
        "payload_sha256": entry.payload_sha256,
        "details": entry.details,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_mac(key: bytes, prev_mac: bytes, canonical: bytes) -> bytes:
    return hmac.new(key, prev_mac + canonical, hashlib.sha256).digest()


def _normalise_details(details: dict[str, Any]) -> dict[str, Any]:
    # What jsonb gives back: round-trip through JSON so the MAC covers stored values.
    result: dict[str, Any] = json.loads(json.dumps(details, default=str))
    return result


class AuditChain:
    """Append to and verify one audit chain in PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool, keyring: Keyring, chain: str = DEFAULT_CHAIN) -> None:
        self.pool = pool
        self.keyring = keyring
        self.chain = chain

    async def append(self, entry: AuditEntry) -> AuditRecord:
        """Append ``entry`` (idempotent on entry_id); returns its position and MAC."""
        entry = entry.model_copy(
            update={
                "details": _normalise_details(entry.details),
                "occurred_at": entry.occurred_at.astimezone(UTC),
            }
        )
        key_id, key = self.keyring.active("audit")
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO audit_chain_head (chain, seq, mac, updated_at) "
                "VALUES ($1, 0, $2, now()) ON CONFLICT (chain) DO NOTHING",
                self.chain,
                GENESIS_MAC,
            )
            head = await conn.fetchrow(
                "SELECT seq, mac FROM audit_chain_head WHERE chain = $1 FOR UPDATE", self.chain
            )
            assert head is not None
            existing = await conn.fetchrow(
                "SELECT seq, mac FROM audit_log WHERE chain = $1 AND entry_id = $2",
                self.chain,
                entry.entry_id,
            )
            if existing is not None:
                return AuditRecord(
                    chain=self.chain,
                    seq=existing["seq"],
                    entry_id=entry.entry_id,
                    mac=bytes(existing["mac"]).hex(),
                    created=False,
                )
            seq = head["seq"] + 1
            prev_mac = bytes(head["mac"])
            mac = compute_mac(key, prev_mac, canonical_json(self.chain, seq, key_id, entry))
            await conn.execute(
                """INSERT INTO audit_log (chain, seq, entry_id, occurred_at, actor, action,
                       location, reason, subject_ref, payload_sha256, details, key_id,
                       prev_mac, mac)
                   VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11::jsonb,$12,$13,$14)""",
                self.chain,
                seq,
                entry.entry_id,
                entry.occurred_at,
                entry.actor,
                entry.action,
                entry.location,
                entry.reason,
                entry.subject_ref,
                entry.payload_sha256,
                json.dumps(entry.details),
                key_id,
                prev_mac,
                mac,
            )
            await conn.execute(
                "UPDATE audit_chain_head SET seq = $2, mac = $3, updated_at = now() "
                "WHERE chain = $1",
                self.chain,
                seq,
                mac,
            )
        return AuditRecord(
            chain=self.chain, seq=seq, entry_id=entry.entry_id, mac=mac.hex(), created=True
        )

    async def entries(self, subject_ref: str | None = None) -> list[dict[str, Any]]:
        """Entries of the chain (optionally for one subject), oldest first."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT seq, entry_id, occurred_at, actor, action, location, reason, "
                "subject_ref, payload_sha256, details FROM audit_log WHERE chain = $1 "
                "AND ($2::text IS NULL OR subject_ref = $2) ORDER BY seq",
                self.chain,
                subject_ref,
            )
        return [{**dict(r), "details": json.loads(r["details"])} for r in rows]

    async def verify(self) -> VerifyReport:
        """Recompute every MAC; report the first entry altered, removed or reordered."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            head = await conn.fetchrow(
                "SELECT seq, mac FROM audit_chain_head WHERE chain = $1", self.chain
            )
            rows: Iterable[asyncpg.Record] = await conn.fetch(
                "SELECT * FROM audit_log WHERE chain = $1 ORDER BY seq", self.chain
            )
            return self._verify_rows(rows, head)

    def _verify_rows(
        self, rows: Iterable[asyncpg.Record], head: asyncpg.Record | None
    ) -> VerifyReport:
        prev_mac = GENESIS_MAC
        expected_seq = 1
        count = 0

        def broken(seq: int, entry_id: str | None, problem: str) -> VerifyReport:
            return VerifyReport(
                chain=self.chain,
                entries=count,
                ok=False,
                first_break=ChainBreak(
                    chain=self.chain, seq=seq, entry_id=entry_id, problem=problem
                ),
            )

        for row in rows:
            count += 1
            seq, entry_id = row["seq"], row["entry_id"]
            if seq != expected_seq:
                return broken(
                    expected_seq,
                    None,
                    f"entry {expected_seq} is missing (removed); next stored entry is {seq}",
                )
            if bytes(row["prev_mac"]) != prev_mac:
                return broken(
                    seq,
                    entry_id,
                    f"entry {seq} does not follow entry {seq - 1} (removed or reordered)",
                )
            try:
                key = self.keyring.get("audit", row["key_id"])
            except Exception:
                return broken(seq, entry_id, f"entry {seq} names unknown key {row['key_id']!r}")
            entry = AuditEntry(
                entry_id=entry_id,
                occurred_at=row["occurred_at"],
                actor=row["actor"],
                action=row["action"],
                location=row["location"],
                reason=row["reason"],
                subject_ref=row["subject_ref"],
                payload_sha256=row["payload_sha256"],
                details=json.loads(row["details"]),
            )
            mac = compute_mac(key, prev_mac, canonical_json(self.chain, seq, row["key_id"], entry))
            if not hmac.compare_digest(mac, bytes(row["mac"])):
                return broken(seq, entry_id, f"entry {seq} was altered (MAC mismatch)")
            prev_mac = mac
            expected_seq += 1
        last_seq = expected_seq - 1
        if head is not None and (head["seq"] != last_seq or bytes(head["mac"]) != prev_mac):
            return broken(
                last_seq + 1,
                None,
                f"the chain head records {head['seq']} entries but {last_seq} verify "
                "(entries removed from the end)",
            )
        return VerifyReport(chain=self.chain, entries=count, ok=True)
