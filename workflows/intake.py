"""IntakeWorkflow: the smallest whole job — hash, store encrypted, verify, audit one file."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.intake import (
        AuditInput,
        IntakeActivities,
        StoreFileInput,
        VerifyObjectInput,
    )
    from clinflow.audit_chain import AuditEntry


class IntakeInput(BaseModel):
    path: str
    sha256: str
    size: int
    submitted_by: str
    bucket: str
    content_type: str = "application/octet-stream"


class IntakeResult(BaseModel):
    bucket: str
    key: str
    sha256: str
    size: int
    audit_seq: int


# Transient failures: 3 attempts with backoff; taxonomy errors marked non-retryable stop at once.
IO_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
    non_retryable_error_types=["COMPLIANCE_BLOCK", "FATAL_SCHEMA_MISMATCH"],
)


@workflow.defn
class IntakeWorkflow:
    """One file in: stored encrypted under its hash, verified, and on the audit chain."""

    def __init__(self) -> None:
        self.stage = "received"

    @workflow.query
    def status(self) -> str:
        return self.stage

    @workflow.run
    async def run(self, req: IntakeInput) -> IntakeResult:
        wf_id = workflow.info().workflow_id
        key = f"intake/{req.sha256[:2]}/{req.sha256}"
        self.stage = "storing"
        stored = await workflow.execute_activity_method(
            IntakeActivities.store_file,
            StoreFileInput(
                path=req.path, bucket=req.bucket, key=key, content_type=req.content_type
            ),
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=IO_RETRY,
        )
        self.stage = "verifying"
        await workflow.execute_activity_method(
            IntakeActivities.verify_object,
            VerifyObjectInput(bucket=stored.bucket, key=stored.key, expected_sha256=req.sha256),
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=IO_RETRY,
        )
        self.stage = "auditing"
        record = await workflow.execute_activity_method(
            IntakeActivities.append_audit,
            AuditInput(
                entry=AuditEntry(
                    entry_id=f"{wf_id}:stored",
                    occurred_at=workflow.now(),
                    actor=req.submitted_by,
                    action="intake.stored",
                    location=f"workflow:{wf_id}",
                    reason="file received, stored encrypted and verified",
                    subject_ref=f"s3://{stored.bucket}/{stored.key}",
                    payload_sha256=stored.sha256,
                    details={"size": stored.size, "kek_id": stored.kek_id},
                )
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=IO_RETRY,
        )
        self.stage = "done"
        return IntakeResult(
            bucket=stored.bucket,
            key=stored.key,
            sha256=stored.sha256,
            size=stored.size,
            audit_seq=record.seq,
        )
