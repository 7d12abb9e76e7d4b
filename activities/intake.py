"""Activities of the intake job: store a file encrypted, verify it, audit it."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from pydantic import BaseModel
from temporalio import activity

from activities.deps import Deps
from activities.errors import taxonomy_errors
from clinflow.audit_chain import AuditEntry, AuditRecord
from clinflow.errors import ComplianceBlock, FatalSchemaMismatch
from clinflow.object_store import ObjectIntegrityError, StoredObject


class StoreFileInput(BaseModel):
    path: str
    bucket: str
    key: str
    content_type: str = "application/octet-stream"


class VerifyObjectInput(BaseModel):
    bucket: str
    key: str
    expected_sha256: str


class VerifyObjectResult(BaseModel):
    sha256: str
    size: int


class AuditInput(BaseModel):
    entry: AuditEntry


class IntakeActivities:
    """Hash, store and audit; each activity is idempotent and safe to retry."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="intake.store_file")
    @taxonomy_errors
    async def store_file(self, req: StoreFileInput) -> StoredObject:
        """Stream the file to the object store, encrypted, hashing it on the way.

        Raises FATAL_SCHEMA_MISMATCH when the file is missing or unreadable.
        """
        path = Path(req.path)
        if not await asyncio.to_thread(path.is_file):
            raise FatalSchemaMismatch(
                "FILE_NOT_FOUND", f"no readable file at {path}", subject=req.key
            )
        activity.heartbeat("uploading")
        return await self.deps.store.upload(
            req.bucket, req.key, path, content_type=req.content_type
        )

    @activity.defn(name="intake.verify_object")
    @taxonomy_errors
    async def verify_object(self, req: VerifyObjectInput) -> VerifyObjectResult:
        """Re-read the stored object, decrypting it, and compare its SHA-256 (streaming).

        A mismatch is a COMPLIANCE_BLOCK: stored bytes differ from what was received.
        """
        digest = hashlib.sha256()
        size = 0
        mismatch: dict[str, str] = {}
        try:
            async for chunk in self.deps.store.download(req.bucket, req.key):
                digest.update(chunk)
                size += len(chunk)
        except ObjectIntegrityError as exc:
            mismatch = {"store": exc.reason}
        if mismatch or digest.hexdigest() != req.expected_sha256:
            raise ComplianceBlock(
                "HASH_MISMATCH",
                "stored object does not match the ingestion hash",
                subject=f"s3://{req.bucket}/{req.key}",
                details={
                    "expected": req.expected_sha256,
                    "actual": digest.hexdigest(),
                    **mismatch,
                },
            )
        return VerifyObjectResult(sha256=digest.hexdigest(), size=size)

    @activity.defn(name="audit.append")
    async def append_audit(self, req: AuditInput) -> AuditRecord:
        """Append one entry to the audit chain (idempotent on entry_id)."""
        return await self.deps.audit.append(req.entry)
