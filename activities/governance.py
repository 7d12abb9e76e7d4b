"""Activities of governance: seal the audit chain, verify the archive, apply retention."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from temporalio import activity

from activities.deps import Deps
from activities.errors import taxonomy_errors
from clinflow.audit_archive import ArchiveVerifyReport, AuditArchive
from clinflow.audit_chain import DEFAULT_CHAIN, AuditChain
from clinflow.errors import ComplianceBlock
from clinflow.key_escrow import KeyEscrow
from clinflow.retention import Retention


class SealInput(BaseModel):
    chain: str = DEFAULT_CHAIN
    actor: str = "schedule:audit-seal"
    checkpoint_only: bool = False  # only sign the head into the archive (the minute schedule)


class SealSummary(BaseModel):
    chain: str
    segments: int
    entries: int
    first_seq: int | None = None
    last_seq: int | None = None
    head_seq: int
    checkpoint_seq: int | None = None  # the head the archive's latest signed checkpoint names
    checkpoint_written: bool = False


class VerifyArchiveInput(BaseModel):
    chain: str = DEFAULT_CHAIN


class RetentionRunInput(BaseModel):
    now: datetime
    dry_run: bool = False
    limit: int | None = None
    actor: str = "schedule:retention"


class RetentionSummary(BaseModel):
    """Counts only: the full record of each purge is on the audit chain."""

    now: datetime
    dry_run: bool
    due: int
    purged: int
    crypto_shredded: int
    per_policy: dict[str, int]
    truncated: bool


class GovernanceActivities:
    """Each activity is idempotent: a retry after a crash converges on the same state."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def _archive(self, chain: str) -> AuditArchive:
        d = self.deps
        return AuditArchive(d.settings, d.pool, d.keyring, d.store, chain)

    @activity.defn(name="governance.seal_audit")
    @taxonomy_errors
    async def seal_audit(self, req: SealInput) -> SealSummary:
        """Seal every not-yet-archived audit entry into write-once segments, checkpointing
        the head before and after; with ``checkpoint_only``, only checkpoint the head.
        COMPLIANCE_BLOCK (AUDIT_CHAIN_TAMPERED) when the chain no longer extends the
        latest checkpoint."""
        archive = self._archive(req.chain)
        if req.checkpoint_only:
            only = await archive.checkpoint(reason=req.actor)
            seq = only.checkpoint.seq if only.checkpoint else None
            return SealSummary(
                chain=req.chain,
                segments=0,
                entries=0,
                head_seq=seq or 0,
                checkpoint_seq=seq,
                checkpoint_written=only.written,
            )
        result = await archive.seal(actor=req.actor)
        cp = result.checkpoint
        return SealSummary(
            chain=req.chain,
            segments=len(result.segments),
            entries=result.sealed_entries,
            first_seq=result.segments[0].first_seq if result.segments else None,
            last_seq=result.segments[-1].last_seq if result.segments else None,
            head_seq=result.head_seq,
            checkpoint_seq=cp.checkpoint.seq if cp and cp.checkpoint else None,
            checkpoint_written=bool(cp and cp.written),
        )

    @activity.defn(name="governance.verify_archive")
    @taxonomy_errors
    async def verify_archive(self, req: VerifyArchiveInput) -> ArchiveVerifyReport:
        """Compare the archive with the database; COMPLIANCE_BLOCK on the first discrepancy."""
        report = await self._archive(req.chain).verify_archive()
        if not report.ok and report.first_discrepancy is not None:
            d = report.first_discrepancy
            raise ComplianceBlock(
                "AUDIT_ARCHIVE_DISCREPANCY",
                f"segment {d.segment_no}: {d.problem}",
                subject=f"audit-archive:{req.chain}",
                details=d.model_dump(),
            )
        return report

    @activity.defn(name="governance.run_retention")
    @taxonomy_errors
    async def run_retention(self, req: RetentionRunInput) -> RetentionSummary:
        """Purge (crypto-shred, record, delete) what the policies say is due at ``req.now``."""
        d = self.deps
        activity.heartbeat("planning")
        retention = Retention(
            d.settings, d.pool, d.store, KeyEscrow(d.pool, d.keyring), AuditChain(d.pool, d.keyring)
        )
        result = await retention.run(req.now, dry_run=req.dry_run, limit=req.limit, actor=req.actor)
        return RetentionSummary(
            now=result.now,
            dry_run=result.dry_run,
            due=result.due,
            purged=len(result.purged),
            crypto_shredded=sum(1 for p in result.purged if p.crypto_shredded),
            per_policy=result.per_policy,
            truncated=result.truncated,
        )
