"""Governance workflows run by Temporal Schedules: seal the audit chain, apply retention."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.governance import (
        GovernanceActivities,
        RetentionRunInput,
        RetentionSummary,
        SealInput,
        SealSummary,
        VerifyArchiveInput,
    )
    from clinflow.audit_chain import DEFAULT_CHAIN


class AuditSealInput(BaseModel):
    chain: str = DEFAULT_CHAIN
    verify: bool = True
    actor: str = "schedule:audit-seal"
    seal: bool = True  # False: only sign the head into the archive (checkpoint schedule)


class AuditSealResult(BaseModel):
    seal: SealSummary
    verified_segments: int | None = None


class RetentionInput(BaseModel):
    dry_run: bool = False
    limit: int | None = None
    now: datetime | None = None  # only to rehearse a future date; default: workflow time
    actor: str = "schedule:retention"


IO_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=3,
    non_retryable_error_types=["COMPLIANCE_BLOCK", "FATAL_SCHEMA_MISMATCH"],
)


@workflow.defn
class AuditSealWorkflow:
    """Seal new audit entries into write-once storage, then verify the whole archive.

    With ``seal=False`` it only signs the chain's head into the archive (a checkpoint):
    the checkpoint schedule runs it every minute, so a truncated tail is detectable.
    """

    @workflow.run
    async def run(self, req: AuditSealInput) -> AuditSealResult:
        seal = await workflow.execute_activity_method(
            GovernanceActivities.seal_audit,
            SealInput(chain=req.chain, actor=req.actor, checkpoint_only=not req.seal),
            start_to_close_timeout=timedelta(minutes=15 if req.seal else 2),
            retry_policy=IO_RETRY,
        )
        verified = None
        if req.verify and req.seal:
            report = await workflow.execute_activity_method(
                GovernanceActivities.verify_archive,
                VerifyArchiveInput(chain=req.chain),
                start_to_close_timeout=timedelta(minutes=30),
                retry_policy=IO_RETRY,
            )
            verified = report.segments
        return AuditSealResult(seal=seal, verified_segments=verified)


@workflow.defn
class RetentionWorkflow:
    """Apply the retention policies at the workflow's time (or a rehearsal date)."""

    @workflow.run
    async def run(self, req: RetentionInput) -> RetentionSummary:
        return await workflow.execute_activity_method(
            GovernanceActivities.run_retention,
            RetentionRunInput(
                now=req.now or workflow.now(),
                dry_run=req.dry_run,
                limit=req.limit,
                actor=req.actor,
            ),
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=10),
            retry_policy=IO_RETRY,
        )
