"""Sealed, write-once archive segments of the audit chain, and their verification.

Sealing takes the entries of a chain from the last sealed ``seq + 1`` up to the
current head and writes them as one segment object::

    line 1      {"type": "segment", chain, segment_no, first_seq, last_seq,
                 prev_segment_sha256, prev_last_mac, sealed_at}
    lines 2..n  one canonical JSON object per entry (every column, MACs in hex)
    last line   {"type": "seal", "body_sha256", "last_mac", "signing_key_id", "signature"}

``signature`` is HMAC-SHA256 with the keyring's active ``audit`` key over
``"clinflow-audit-seal-v1" || body_sha256`` (body = every line before the seal).
The object is envelope-encrypted (version 1: never shreddable) and written
once (``If-None-Match: *``) under S3 Object Lock in compliance mode with a
retain-until date where the store supports it; otherwise under a bucket policy
that denies deleting archive objects. The table ``audit_archive_segments``
(append-only) records each segment's key, version id, digest, first/last seq
and last MAC, and each segment records the previous segment's digest: a chain
of segments anchored in the database and in write-once storage.
Each seal also appends an ``audit.segment_sealed`` entry to the chain itself.

``verify_archive`` compares every archived segment with the database and names
the first discrepancy.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import asyncpg
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from clinflow.audit_chain import DEFAULT_CHAIN, GENESIS_MAC, AuditChain, AuditEntry
from clinflow.envelope import EnvelopeError, decrypt_bytes, encrypt_bytes
from clinflow.errors import FatalSchemaMismatch, RecoverableTimeout
from clinflow.keyring import Keyring, KeyringError
from clinflow.object_store import (
    DEFAULT_CONTENT_TYPE,
    ENCRYPTION_ENVELOPE,
    META_CONTENT_TYPE,
    META_ENCRYPTION,
    META_KEK_ID,
    META_SHA256,
    META_SIZE,
    ObjectStore,
)
from clinflow.settings import Settings

SEAL_CONTEXT: Final = b"clinflow-audit-seal-v1"
CONTENT_TYPE: Final = "application/x-ndjson"
LockMode = Literal["object-lock", "bucket-policy"]
# The archive object store's advisory lock space: one sealer per chain at a time.
_LOCK_NAMESPACE: Final = 0x61726368  # "arch"


class ArchiveError(FatalSchemaMismatch):
    """The archive cannot be written as required (e.g. write-once storage unavailable)."""


class ArchiveUnavailable(RecoverableTimeout):
    """The object store could not be reached while sealing or verifying; retry later."""


class SealedSegment(BaseModel):
    """One row of ``audit_archive_segments``."""

    chain: str
    segment_no: int
    first_seq: int
    last_seq: int
    entry_count: int
    bucket: str
    object_key: str
    version_id: str | None
    segment_sha256: str
    prev_segment_sha256: str | None
    last_mac: str
    signature: str
    signing_key_id: str
    lock_mode: LockMode
    retain_until: datetime | None
    sealed_at: datetime


class SealResult(BaseModel):
    """What one seal run did: the segments it wrote (none when nothing was new)."""

    chain: str
    segments: list[SealedSegment]
    head_seq: int

    @property
    def sealed_entries(self) -> int:
        return sum(s.entry_count for s in self.segments)


class ArchiveDiscrepancy(BaseModel):
    segment_no: int
    seq: int | None = None
    problem: str


class ArchiveVerifyReport(BaseModel):
    chain: str
    segments: int
    entries: int
    ok: bool
    sealed_through_seq: int
    first_discrepancy: ArchiveDiscrepancy | None = None


def archive_bucket(settings: Settings) -> str:
    return settings.archive_bucket or settings.s3_bucket_audit


def _hex(value: bytes | memoryview) -> str:
    return bytes(value).hex()


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _entry_line(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "type": "entry",
        "chain": row["chain"],
        "seq": row["seq"],
        "entry_id": row["entry_id"],
        "occurred_at": row["occurred_at"].astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": row["actor"],
        "action": row["action"],
        "location": row["location"],
        "reason": row["reason"],
        "subject_ref": row["subject_ref"],
        "payload_sha256": row["payload_sha256"],
        "details": json.loads(row["details"]),
        "key_id": row["key_id"],
        "prev_mac": _hex(row["prev_mac"]),
        "mac": _hex(row["mac"]),
    }


def seal_signature(key: bytes, body_sha256: str) -> str:
    return hmac.new(key, SEAL_CONTEXT + bytes.fromhex(body_sha256), hashlib.sha256).hexdigest()


def _client_error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _row_to_segment(row: asyncpg.Record) -> SealedSegment:
    return SealedSegment(**{**dict(row), "last_mac": _hex(row["last_mac"])})


class AuditArchive:
    """Seal one audit chain into write-once storage and verify the archive against it."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        keyring: Keyring,
        store: ObjectStore,
        chain: str = DEFAULT_CHAIN,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.keyring = keyring
        self.store = store
        self.chain = chain
        self.bucket = archive_bucket(settings)

    # -- write-once storage ------------------------------------------------

    async def ensure_worm(self) -> LockMode:
        """Make the archive bucket write-once; returns how (idempotent).

        Object Lock (versioning + lock configuration) where the store accepts it,
        else a bucket policy denying deletion of archive objects. Raises ArchiveError
        when neither can be set.
        """
        client = self.store.client
        await self.store.ensure_buckets((self.bucket,))
        try:
            try:
                cfg = await client.get_object_lock_configuration(Bucket=self.bucket)
                if cfg.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled":
                    return "object-lock"
            except ClientError:
                pass
            try:
                await client.put_bucket_versioning(
                    Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"}
                )
                await client.put_object_lock_configuration(
                    Bucket=self.bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
                )
                return "object-lock"
            except ClientError:
                pass
            policy = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "ClinflowAuditArchiveWriteOnce",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
                        "Resource": [f"arn:aws:s3:::{self.bucket}/{self.settings.archive_prefix}*"],
                    }
                ],
            }
            try:
                await client.put_bucket_policy(Bucket=self.bucket, Policy=json.dumps(policy))
            except ClientError as exc:
                raise ArchiveError(
                    "archive_not_write_once",
                    f"bucket {self.bucket} accepts neither Object Lock nor a deny-delete policy",
                    subject=f"s3://{self.bucket}",
                    details={"s3_code": _client_error_code(exc)},
                ) from exc
            return "bucket-policy"
        except BotoCoreError as exc:
            raise ArchiveUnavailable(
                "object_store_unavailable", f"archive bucket {self.bucket}: {exc}"
            ) from exc

    # -- sealing -------------------------------------------------------------

    async def segments(self) -> list[SealedSegment]:
        """Every sealed segment of the chain, oldest first."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT * FROM audit_archive_segments WHERE chain = $1 ORDER BY segment_no",
                self.chain,
            )
        return [_row_to_segment(r) for r in rows]

    async def seal(
        self, *, now: datetime | None = None, actor: str = "audit-archive"
    ) -> SealResult:
        """Seal every entry not yet archived into one or more segments.

        Idempotent and safe to run concurrently (sealers of one chain serialise on an
        advisory lock; a segment object left by a crashed run is adopted if it holds
        exactly the expected entries). Raises ArchiveError / ArchiveUnavailable.
        """
        lock_mode = await self.ensure_worm()
        written: list[SealedSegment] = []
        async with self.pool.acquire() as conn:
            await conn.execute(
                "SELECT pg_advisory_lock($1, hashtext($2))", _LOCK_NAMESPACE, self.chain
            )
            try:
                head = await conn.fetchval(
                    "SELECT seq FROM audit_chain_head WHERE chain = $1", self.chain
                )
                head = int(head or 0)
                while True:
                    segment = await self._seal_next(conn, head, lock_mode, now)
                    if segment is None:
                        break
                    written.append(segment)
            finally:
                await conn.execute(
                    "SELECT pg_advisory_unlock($1, hashtext($2))", _LOCK_NAMESPACE, self.chain
                )
        audit = AuditChain(self.pool, self.keyring, self.chain)
        for seg in written:
            await audit.append(
                AuditEntry(
                    entry_id=f"audit-seal:{self.chain}:{seg.segment_no}",
                    actor=actor,
                    action="audit.segment_sealed",
                    reason="audit chain segment sealed to write-once storage",
                    subject_ref=f"s3://{seg.bucket}/{seg.object_key}",
                    payload_sha256=seg.segment_sha256,
                    details={
                        "segment_no": seg.segment_no,
                        "first_seq": seg.first_seq,
                        "last_seq": seg.last_seq,
                        "version_id": seg.version_id,
                        "lock_mode": seg.lock_mode,
                    },
                )
            )
        return SealResult(chain=self.chain, segments=written, head_seq=head)

    async def _seal_next(
        self,
        conn: asyncpg.Connection,
        head: int,
        lock_mode: LockMode,
        now: datetime | None,
    ) -> SealedSegment | None:
        last = await conn.fetchrow(
            "SELECT segment_no, last_seq, segment_sha256, last_mac FROM audit_archive_segments "
            "WHERE chain = $1 ORDER BY segment_no DESC LIMIT 1",
            self.chain,
        )
        first_seq = (last["last_seq"] + 1) if last else 1
        if first_seq > head:
            return None
        last_seq = min(head, first_seq + self.settings.archive_max_segment_entries - 1)
        rows = await conn.fetch(
            "SELECT * FROM audit_log WHERE chain = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
            self.chain,
            first_seq,
            last_seq,
        )
        if len(rows) != last_seq - first_seq + 1:
            raise ArchiveError(
                "archive_chain_gap",
                f"audit chain {self.chain!r} lacks entries between {first_seq} and {last_seq}",
                details={"first_seq": first_seq, "last_seq": last_seq, "found": len(rows)},
            )
        segment_no = (last["segment_no"] + 1) if last else 1
        prev_sha = last["segment_sha256"] if last else None
        prev_mac = bytes(last["last_mac"]) if last else GENESIS_MAC
        sealed_at = (now or datetime.now(UTC)).astimezone(UTC)
        header = {
            "type": "segment",
            "format": 1,
            "chain": self.chain,
            "segment_no": segment_no,
            "first_seq": first_seq,
            "last_seq": last_seq,
            "prev_segment_sha256": prev_sha,
            "prev_last_mac": prev_mac.hex(),
            "sealed_at": sealed_at.isoformat(timespec="microseconds"),
        }
        body = b"".join(_canonical(x) + b"\n" for x in [header, *map(_entry_line, rows)])
        body_sha = hashlib.sha256(body).hexdigest()
        key_id, key = self.keyring.active("audit")
        last_mac = bytes(rows[-1]["mac"])
        seal = {
            "type": "seal",
            "body_sha256": body_sha,
            "last_mac": last_mac.hex(),
            "signing_key_id": key_id,
            "signature": seal_signature(key, body_sha),
        }
        plaintext = body + _canonical(seal) + b"\n"
        object_key = (
            f"{self.settings.archive_prefix}{self.chain}/"
            f"{segment_no:08d}-{first_seq:012d}-{last_seq:012d}.ndjson"
        )
        retain_until = (
            sealed_at + timedelta(days=self.settings.archive_retention_days)
            if lock_mode == "object-lock"
            else None
        )
        version_id, plaintext = await self._put_once(object_key, plaintext, retain_until, rows)
        parsed = _parse_segment(plaintext)
        seal = parsed.seal
        segment = SealedSegment(
            chain=self.chain,
            segment_no=segment_no,
            first_seq=first_seq,
            last_seq=last_seq,
            entry_count=len(rows),
            bucket=self.bucket,
            object_key=object_key,
            version_id=version_id,
            segment_sha256=hashlib.sha256(plaintext).hexdigest(),
            prev_segment_sha256=prev_sha,
            last_mac=last_mac.hex(),
            signature=seal["signature"],
            signing_key_id=seal["signing_key_id"],
            lock_mode=lock_mode,
            retain_until=retain_until,
            sealed_at=datetime.fromisoformat(parsed.header["sealed_at"]),
        )
        await conn.execute(
            """INSERT INTO audit_archive_segments (chain, segment_no, first_seq, last_seq,
                   entry_count, bucket, object_key, version_id, segment_sha256,
                   prev_segment_sha256, last_mac, signature, signing_key_id, lock_mode,
                   retain_until, sealed_at)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)""",
            segment.chain,
            segment.segment_no,
            segment.first_seq,
            segment.last_seq,
            segment.entry_count,
            segment.bucket,
            segment.object_key,
            segment.version_id,
            segment.segment_sha256,
            segment.prev_segment_sha256,
            last_mac,
            segment.signature,
            segment.signing_key_id,
            segment.lock_mode,
            segment.retain_until,
            segment.sealed_at,
        )
        return segment

    async def _put_once(
        self,
        object_key: str,
        plaintext: bytes,
        retain_until: datetime | None,
        rows: list[asyncpg.Record],
    ) -> tuple[str | None, bytes]:
        """Write the segment if the key is free; else adopt what a crashed run left there."""
        envelope = encrypt_bytes(self.keyring, plaintext)
        kek_id, _ = self.keyring.active("object")
        extra: dict[str, Any] = {}
        if retain_until is not None:
            extra = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": retain_until}
        try:
            resp = await self.store.client.put_object(
                Bucket=self.bucket,
                Key=object_key,
                Body=envelope,
                IfNoneMatch="*",
                ContentType=DEFAULT_CONTENT_TYPE,
                Metadata={
                    META_CONTENT_TYPE: CONTENT_TYPE,
                    META_ENCRYPTION: ENCRYPTION_ENVELOPE,
                    META_KEK_ID: kek_id,
                    META_SHA256: hashlib.sha256(plaintext).hexdigest(),
                    META_SIZE: str(len(plaintext)),
                },
                **extra,
            )
            return resp.get("VersionId"), plaintext
        except ClientError as exc:
            if _client_error_code(exc) != "PreconditionFailed":
                raise ArchiveError(
                    "archive_write_refused",
                    f"writing segment s3://{self.bucket}/{object_key} was refused",
                    details={"s3_code": _client_error_code(exc)},
                ) from exc
        except BotoCoreError as exc:
            raise ArchiveUnavailable(
                "object_store_unavailable", f"writing segment {object_key}: {exc}"
            ) from exc
        # The key exists: a previous run wrote it and died before recording it.
        version_id, existing = await self._read_first_version(object_key)
        parsed = _parse_segment(existing)
        if [e["mac"] for e in parsed.entries] != [_hex(r["mac"]) for r in rows]:
            raise ArchiveError(
                "archive_key_taken",
                f"s3://{self.bucket}/{object_key} exists and holds other entries",
                details={"object_key": object_key},
            )
        return version_id, existing

    async def _read_first_version(self, object_key: str) -> tuple[str | None, bytes]:
        client = self.store.client
        version_id: str | None = None
        try:
            versions = await client.list_object_versions(Bucket=self.bucket, Prefix=object_key)
            mine = [v for v in versions.get("Versions", []) if v["Key"] == object_key]
            if mine:
                version_id = min(mine, key=lambda v: v["LastModified"])["VersionId"]
        except ClientError:
            version_id = None
        return version_id, await self._read(object_key, version_id)

    async def _read(self, object_key: str, version_id: str | None) -> bytes:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": object_key}
        if version_id and version_id != "null":
            kwargs["VersionId"] = version_id
        resp = await self.store.client.get_object(**kwargs)
        async with resp["Body"] as body:
            blob = await body.read()
        return decrypt_bytes(self.keyring, blob)

    # -- verification --------------------------------------------------------

    async def verify_archive(self) -> ArchiveVerifyReport:
        """Check every archived segment against the database; report the first discrepancy.

        For each segment: the object exists at its recorded version, its digest matches,
        it is still locked, its seal signature verifies, it continues the previous
        segment (digest and MAC), and its entries are exactly the database's entries
        (every column, MACs included).
        """
        segments = await self.segments()
        entries = 0
        prev: SealedSegment | None = None

        def report(
            seg: SealedSegment | None, problem: str, seq: int | None = None
        ) -> ArchiveVerifyReport:
            return ArchiveVerifyReport(
                chain=self.chain,
                segments=len(segments),
                entries=entries,
                ok=False,
                sealed_through_seq=prev.last_seq if prev else 0,
                first_discrepancy=ArchiveDiscrepancy(
                    segment_no=seg.segment_no if seg else 0, seq=seq, problem=problem
                ),
            )

        for seg in segments:
            expected_first = prev.last_seq + 1 if prev else 1
            if seg.first_seq != expected_first:
                return report(seg, f"segment starts at {seg.first_seq}, expected {expected_first}")
            if seg.prev_segment_sha256 != (prev.segment_sha256 if prev else None):
                return report(seg, "segment does not name the previous segment's digest")
            try:
                plaintext = await self._read(seg.object_key, seg.version_id)
            except (ClientError, EnvelopeError) as exc:
                return report(seg, f"archived object unreadable or missing: {exc}")
            except BotoCoreError as exc:
                raise ArchiveUnavailable(
                    "object_store_unavailable", f"reading {seg.object_key}: {exc}"
                ) from exc
            if hashlib.sha256(plaintext).hexdigest() != seg.segment_sha256:
                return report(seg, "archived object's digest differs from the recorded digest")
            problem = await self._lock_problem(seg)
            if problem:
                return report(seg, problem)
            try:
                parsed = _parse_segment(plaintext)
            except ArchiveError as exc:
                return report(seg, exc.reason)
            problem = self._seal_problem(seg, parsed, prev)
            if problem:
                return report(seg, problem)
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT * FROM audit_log WHERE chain = $1 AND seq BETWEEN $2 AND $3 "
                    "ORDER BY seq",
                    self.chain,
                    seg.first_seq,
                    seg.last_seq,
                )
            db = {r["seq"]: _entry_line(r) for r in rows}
            for archived in parsed.entries:
                seq = int(archived["seq"])
                if seq not in db:
                    return report(
                        seg, f"entry {seq} is archived but missing from the database", seq
                    )
                if _canonical(db[seq]) != _canonical(archived):
                    return report(seg, f"entry {seq} in the database differs from the archive", seq)
            if len(db) != len(parsed.entries):
                return report(seg, "the database holds entries the segment does not")
            entries += len(parsed.entries)
            prev = seg
        return ArchiveVerifyReport(
            chain=self.chain,
            segments=len(segments),
            entries=entries,
            ok=True,
            sealed_through_seq=prev.last_seq if prev else 0,
        )

    async def _lock_problem(self, seg: SealedSegment) -> str | None:
        if seg.lock_mode != "object-lock":
            return None
        kwargs: dict[str, Any] = {"Bucket": seg.bucket, "Key": seg.object_key}
        if seg.version_id:
            kwargs["VersionId"] = seg.version_id
        try:
            ret = await self.store.client.get_object_retention(**kwargs)
        except ClientError as exc:
            return f"archived object has no retention lock ({_client_error_code(exc)})"
        retention = ret.get("Retention", {})
        if retention.get("Mode") != "COMPLIANCE":
            return f"archived object is not locked in compliance mode ({retention.get('Mode')})"
        return None

    def _seal_problem(
        self, seg: SealedSegment, parsed: _ParsedSegment, prev: SealedSegment | None
    ) -> str | None:
        h, seal = parsed.header, parsed.seal
        if (h.get("chain"), h.get("segment_no"), h.get("first_seq"), h.get("last_seq")) != (
            seg.chain,
            seg.segment_no,
            seg.first_seq,
            seg.last_seq,
        ):
            return "segment header does not match its database record"
        if h.get("prev_segment_sha256") != seg.prev_segment_sha256:
            return "segment header names another previous segment"
        if hashlib.sha256(parsed.body).hexdigest() != seal.get("body_sha256"):
            return "segment body does not match its sealed digest"
        try:
            key = self.keyring.get("audit", str(seal.get("signing_key_id")))
        except KeyringError:
            return f"segment sealed with unknown key {seal.get('signing_key_id')!r}"
        if not hmac.compare_digest(
            seal_signature(key, str(seal["body_sha256"])), str(seal.get("signature"))
        ):
            return "segment seal signature does not verify"
        if seal.get("last_mac") != seg.last_mac:
            return "segment's last MAC differs from the database record"
        entries = parsed.entries
        seqs = [int(e["seq"]) for e in entries]
        if seqs != list(range(seg.first_seq, seg.last_seq + 1)):
            return "segment entries are not the contiguous range it claims"
        expected_prev_mac = prev.last_mac if prev else GENESIS_MAC.hex()
        if h.get("prev_last_mac") != expected_prev_mac or entries[0]["prev_mac"] != (
            expected_prev_mac
        ):
            return "segment does not continue the previous segment's last MAC"
        for before, after in itertools.pairwise(entries):
            if after["prev_mac"] != before["mac"]:
                return f"entry {after['seq']} does not follow entry {before['seq']} in the segment"
        if entries[-1]["mac"] != seg.last_mac:
            return "segment's last entry MAC differs from the recorded last MAC"
        return None


class _ParsedSegment(BaseModel):
    header: dict[str, Any]
    entries: list[dict[str, Any]]
    seal: dict[str, Any]
    body: bytes


def _parse_segment(plaintext: bytes) -> _ParsedSegment:
    lines = plaintext.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    try:
        objs = [json.loads(line) for line in lines]
    except ValueError as exc:
        raise ArchiveError("archive_segment_malformed", f"segment is not NDJSON: {exc}") from exc
    if len(objs) < 3 or objs[0].get("type") != "segment" or objs[-1].get("type") != "seal":
        raise ArchiveError("archive_segment_malformed", "segment lacks its header or seal line")
    body = b"".join(line + b"\n" for line in lines[:-1])
    return _ParsedSegment(header=objs[0], entries=objs[1:-1], seal=objs[-1], body=body)
