"""Reading a stored packet document: for authorised roles only, and every access audited.

Documents are envelope-encrypted before they reach the object store, so a presigned URL
would hand out ciphertext; the way to raw contents is this module (and the CLI on top of
it): verify the caller's token, decrypt the object while streaming it to a file, and
append ``document.accessed`` (or ``document.access_refused``) to the audit chain.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from pydantic import BaseModel

from clinflow.audit_chain import AuditChain, AuditEntry
from clinflow.auth import AuthError, Principal, verify_token
from clinflow.errors import FatalSchemaMismatch
from clinflow.keyring import Keyring
from clinflow.object_store import ObjectStore
from clinflow.settings import Settings

#: Roles that may read raw packet contents (DevOps operates the platform but may not).
DOCUMENT_READER_ROLES = ("regulatory_affairs", "qa", "clinical_ops")


class DocumentNotFound(FatalSchemaMismatch):
    """No stored document has the given document key."""


class DocumentCopy(BaseModel):
    document_key: str
    path: str
    sha256: str
    size: int
    audit_seq: int


async def fetch_document(
    settings: Settings,
    keyring: Keyring,
    pool: asyncpg.Pool,
    document_key: str,
    token: str | None,
    out: Path,
    *,
    reason: str,
) -> DocumentCopy:
    """Decrypt the document ``document_key`` into ``out`` for the token's user (PHI).

    Raises AuthError (the refusal is audited first) or DocumentNotFound. The plaintext's
    SHA-256 is checked against the ingestion hash before the copy is reported.
    """
    audit = AuditChain(pool, keyring)
    try:
        principal: Principal = verify_token(
            keyring, token, required_role=DOCUMENT_READER_ROLES, settings=settings
        )
    except AuthError as exc:
        await audit.append(
            AuditEntry(
                actor=exc.user or "unknown",
                action="document.access_refused",
                location="cli",
                reason=f"{exc.code}: {exc}",
                subject_ref=document_key,
            )
        )
        raise
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT sha256, s3_bucket, s3_key FROM packet_documents WHERE document_key = $1",
            document_key,
        )
    if row is None:
        raise DocumentNotFound(
            "DOCUMENT_NOT_FOUND", f"no stored document {document_key!r}", subject=document_key
        )
    digest = hashlib.sha256()
    size = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    async with ObjectStore(settings, keyring) as store:
        with os.fdopen(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
            async for chunk in store.download(
                row["s3_bucket"], row["s3_key"], expected_sha256=row["sha256"].strip()
            ):
                fh.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    record = await audit.append(
        AuditEntry(
            actor=principal.user,
            action="document.accessed",
            location="cli",
            reason=reason,
            subject_ref=document_key,
            payload_sha256=digest.hexdigest(),
            details={"role": principal.role, "size": size, "at": datetime.now(UTC).isoformat()},
        )
    )
    return DocumentCopy(
        document_key=document_key,
        path=str(out),
        sha256=digest.hexdigest(),
        size=size,
        audit_seq=record.seq,
    )
