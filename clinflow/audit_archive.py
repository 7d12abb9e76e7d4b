"""Sealed, write-once archive segments of the audit chain, signed head checkpoints,
and their verification.

Sealing takes the entries of a chain from the last sealed ``seq + 1`` up to the
current head and writes them as one segment object::

    line 1      {"type": "segment", format, chain, segment_no, first_seq, last_seq,
                 prev_segment_sha256, prev_last_mac, sealed_at}
    lines 2..n  one canonical JSON object per entry (every column, MACs in hex)
    last line   {"type": "seal", "alg", "body_sha256", "last_mac", "signing_key_id",
                 "signature"}

``signature`` is Ed25519 (the keyring's active ``archive`` key; ``signing_key_id``
names its public key) over ``"clinflow-audit-seal-v2\n" || body_sha256`` (body =
every line before the seal). Segments sealed before (format 1, no ``alg``) carry
an HMAC-SHA256 with the ``audit`` key over ``"clinflow-audit-seal-v1" ||
body_sha256`` and still verify. The object is envelope-encrypted (version 1:
never shreddable) and written once (``If-None-Match: *``) under S3 Object Lock in
compliance mode with a retain-until date where the store supports it; otherwise
under a bucket policy that denies deleting archive objects. The table
``audit_archive_segments`` (append-only) records each segment's key, version id,
digest, first/last seq and last MAC, and each segment records the previous
segment's digest: a chain of segments anchored in the database and in write-once
storage. Each seal also appends an ``audit.segment_sealed`` entry to the chain.

**Head checkpoints** anchor the chain's tail outside the database, where the
MACs cannot: one who bypasses the append-only trigger can delete the last
entries and move ``audit_chain_head`` back, and what is left verifies. A
checkpoint is a small signed JSON object (chain, seq, entry id, MAC, time, the
checkpoint it extends; Ed25519 with the ``archive`` key, so anyone holding only
the public key can check it) written once under Object Lock to
``<archive_prefix><chain>/checkpoints/<10**15 - seq>-<seq>.json`` (newest first
in a listing). :meth:`AuditArchive.checkpoint` writes one when the head moved,
after checking that the database still extends the previous checkpoint (else
:class:`ChainTampered`); the checkpoint schedule runs it every
:data:`CHECKPOINT_INTERVAL` and every seal runs it before and after sealing, so
appends never wait for the object store. :meth:`AuditArchive.verify_chain`
(``clinflow audit verify``) reads the latest checkpoint whose signature
verifies (every version of its key, delete markers included, so neither an
overwrite nor a delete marker hides one), then the database, and reports a
truncated tail, a replaced tail or a reset head with the last trusted entry and
the missing range; checkpoints that do not verify are refused and reported.
What is appended and removed again between two checkpoints cannot be seen.

``verify_archive`` compares every archived segment with the database and names
the first discrepancy.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import re
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import asyncpg
from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, Field

from clinflow.audit_chain import (
    DEFAULT_CHAIN,
    GENESIS_MAC,
    AuditChain,
    AuditEntry,
    TrustedHead,
    VerifyReport,
)
from clinflow.envelope import EnvelopeError, decrypt_bytes, encrypt_bytes
from clinflow.errors import ComplianceBlock, FatalSchemaMismatch, RecoverableTimeout
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

SEAL_CONTEXT: Final = b"clinflow-audit-seal-v1"  # legacy HMAC seals (segment format 1)
SEAL_CONTEXT_V2: Final = b"clinflow-audit-seal-v2\n"
CHECKPOINT_CONTEXT: Final = b"clinflow-audit-checkpoint-v1\n"
SIGNATURE_ALG: Final = "Ed25519"
LEGACY_SEAL_ALG: Final = "HMAC-SHA256"
SEGMENT_FORMAT: Final = 2
CHECKPOINT_FORMAT: Final = 1
CONTENT_TYPE: Final = "application/x-ndjson"
CHECKPOINT_CONTENT_TYPE: Final = "application/json"
#: How often the checkpoint schedule signs the head (the window in which entries appended
#: and then removed again leave no trace).
CHECKPOINT_INTERVAL: Final = timedelta(minutes=1)
#: A checkpoint older than this while newer entries exist is reported as stale.
CHECKPOINT_STALE_AFTER: Final = timedelta(minutes=10)
LockMode = Literal["object-lock", "bucket-policy"]
# The archive object store's advisory lock space: one sealer per chain at a time.
_LOCK_NAMESPACE: Final = 0x61726368  # "arch"
# One checkpointer per chain at a time.
_CHECKPOINT_LOCK_NAMESPACE: Final = 0x63686B70  # "chkp"
_CHECKPOINT_SEQ_SPAN: Final = 10**15
_CHECKPOINT_NAME_RE: Final = re.compile(r"^(\d{15})-(\d{12,})\.json$")
# Checkpoint keys a lookup reads at most before it gives up (only forged ones cost reads).
_CHECKPOINT_SCAN_LIMIT: Final = 1000


class ArchiveError(FatalSchemaMismatch):
    """The archive cannot be written as required (e.g. write-once storage unavailable)."""


class ArchiveUnavailable(RecoverableTimeout):
    """The object store could not be reached while sealing or verifying; retry later."""


class ChainTampered(ComplianceBlock):
    """The database no longer extends the latest signed checkpoint: nothing is anchored
    or sealed on top of it. ``details`` name the last trusted entry and what is missing."""


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


class CheckpointResult(BaseModel):
    """What one checkpoint run did: ``written`` is False when the head had not moved."""

    chain: str
    written: bool
    checkpoint: Checkpoint | None = None
    object_key: str | None = None
    version_id: str | None = None


class SealResult(BaseModel):
    """What one seal run did: the segments it wrote (none when nothing was new)."""

    chain: str
    segments: list[SealedSegment]
    head_seq: int
    checkpoint: CheckpointResult | None = Field(
        None, description="The head checkpoint written (or found) last."
    )

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


class Checkpoint(BaseModel):
    """A signed head of one audit chain: at ``checkpointed_at`` the chain had reached
    entry ``seq`` (``entry_id``, MAC ``mac``), extending the checkpoint at ``prev_seq``."""

    type: Literal["checkpoint"] = "checkpoint"
    format: int = CHECKPOINT_FORMAT
    chain: str
    seq: int
    entry_id: str
    mac: str
    checkpointed_at: datetime
    reason: str = Field(description="What wrote it: schedule, seal, ...")
    prev_seq: int = Field(description="Seq of the checkpoint this one extends (0: none).")
    prev_mac: str
    alg: str = SIGNATURE_ALG
    signing_key_id: str
    signature: str

    def trusted_head(self, source: str = "") -> TrustedHead:
        return TrustedHead(
            seq=self.seq,
            entry_id=self.entry_id,
            mac=self.mac,
            at=self.checkpointed_at,
            source=source or "signed checkpoint",
        )


class CheckpointObject(BaseModel):
    """One version of a checkpoint object: its checkpoint when it verifies, else why not."""

    bucket: str
    object_key: str
    version_id: str | None = None
    checkpoint: Checkpoint | None = None
    problem: str | None = None

    @property
    def uri(self) -> str:
        version = f" (version {self.version_id})" if self.version_id else ""
        return f"s3://{self.bucket}/{self.object_key}{version}"


class CheckpointLookup(BaseModel):
    """The latest checkpoint that verifies, and the objects refused on the way to it."""

    latest: CheckpointObject | None = None
    refused: list[CheckpointObject] = Field(default_factory=list)


class AnchoredVerifyReport(BaseModel):
    """The chain verified against the database *and* the latest signed checkpoint."""

    chain: str
    ok: bool
    report: VerifyReport
    checkpoint: CheckpointObject | None = Field(
        None, description="The latest checkpoint that verified (None: none written yet)."
    )
    refused: list[CheckpointObject] = Field(
        default_factory=list, description="Checkpoint objects whose signature did not verify."
    )
    unanchored_entries: int = Field(
        0, description="Entries after the latest checkpoint (not yet anchored)."
    )
    checkpoint_age_seconds: float | None = None

    @property
    def stale(self) -> bool:
        """Entries wait for a checkpoint that is older than CHECKPOINT_STALE_AFTER."""
        return (
            self.unanchored_entries > 0
            and self.checkpoint_age_seconds is not None
            and self.checkpoint_age_seconds > CHECKPOINT_STALE_AFTER.total_seconds()
        )


def archive_bucket(settings: Settings) -> str:
    return settings.archive_bucket or settings.s3_bucket_audit


# --------------------------------------------------------------------------- signing keys
def archive_key_id(public_key: Ed25519PublicKey) -> str:
    """Stable id of an archive public key: hex of the first 16 bytes of SHA-256(raw key)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


class ArchiveSigner:
    """Signs seals and checkpoints with the archive's Ed25519 key (keyring purpose
    ``archive``: its 32-byte key is the private key's seed)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = archive_key_id(self.public_key)

    @classmethod
    def from_keyring(cls, keyring: Keyring) -> ArchiveSigner:
        """The active ``archive`` key; ArchiveError(archive_key_missing) when there is none."""
        try:
            _, seed = keyring.active("archive")
        except KeyringError as exc:
            raise ArchiveError("archive_key_missing", str(exc)) from exc
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def sign(self, message: bytes) -> str:
        """Base64 Ed25519 signature over ``message``."""
        return base64.b64encode(self._key.sign(message)).decode("ascii")


class ArchiveKeys:
    """The public keys allowed to sign the archive, by key id. Verifying needs nothing
    else: an auditor can hold these (``clinflow audit archive-key``) and no secret."""

    def __init__(self, keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self.keys = {archive_key_id(k): k for k in keys}

    @classmethod
    def from_keyring(cls, keyring: Keyring) -> ArchiveKeys:
        """The public half of every ``archive`` key in the keyring (old ones included)."""
        return cls(
            Ed25519PrivateKey.from_private_bytes(seed).public_key()
            for seed in keyring.all("archive").values()
        )

    @classmethod
    def from_pem(cls, text: str) -> ArchiveKeys:
        """Every ``PUBLIC KEY`` PEM block of ``text``; ArchiveError unless all are Ed25519."""
        blocks = re.findall(
            r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", text, flags=re.S
        )
        keys: list[Ed25519PublicKey] = []
        for block in blocks:
            try:
                key = serialization.load_pem_public_key(block.encode())
            except ValueError as exc:
                raise ArchiveError(
                    "archive_key_malformed", f"not a PEM public key: {exc}"
                ) from None
            if not isinstance(key, Ed25519PublicKey):
                raise ArchiveError("archive_key_malformed", "an archive key must be Ed25519")
            keys.append(key)
        if not keys:
            raise ArchiveError("archive_key_malformed", "no PEM public key found")
        return cls(keys)

    def to_pem(self) -> str:
        return "".join(
            k.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode("ascii")
            for k in self.keys.values()
        )

    def verify(self, key_id: str, signature: str, message: bytes) -> str | None:
        """None when ``signature`` (base64) by ``key_id`` verifies ``message``; else why not."""
        key = self.keys.get(key_id)
        if key is None:
            return f"is signed by unknown key {key_id!r}"
        try:
            key.verify(base64.b64decode(signature, validate=True), message)
        except (InvalidSignature, binascii.Error, ValueError):
            return "signature does not verify"
        return None


def _checkpoint_message(body: dict[str, Any]) -> bytes:
    return CHECKPOINT_CONTEXT + _canonical(body)


def parse_checkpoint(data: bytes, keys: ArchiveKeys) -> Checkpoint:
    """The checkpoint in ``data`` when its Ed25519 signature verifies; ArchiveError otherwise."""
    try:
        obj = json.loads(data)
        if not isinstance(obj, dict) or obj.get("type") != "checkpoint":
            raise ValueError("not a checkpoint object")
        body = {k: v for k, v in obj.items() if k != "signature"}
        signature = str(obj.get("signature", ""))
        if obj.get("alg") != SIGNATURE_ALG:
            raise ValueError(f"unknown signature algorithm {obj.get('alg')!r}")
    except ValueError as exc:
        raise ArchiveError("archive_checkpoint_malformed", f"malformed checkpoint: {exc}") from None
    problem = keys.verify(str(body.get("signing_key_id")), signature, _checkpoint_message(body))
    if problem:
        raise ArchiveError("archive_checkpoint_forged", f"checkpoint {problem}")
    try:
        return Checkpoint.model_validate(obj)
    except ValueError as exc:
        raise ArchiveError("archive_checkpoint_malformed", f"malformed checkpoint: {exc}") from None


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
    """The legacy (segment format 1) HMAC seal; new seals are Ed25519."""
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
        trusted_keys: ArchiveKeys | None = None,
    ) -> None:
        """``trusted_keys``: the public keys seals and checkpoints must verify under
        (default: every ``archive`` key of ``keyring``)."""
        self.settings = settings
        self.pool = pool
        self.keyring = keyring
        self.store = store
        self.chain = chain
        self.bucket = archive_bucket(settings)
        self.keys = trusted_keys if trusted_keys is not None else ArchiveKeys.from_keyring(keyring)

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

        Checkpoints the head before (refusing, with ChainTampered, a chain that no
        longer extends the latest checkpoint) and after (anchoring the seal entries).
        Idempotent and safe to run concurrently (sealers of one chain serialise on an
        advisory lock; a segment object left by a crashed run is adopted if it holds
        exactly the expected entries). Raises ArchiveError / ArchiveUnavailable.
        """
        lock_mode = await self.ensure_worm()
        signer = ArchiveSigner.from_keyring(self.keyring)
        checkpoint = await self.checkpoint(reason="seal", now=now)
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
                    segment = await self._seal_next(conn, head, lock_mode, signer, now)
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
        if written:
            checkpoint = await self.checkpoint(reason="seal", now=now)
        return SealResult(chain=self.chain, segments=written, head_seq=head, checkpoint=checkpoint)

    async def _seal_next(
        self,
        conn: asyncpg.Connection,
        head: int,
        lock_mode: LockMode,
        signer: ArchiveSigner,
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
            "format": SEGMENT_FORMAT,
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
        last_mac = bytes(rows[-1]["mac"])
        seal = {
            "type": "seal",
            "alg": SIGNATURE_ALG,
            "body_sha256": body_sha,
            "last_mac": last_mac.hex(),
            "signing_key_id": signer.key_id,
            "signature": signer.sign(SEAL_CONTEXT_V2 + bytes.fromhex(body_sha)),
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

    # -- head checkpoints ----------------------------------------------------

    def checkpoint_prefix(self) -> str:
        return f"{self.settings.archive_prefix}{self.chain}/checkpoints/"

    def checkpoint_key(self, seq: int) -> str:
        """Object key of the checkpoint at ``seq``: a listing returns the newest first."""
        if not 0 < seq < _CHECKPOINT_SEQ_SPAN:
            raise ArchiveError("archive_checkpoint_seq", f"cannot checkpoint entry {seq}")
        return f"{self.checkpoint_prefix()}{_CHECKPOINT_SEQ_SPAN - seq:015d}-{seq:012d}.json"

    async def checkpoint(
        self, *, reason: str = "schedule", now: datetime | None = None
    ) -> CheckpointResult:
        """Sign the chain's head and write it once to the archive, if it moved.

        First checks that the database still extends the latest checkpoint (its entry is
        there, unchanged, and every later entry follows it up to the head); raises
        ChainTampered otherwise and writes nothing. Idempotent (nothing is written when the
        head has not moved; an object left by a crashed run is adopted); checkpointers of
        one chain serialise on an advisory lock. Never appends to the chain.
        """
        lock_mode = await self.ensure_worm()
        signer = ArchiveSigner.from_keyring(self.keyring)
        async with self.pool.acquire() as conn:
            await conn.execute(
                "SELECT pg_advisory_lock($1, hashtext($2))", _CHECKPOINT_LOCK_NAMESPACE, self.chain
            )
            try:
                return await self._checkpoint_locked(signer, lock_mode, reason, now)
            finally:
                await conn.execute(
                    "SELECT pg_advisory_unlock($1, hashtext($2))",
                    _CHECKPOINT_LOCK_NAMESPACE,
                    self.chain,
                )

    async def _checkpoint_locked(
        self, signer: ArchiveSigner, lock_mode: LockMode, reason: str, now: datetime | None
    ) -> CheckpointResult:
        # The object store first, then the database: a checkpoint listed here was written
        # after its entries committed, so the snapshot below always holds them.
        found = (await self.latest_checkpoint()).latest
        prev = found.checkpoint if found else None
        chain = AuditChain(self.pool, self.keyring, self.chain)
        report = await (chain.verify_since(prev.trusted_head()) if prev else chain.verify())
        if not report.ok:
            full = await self.verify_chain()
            raise _tampered(full.report if not full.report.ok else report)
        if report.last_seq == 0 or report.last_entry_id is None or report.last_mac is None:
            return CheckpointResult(chain=self.chain, written=False)
        if prev is not None and found is not None and prev.seq == report.last_seq:
            return CheckpointResult(
                chain=self.chain,
                written=False,
                checkpoint=prev,
                object_key=found.object_key,
                version_id=found.version_id,
            )
        at = (now or datetime.now(UTC)).astimezone(UTC)
        body: dict[str, Any] = {
            "type": "checkpoint",
            "format": CHECKPOINT_FORMAT,
            "chain": self.chain,
            "seq": report.last_seq,
            "entry_id": report.last_entry_id,
            "mac": report.last_mac,
            "checkpointed_at": at.isoformat(timespec="microseconds"),
            "reason": reason,
            "prev_seq": prev.seq if prev else 0,
            "prev_mac": prev.mac if prev else GENESIS_MAC.hex(),
            "alg": SIGNATURE_ALG,
            "signing_key_id": signer.key_id,
        }
        data = _canonical({**body, "signature": signer.sign(_checkpoint_message(body))})
        checkpoint = parse_checkpoint(data, ArchiveKeys([signer.public_key]))
        object_key = self.checkpoint_key(checkpoint.seq)
        extra: dict[str, Any] = {}
        if lock_mode == "object-lock":
            extra = {
                "ObjectLockMode": "COMPLIANCE",
                "ObjectLockRetainUntilDate": at
                + timedelta(days=self.settings.archive_retention_days),
            }
        client = self.store.client
        put: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": object_key,
            "Body": data,
            "ContentType": CHECKPOINT_CONTENT_TYPE,
            **extra,
        }
        try:
            try:
                resp = await client.put_object(IfNoneMatch="*", **put)
            except ClientError as exc:
                if _client_error_code(exc) != "PreconditionFailed":
                    raise ArchiveError(
                        "archive_write_refused",
                        f"writing checkpoint s3://{self.bucket}/{object_key} was refused",
                        details={"s3_code": _client_error_code(exc)},
                    ) from exc
                # Taken: adopt what a crashed run wrote; anything else there (a forged
                # object) gets our checkpoint as a further version beside it.
                async for versions in self._scan_checkpoints(prefix=object_key):
                    for obj in versions:
                        cp = obj.checkpoint
                        if cp and (cp.seq, cp.entry_id, cp.mac) == (
                            checkpoint.seq,
                            checkpoint.entry_id,
                            checkpoint.mac,
                        ):
                            return CheckpointResult(
                                chain=self.chain,
                                written=False,
                                checkpoint=cp,
                                object_key=object_key,
                                version_id=obj.version_id,
                            )
                resp = await client.put_object(**put)
        except BotoCoreError as exc:
            raise ArchiveUnavailable(
                "object_store_unavailable", f"writing checkpoint {object_key}: {exc}"
            ) from exc
        return CheckpointResult(
            chain=self.chain,
            written=True,
            checkpoint=checkpoint,
            object_key=object_key,
            version_id=resp.get("VersionId"),
        )

    async def latest_checkpoint(self) -> CheckpointLookup:
        """The checkpoint of the highest seq whose signature verifies, and every object
        refused on the way (forged, malformed, hidden by a delete marker)."""
        lookup = CheckpointLookup()
        async for versions in self._scan_checkpoints():
            valid = [v for v in versions if v.checkpoint is not None]
            lookup.refused.extend(v for v in versions if v.problem is not None)
            if valid:
                lookup.latest = valid[-1]  # the oldest version: the one written first
                return lookup
        return lookup

    async def _scan_checkpoints(
        self, *, prefix: str | None = None, after_key: str | None = None
    ) -> AsyncIterator[list[CheckpointObject]]:
        """Every version of every checkpoint key, one list per key, highest seq first
        (versions newest first), each read and verified. Lists versions, not objects, so
        neither an overwrite nor a delete marker hides a checkpoint."""
        client = self.store.client
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": prefix or self.checkpoint_prefix(),
            "MaxKeys": 100,
        }
        if after_key:
            kwargs["KeyMarker"] = after_key
        pending: list[tuple[str, str | None, bool]] = []
        keys_seen = 0
        try:
            while True:
                page = await client.list_object_versions(**kwargs)
                items = [(v["Key"], v.get("VersionId"), False) for v in page.get("Versions", [])]
                items += [
                    (d["Key"], d.get("VersionId"), True) for d in page.get("DeleteMarkers", [])
                ]
                items.sort(key=lambda item: item[0])  # stable: versions stay newest first
                for item in items:
                    if pending and pending[0][0] != item[0]:
                        yield await self._read_checkpoint_versions(pending)
                        keys_seen += 1
                        if keys_seen >= _CHECKPOINT_SCAN_LIMIT:
                            return
                        pending = []
                    pending.append(item)
                if not page.get("IsTruncated"):
                    break
                kwargs["KeyMarker"] = page.get("NextKeyMarker")
                if page.get("NextVersionIdMarker"):
                    kwargs["VersionIdMarker"] = page["NextVersionIdMarker"]
                else:
                    kwargs.pop("VersionIdMarker", None)
            if pending:
                yield await self._read_checkpoint_versions(pending)
        except ClientError as exc:
            if _client_error_code(exc) == "NoSuchBucket":
                return  # no archive yet, so no checkpoint
            raise ArchiveError(
                "archive_list_refused",
                f"listing the checkpoints of {self.chain!r} was refused",
                details={"s3_code": _client_error_code(exc)},
            ) from exc
        except BotoCoreError as exc:
            raise ArchiveUnavailable(
                "object_store_unavailable", f"listing checkpoints of {self.chain!r}: {exc}"
            ) from exc

    async def _read_checkpoint_versions(
        self, versions: list[tuple[str, str | None, bool]]
    ) -> list[CheckpointObject]:
        out: list[CheckpointObject] = []
        for object_key, version_id, delete_marker in versions:
            obj = CheckpointObject(bucket=self.bucket, object_key=object_key, version_id=version_id)
            out.append(obj)
            if delete_marker:
                obj.problem = "a delete marker hides this checkpoint"
                continue
            match = _CHECKPOINT_NAME_RE.match(object_key.rsplit("/", 1)[-1])
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": object_key}
            if version_id and version_id != "null":
                kwargs["VersionId"] = version_id
            try:
                resp = await self.store.client.get_object(**kwargs)
                async with resp["Body"] as body:
                    data = await body.read()
                checkpoint = parse_checkpoint(data, self.keys)
            except ClientError as exc:
                obj.problem = f"unreadable ({_client_error_code(exc)})"
                continue
            except ArchiveError as exc:
                obj.problem = exc.reason
                continue
            if (
                match is None
                or checkpoint.chain != self.chain
                or int(match.group(2)) != checkpoint.seq
                or int(match.group(1)) != _CHECKPOINT_SEQ_SPAN - checkpoint.seq
            ):
                obj.problem = (
                    f"a checkpoint of {checkpoint.chain!r} entry {checkpoint.seq} "
                    "stored under another chain's or entry's key"
                )
                continue
            obj.checkpoint = checkpoint
        valid = {(o.checkpoint.entry_id, o.checkpoint.mac) for o in out if o.checkpoint}
        if len(valid) > 1:
            for o in out:
                if o.checkpoint is not None:
                    o.problem = "validly signed checkpoints disagree about this entry"
                    o.checkpoint = None
        return out

    async def verify_chain(self) -> AnchoredVerifyReport:
        """Verify the chain in the database against the latest signed checkpoint.

        Reads the checkpoint first, then one database snapshot (so a checkpoint is never
        ahead of what is committed). Reports, besides entries altered, removed or
        reordered: a tail cut below the checkpoint (``truncated``), another entry at the
        checkpoint's position (``diverged``, narrowed by older checkpoints to the last one
        the database still matches) and a reset head, each naming the last trusted entry
        and the missing range; and every checkpoint object that was refused.
        ``ok`` only when both the chain and every checkpoint object read verify.
        """
        lookup = await self.latest_checkpoint()
        latest = lookup.latest.checkpoint if lookup.latest else None
        chain = AuditChain(self.pool, self.keyring, self.chain)
        anchor = latest.trusted_head() if latest else None
        report = await chain.verify(anchor)
        brk = report.first_break
        if brk is not None and brk.kind == "diverged" and latest and lookup.latest:
            async for versions in self._scan_checkpoints(after_key=lookup.latest.object_key):
                lookup.refused.extend(v for v in versions if v.problem is not None)
                older = next((v.checkpoint for v in versions if v.checkpoint), None)
                if older is None or older.seq >= brk.seq:
                    continue
                if await chain.entry_at(older.seq) == (older.entry_id, older.mac):
                    brk.last_trusted_seq = older.seq
                    brk.last_trusted_entry_id = older.entry_id
                    brk.missing_first = older.seq + 1
                    signed = older.checkpointed_at.isoformat(timespec="seconds")
                    brk.problem += (
                        f"; the latest checkpoint the database still matches is entry "
                        f"{older.seq} (signed {signed})"
                    )
                    break
            else:
                brk.problem += "; no older checkpoint matches the database"
        age = None
        unanchored = 0
        if latest is not None:
            age = (datetime.now(UTC) - latest.checkpointed_at).total_seconds()
            unanchored = max(report.last_seq - latest.seq, 0)
        return AnchoredVerifyReport(
            chain=self.chain,
            ok=report.ok and not lookup.refused,
            report=report,
            checkpoint=lookup.latest,
            refused=lookup.refused,
            unanchored_entries=unanchored,
            checkpoint_age_seconds=age,
        )

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

    def _signature_problem(self, seal: dict[str, Any]) -> str | None:
        """Ed25519 seals verify under the archive's public keys; legacy (format 1) seals
        under the keyring's ``audit`` HMAC keys."""
        alg = seal.get("alg", LEGACY_SEAL_ALG)
        key_id, signature = str(seal.get("signing_key_id")), str(seal.get("signature"))
        digest = bytes.fromhex(str(seal["body_sha256"]))
        if alg == SIGNATURE_ALG:
            problem = self.keys.verify(key_id, signature, SEAL_CONTEXT_V2 + digest)
            return f"segment seal {problem}" if problem else None
        if alg != LEGACY_SEAL_ALG:
            return f"segment sealed with unknown algorithm {alg!r}"
        try:
            key = self.keyring.get("audit", key_id)
        except KeyringError:
            return f"segment sealed with unknown key {key_id!r}"
        if not hmac.compare_digest(seal_signature(key, digest.hex()), signature):
            return "segment seal signature does not verify"
        return None

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
        problem = self._signature_problem(seal)
        if problem:
            return problem
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


def _tampered(report: VerifyReport) -> ChainTampered:
    brk = report.first_break
    assert brk is not None
    missing = f", missing range {brk.missing_range}" if brk.missing_range else ""
    return ChainTampered(
        "AUDIT_CHAIN_TAMPERED",
        f"audit chain {report.chain!r} at entry {brk.seq}: {brk.problem} "
        f"(last trusted entry {brk.last_trusted}{missing}); not checkpointed",
        subject=f"audit-chain:{report.chain}",
        details=brk.model_dump(),
    )


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
