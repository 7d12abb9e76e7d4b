"""Electronic signatures on review decisions (21 CFR Part 11, subpart C).

A reviewer's decision is signed, not merely recorded: the :class:`Decision`
carries the signer's user id and printed name, the UTC date and time, the
meaning of the signature (approval, rejection, review), and the record it
applies to (a packet or document reference plus its SHA-256). The signature is
Ed25519 over ``DOMAIN || canonical_json(decision) || "\\n" || record_sha256``, so
it cannot be detached from the record or moved to another one. Each reviewer's
public key is registered in ``reviewer_keys`` (key id = first 16 bytes of the
SHA-256 of the raw public key, hex); a signature is verified when received
(:func:`verify_against_registry`) and again, for every audit entry of action
``packet.review.*`` carrying one, by :func:`verify_audit_signatures`
(``clinflow audit verify-signatures``).

Errors are :class:`ESignatureError` (a ``COMPLIANCE_BLOCK``: a decision whose
signature does not verify is not a decision).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import asyncpg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clinflow.audit_chain import DEFAULT_CHAIN, AuditChain, AuditEntry
from clinflow.errors import ComplianceBlock

ALGORITHM: Final = "Ed25519"
#: Domain separation: these bytes start every signed message.
DOMAIN: Final = b"clinflow-esign-v1\n"
#: Key of the signed decision inside an audit entry's ``details``.
SIGNED_DECISION_DETAIL: Final = "signed_decision"
#: Audit actions whose signed decisions ``verify_audit_signatures`` re-verifies.
REVIEW_ACTION_PREFIX: Final = "packet.review."
_SHA256_RE: Final = re.compile(r"^[0-9a-f]{64}$")


class SignatureMeaning(StrEnum):
    """What the signer means by signing (Part 11 §11.50(a)(3))."""

    APPROVAL = "approval"
    REJECTION = "rejection"
    REVIEW = "review"


class ESignatureError(ComplianceBlock):
    """A signed decision cannot be accepted.

    Codes: ``esign_bad_signature`` (tampered decision or wrong key),
    ``esign_unknown_key`` (key id not registered), ``esign_signer_mismatch`` (the
    key belongs to another user), ``esign_key_revoked``, ``esign_record_mismatch``
    (signed for another record), ``esign_malformed`` (not a signed decision),
    ``esign_bad_key`` (unreadable key material).
    """


class Decision(BaseModel):
    """The signed content: who, printed name, when (UTC), meaning, which record, why."""

    model_config = ConfigDict(frozen=True)

    signer: str = Field(description="The reviewer's user id (as in their access token).")
    printed_name: str = Field(description="The signer's printed name, shown with the record.")
    role: str = Field(description="The business role the signer acted in.")
    meaning: SignatureMeaning
    signed_at: datetime = Field(description="UTC date and time of signing.")
    record_ref: str = Field(description="The signed record: a packet or document reference.")
    record_sha256: str = Field(description="SHA-256 (hex) of the signed document or packet.")
    reason: str | None = Field(None, description="The reviewer's reason, in words.")

    @field_validator("signed_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("signed_at must be timezone-aware")
        return value.astimezone(UTC)

    @field_validator("record_sha256")
    @classmethod
    def _sha(cls, value: str) -> str:
        if not _SHA256_RE.match(value):
            raise ValueError("record_sha256 must be 64 lowercase hex characters")
        return value

    @field_validator("signer", "printed_name", "record_ref", "role")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class SignedDecision(BaseModel):
    """A decision with its Ed25519 signature and the id of the signing key."""

    model_config = ConfigDict(frozen=True)

    decision: Decision
    algorithm: str = ALGORITHM
    key_id: str
    signature: str = Field(description="base64 Ed25519 signature over signed_message().")

    def manifestation(self) -> str:
        """The human-readable signature shown with the record (Part 11 §11.50)."""
        d = self.decision
        return (
            f"{d.printed_name} ({d.signer}, {d.role}) — {d.meaning.value} — "
            f"{d.signed_at.strftime('%Y-%m-%d %H:%M:%S')} UTC — key {self.key_id}"
        )

    def audit_details(self) -> dict[str, Any]:
        """What an audit entry's ``details`` should carry for re-verification."""
        return {SIGNED_DECISION_DETAIL: self.model_dump(mode="json")}


class ReviewerKey(BaseModel):
    key_id: str
    user_id: str
    public_key: str = Field(description="PEM (SubjectPublicKeyInfo).")
    registered_at: datetime
    registered_by: str
    revoked_at: datetime | None = None
    created: bool = True


# --------------------------------------------------------------------------- keys
def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def key_id(public_key: Ed25519PublicKey) -> str:
    """Stable id of a public key: hex of the first 16 bytes of SHA-256(raw key)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key(data: bytes | str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM; ESignatureError(esign_bad_key) otherwise."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        key = serialization.load_pem_public_key(raw)
    except ValueError as exc:
        raise ESignatureError("esign_bad_key", f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ESignatureError("esign_bad_key", "the public key is not an Ed25519 key")
    return key


def load_private_key(path: Path, password: bytes | None = None) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file; ESignatureError(esign_bad_key) otherwise."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=password)
    except (ValueError, TypeError) as exc:
        raise ESignatureError("esign_bad_key", f"cannot read private key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ESignatureError("esign_bad_key", f"{path} is not an Ed25519 private key")
    return key


def write_key_pair(
    private_key: Ed25519PrivateKey, path: Path, password: bytes | None = None
) -> Path:
    """Write the private key (PKCS#8 PEM, mode 0600) and ``<path>.pub``; returns the .pub path.

    Refuses (FileExistsError) to overwrite an existing private key file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub = path.with_name(path.name + ".pub")
    pub.write_text(public_key_pem(private_key.public_key()))
    return pub


# --------------------------------------------------------------------------- sign / verify
def canonical_decision(decision: Decision) -> bytes:
    """Sorted keys, no whitespace, UTC time with microseconds: the bytes that get signed."""
    body = decision.model_dump(mode="json")
    body["signed_at"] = decision.signed_at.astimezone(UTC).isoformat(timespec="microseconds")
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signed_message(decision: Decision) -> bytes:
    """The exact message an Ed25519 signature covers: decision plus the record's hash."""
    return DOMAIN + canonical_decision(decision) + b"\n" + decision.record_sha256.encode("ascii")


def sign_decision(private_key: Ed25519PrivateKey, decision: Decision) -> SignedDecision:
    """Sign ``decision`` with the reviewer's private key."""
    signature = private_key.sign(signed_message(decision))
    return SignedDecision(
        decision=decision,
        key_id=key_id(private_key.public_key()),
        signature=base64.b64encode(signature).decode("ascii"),
    )


def verify_signed_decision(signed: SignedDecision, public_key: Ed25519PublicKey) -> None:
    """Raise ESignatureError unless ``public_key`` made ``signed``'s signature over its decision."""
    subject = signed.decision.record_ref
    if signed.algorithm != ALGORITHM:
        raise ESignatureError(
            "esign_malformed", f"unsupported algorithm {signed.algorithm!r}", subject=subject
        )
    if key_id(public_key) != signed.key_id:
        raise ESignatureError(
            "esign_bad_signature",
            f"decision names key {signed.key_id} but was checked against {key_id(public_key)}",
            subject=subject,
            details={"key_id": signed.key_id},
        )
    try:
        signature = base64.b64decode(signed.signature, validate=True)
    except (binascii.Error, ValueError):
        raise ESignatureError(
            "esign_malformed", "signature is not base64", subject=subject
        ) from None
    try:
        public_key.verify(signature, signed_message(signed.decision))
    except InvalidSignature:
        raise ESignatureError(
            "esign_bad_signature",
            f"signature by key {signed.key_id} does not match the decision "
            "(altered after signing, or signed by another key)",
            subject=subject,
            details={"key_id": signed.key_id, "signer": signed.decision.signer},
        ) from None


def parse_signed_decision(raw: Any) -> SignedDecision:
    """A SignedDecision from its JSON form; ESignatureError(esign_malformed) otherwise."""
    try:
        return SignedDecision.model_validate(raw)
    except ValidationError as exc:
        raise ESignatureError(
            "esign_malformed", f"not a signed decision: {exc.error_count()} problems"
        ) from None


# --------------------------------------------------------------------------- registry
def _reviewer_key(row: asyncpg.Record, created: bool = True) -> ReviewerKey:
    return ReviewerKey(
        key_id=row["key_id"],
        user_id=row["user_id"],
        public_key=row["public_key"],
        registered_at=row["registered_at"],
        registered_by=row["registered_by"],
        revoked_at=row["revoked_at"],
        created=created,
    )


async def register_reviewer_key(
    pool: asyncpg.Pool,
    user: str,
    public_key: Ed25519PublicKey,
    *,
    registered_by: str,
    audit: AuditChain | None = None,
) -> ReviewerKey:
    """Register ``public_key`` for ``user``; idempotent on the key id (``created`` False then).

    Raises ESignatureError(esign_signer_mismatch) when the key is registered to
    another user. Appends ``auth.reviewer_key.registered`` to ``audit`` when new.
    """
    kid = key_id(public_key)
    pem = public_key_pem(public_key)
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "INSERT INTO reviewer_keys (key_id, user_id, public_key, algorithm, registered_by) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id) DO NOTHING RETURNING *",
            kid,
            user,
            pem,
            ALGORITHM,
            registered_by,
        )
        created = row is not None
        if row is None:
            row = await conn.fetchrow("SELECT * FROM reviewer_keys WHERE key_id = $1", kid)
    assert row is not None
    if row["user_id"] != user:
        raise ESignatureError(
            "esign_signer_mismatch",
            f"key {kid} is already registered to another user",
            details={"key_id": kid},
        )
    if created and audit is not None:
        await audit.append(
            AuditEntry(
                actor=registered_by,
                action="auth.reviewer_key.registered",
                reason="reviewer signing key registered",
                subject_ref=f"reviewer:{user}",
                details={"key_id": kid, "user": user, "algorithm": ALGORITHM},
                entry_id=f"reviewer-key-{kid}",
            )
        )
    return _reviewer_key(row, created)


async def reviewer_key(pool: asyncpg.Pool, kid: str) -> ReviewerKey | None:
    """The registered key ``kid``, or None."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM reviewer_keys WHERE key_id = $1", kid)
    return None if row is None else _reviewer_key(row)


async def reviewer_keys(pool: asyncpg.Pool, user: str) -> list[ReviewerKey]:
    """Every key registered for ``user``, oldest first."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM reviewer_keys WHERE user_id = $1 ORDER BY registered_at", user
        )
    return [_reviewer_key(r) for r in rows]


def check_against_key(signed: SignedDecision, key: ReviewerKey | None) -> None:
    """Verify ``signed`` against its registered key record; raises ESignatureError."""
    subject = signed.decision.record_ref
    if key is None:
        raise ESignatureError(
            "esign_unknown_key",
            f"signing key {signed.key_id} is not registered",
            subject=subject,
            details={"key_id": signed.key_id},
        )
    if key.user_id != signed.decision.signer:
        raise ESignatureError(
            "esign_signer_mismatch",
            f"key {key.key_id} belongs to another user than the signer",
            subject=subject,
            details={"key_id": key.key_id},
        )
    if key.revoked_at is not None and key.revoked_at <= signed.decision.signed_at:
        raise ESignatureError(
            "esign_key_revoked",
            f"key {key.key_id} was revoked at {key.revoked_at.isoformat()}, before signing",
            subject=subject,
            details={"key_id": key.key_id},
        )
    verify_signed_decision(signed, load_public_key(key.public_key))


async def verify_against_registry(
    pool: asyncpg.Pool,
    signed: SignedDecision,
    *,
    record_sha256: str | None = None,
    signer: str | None = None,
) -> ReviewerKey:
    """Verify a received decision: registered, unrevoked key of the signer; signature valid.

    ``record_sha256``/``signer``, when given, must match what was signed (the
    record under review, the user of the access token). Raises ESignatureError.
    """
    subject = signed.decision.record_ref
    if record_sha256 is not None and signed.decision.record_sha256 != record_sha256:
        raise ESignatureError(
            "esign_record_mismatch",
            "the decision was signed for another document or packet",
            subject=subject,
        )
    if signer is not None and signed.decision.signer != signer:
        raise ESignatureError(
            "esign_signer_mismatch",
            "the decision's signer is not the authenticated user",
            subject=subject,
        )
    key = await reviewer_key(pool, signed.key_id)
    check_against_key(signed, key)
    assert key is not None
    return key


# --------------------------------------------------------------------------- audit
class SignatureCheck(BaseModel):
    seq: int
    entry_id: str
    action: str
    ok: bool
    signer: str | None = None
    printed_name: str | None = None
    meaning: str | None = None
    signed_at: str | None = None
    key_id: str | None = None
    code: str | None = None
    problem: str | None = None


class SignatureReport(BaseModel):
    chain: str
    checked: int
    failed: int
    items: list[SignatureCheck]

    @property
    def ok(self) -> bool:
        return self.failed == 0


async def verify_audit_signatures(
    pool: asyncpg.Pool, *, chain: str = DEFAULT_CHAIN
) -> SignatureReport:
    """Re-verify every signed decision in ``packet.review.*`` entries of ``chain``.

    Each must parse, name a registered key of its signer, verify, and be bound to
    the entry's record (``payload_sha256`` when the entry has one). Read-only.
    """
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT seq, entry_id, action, payload_sha256, details FROM audit_log "
            "WHERE chain = $1 AND starts_with(action, $2) AND details ? $3 ORDER BY seq",
            chain,
            REVIEW_ACTION_PREFIX,
            SIGNED_DECISION_DETAIL,
        )
        keys = {
            r["key_id"]: _reviewer_key(r) for r in await conn.fetch("SELECT * FROM reviewer_keys")
        }
    items: list[SignatureCheck] = []
    for row in rows:
        details = json.loads(row["details"])
        raw = details.get(SIGNED_DECISION_DETAIL)
        check = SignatureCheck(
            seq=row["seq"], entry_id=row["entry_id"], action=row["action"], ok=False
        )
        try:
            signed = parse_signed_decision(raw)
            d = signed.decision
            check = check.model_copy(
                update={
                    "signer": d.signer,
                    "printed_name": d.printed_name,
                    "meaning": d.meaning.value,
                    "signed_at": d.signed_at.isoformat(),
                    "key_id": signed.key_id,
                }
            )
            bound = row["payload_sha256"]
            if bound is not None and bound != d.record_sha256:
                raise ESignatureError(
                    "esign_record_mismatch",
                    "the entry's record hash differs from the signed record hash",
                    subject=d.record_ref,
                )
            check_against_key(signed, keys.get(signed.key_id))
        except ESignatureError as exc:
            check = check.model_copy(update={"code": exc.code, "problem": exc.reason})
        else:
            check = check.model_copy(update={"ok": True})
        items.append(check)
    failed = sum(1 for i in items if not i.ok)
    return SignatureReport(chain=chain, checked=len(items), failed=failed, items=items)
