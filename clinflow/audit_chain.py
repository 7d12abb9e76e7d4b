"""The HMAC-SHA256-chained, append-only audit trail.

Each entry records who did what, when (UTC), where, why, to which subject, and
the SHA-256 of the payload concerned. Its MAC is
``HMAC-SHA256(key, prev_mac || canonical_json(entry))`` where the canonical JSON
covers every column but the MACs, so altering, removing or reordering any entry
breaks every MAC after it; ``AuditChain.verify`` names the first entry that fails.

The MACs alone cannot show that the *tail* is gone: whoever can bypass the
append-only trigger can delete the last entries and move the head back, and
what is left still verifies. So verification takes a :class:`TrustedHead`, a
head witnessed outside the database (a signed checkpoint in the write-once
archive, see ``clinflow.audit_archive``): if the database ends before it, or
holds another entry at its position, the report names the last trusted entry
and the range that is missing.

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
from typing import Any, Literal

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


BreakKind = Literal[
    "missing",  # an entry in the middle is gone
    "reordered",  # an entry does not follow its predecessor
    "altered",  # an entry's MAC does not verify
    "unknown_key",  # an entry names an audit key the keyring lacks
    "truncated",  # the chain ends before a trusted head
    "diverged",  # the entry at a trusted head's position is another one
    "head_reset",  # the head row disagrees with the entries
    "head_missing",  # entries exist but the head row is gone
]


class TrustedHead(BaseModel):
    """A head of the chain witnessed outside the database: at ``at`` the chain had
    reached entry ``seq`` (``entry_id``) whose MAC was ``mac`` (hex)."""

    seq: int
    entry_id: str
    mac: str
    at: datetime
    source: str = Field("trusted head", description="What witnessed it, e.g. signed checkpoint.")


class ChainBreak(BaseModel):
    """The first problem found, with what can still be trusted and what is lost."""

    chain: str
    seq: int
    entry_id: str | None
    problem: str
    kind: BreakKind = "altered"
    last_trusted_seq: int = Field(0, description="Last entry proven original (0: none).")
    last_trusted_entry_id: str | None = None
    missing_first: int | None = Field(
        None, description="First seq of the original entries gone (deleted or replaced)."
    )
    missing_last: int | None = None

    @property
    def missing_range(self) -> str | None:
        """``"seq A..B"`` of the entries gone, when known."""
        if self.missing_first is None or self.missing_last is None:
            return None
        return f"seq {self.missing_first}..{self.missing_last}"

    @property
    def last_trusted(self) -> str:
        """The last trusted entry in words: ``"4 (entry id ...)"`` or ``"none"``."""
        if self.last_trusted_seq == 0:
            return "none"
        return f"{self.last_trusted_seq} (entry id {self.last_trusted_entry_id})"


class VerifyReport(BaseModel):
    chain: str
    entries: int
    ok: bool
    first_break: ChainBreak | None = None
    last_seq: int = Field(0, description="Last entry that verified.")
    last_entry_id: str | None = None
    last_mac: str | None = None
    anchor: TrustedHead | None = Field(None, description="The trusted head compared against.")


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

    async def verify(self, anchor: TrustedHead | None = None) -> VerifyReport:
        """Recompute every MAC; report the first entry altered, removed or reordered.

        With ``anchor`` (a head witnessed outside the database, read *before* this call so
        that it never runs ahead of what is committed) the chain must also reach it with
        the same entry: a shorter chain is ``truncated``, another entry at its position
        ``diverged``. Read-only; one repeatable-read snapshot.
        """
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            head = await conn.fetchrow(
                "SELECT seq, mac FROM audit_chain_head WHERE chain = $1", self.chain
            )
            rows: Iterable[asyncpg.Record] = await conn.fetch(
                "SELECT * FROM audit_log WHERE chain = $1 ORDER BY seq", self.chain
            )
            return self._verify_rows(rows, head, anchor=anchor)

    async def verify_since(self, anchor: TrustedHead) -> VerifyReport:
        """Verify only what follows ``anchor``: the entry at its position is the one it
        names, and every later entry follows it up to the head. Cheap enough to run
        before every checkpoint; on failure run :meth:`verify` for the full picture.
        """
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            head = await conn.fetchrow(
                "SELECT seq, mac FROM audit_chain_head WHERE chain = $1", self.chain
            )
            rows: Iterable[asyncpg.Record] = await conn.fetch(
                "SELECT * FROM audit_log WHERE chain = $1 AND seq >= $2 ORDER BY seq",
                self.chain,
                anchor.seq,
            )
            return self._verify_rows(rows, head, anchor=anchor, start=anchor)

    async def entry_at(self, seq: int) -> tuple[str, str] | None:
        """(entry id, MAC hex) of the entry at ``seq``, or None."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT entry_id, mac FROM audit_log WHERE chain = $1 AND seq = $2",
                self.chain,
                seq,
            )
        return None if row is None else (row["entry_id"], bytes(row["mac"]).hex())

    def _verify_rows(
        self,
        rows: Iterable[asyncpg.Record],
        head: asyncpg.Record | None,
        *,
        anchor: TrustedHead | None = None,
        start: TrustedHead | None = None,
    ) -> VerifyReport:
        # ``start``: trust everything up to this entry and verify from the next one (the
        # row at start.seq itself must carry start's MAC).
        prev_mac = bytes.fromhex(start.mac) if start else GENESIS_MAC
        expected_seq = start.seq + 1 if start else 1
        last_seq, last_id = (start.seq, start.entry_id) if start else (0, None)
        count = 0

        def broken(
            seq: int,
            entry_id: str | None,
            kind: BreakKind,
            problem: str,
            missing: tuple[int, int] | None = None,
            trusted: tuple[int, str | None] | None = None,
        ) -> VerifyReport:
            trusted_seq, trusted_id = trusted if trusted else (last_seq, last_id)
            return VerifyReport(
                chain=self.chain,
                entries=count,
                ok=False,
                last_seq=last_seq,
                last_entry_id=last_id,
                last_mac=prev_mac.hex() if last_seq else None,
                anchor=anchor,
                first_break=ChainBreak(
                    chain=self.chain,
                    seq=seq,
                    entry_id=entry_id,
                    kind=kind,
                    problem=problem,
                    last_trusted_seq=trusted_seq,
                    last_trusted_entry_id=trusted_id,
                    missing_first=missing[0] if missing else None,
                    missing_last=missing[1] if missing else None,
                ),
            )

        def diverged(seq: int, entry_id: str | None) -> VerifyReport:
            assert anchor is not None
            # What precedes the anchor's position verified, but nothing proves it is the
            # history the anchor witnessed (the application may have written it after a
            # cut): an older trusted head may narrow this down.
            return broken(
                seq,
                entry_id,
                "diverged",
                f"entry {seq} is not the entry {anchor.entry_id} that {_witness(anchor)} "
                f"records at that position (replaced)",
                missing=(1, anchor.seq),
                trusted=(0, None),
            )

        rows = iter(rows)
        if start is not None and start.seq > 0:
            first = next(rows, None)
            if first is None or first["seq"] != start.seq:
                found = "no later entries" if first is None else f"next is {first['seq']}"
                return broken(
                    start.seq,
                    start.entry_id,
                    "truncated" if first is None else "missing",
                    f"entry {start.seq} recorded by {_witness(start)} is missing ({found})",
                    missing=(start.seq, start.seq),
                    trusted=(0, None),
                )
            if bytes(first["mac"]).hex() != start.mac or first["entry_id"] != start.entry_id:
                return diverged(start.seq, first["entry_id"])
        for row in rows:
            count += 1
            seq, entry_id = row["seq"], row["entry_id"]
            if seq != expected_seq:
                return broken(
                    expected_seq,
                    None,
                    "missing",
                    f"entry {expected_seq} is missing (removed); next stored entry is {seq}",
                    missing=(expected_seq, seq - 1),
                )
            if bytes(row["prev_mac"]) != prev_mac:
                return broken(
                    seq,
                    entry_id,
                    "reordered",
                    f"entry {seq} does not follow entry {seq - 1} (removed or reordered)",
                )
            try:
                key = self.keyring.get("audit", row["key_id"])
            except Exception:
                return broken(
                    seq,
                    entry_id,
                    "unknown_key",
                    f"entry {seq} names unknown key {row['key_id']!r}",
                )
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
                return broken(seq, entry_id, "altered", f"entry {seq} was altered (MAC mismatch)")
            if (
                anchor is not None
                and seq == anchor.seq
                and (mac.hex() != anchor.mac or entry_id != anchor.entry_id)
            ):
                return diverged(seq, entry_id)
            prev_mac = mac
            last_seq, last_id = seq, entry_id
            expected_seq += 1
        if anchor is not None and last_seq < anchor.seq:
            return broken(
                last_seq + 1,
                None,
                "truncated",
                f"the chain ends at entry {last_seq} but {_witness(anchor)} records entry "
                f"{anchor.seq} ({anchor.entry_id})",
                missing=(last_seq + 1, anchor.seq),
            )
        if head is None and last_seq > 0:
            return broken(
                last_seq + 1,
                None,
                "head_missing",
                f"the chain head row is missing although {last_seq} entries exist (head reset)",
            )
        if head is not None and (head["seq"] != last_seq or bytes(head["mac"]) != prev_mac):
            why = (
                "entries removed from the end"
                if head["seq"] > last_seq
                else "the head was reset"
                if head["seq"] < last_seq
                else "the head's MAC is not the last entry's: the head was reset"
            )
            return broken(
                min(head["seq"], last_seq) + 1,
                None,
                "head_reset",
                f"the chain head records {head['seq']} entries but {last_seq} verify ({why})",
                missing=(last_seq + 1, head["seq"]) if head["seq"] > last_seq else None,
            )
        return VerifyReport(
            chain=self.chain,
            entries=count,
            ok=True,
            last_seq=last_seq,
            last_entry_id=last_id,
            last_mac=prev_mac.hex() if last_seq else None,
            anchor=anchor,
        )


def _witness(anchor: TrustedHead) -> str:
    when = anchor.at.astimezone(UTC).isoformat(timespec="seconds")
    return f"the {anchor.source or 'trusted head'} of {when}"
