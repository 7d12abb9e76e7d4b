"""Sealing the audit chain to write-once storage, and verifying the archive against it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from clinflow.audit_archive import (
    SIGNATURE_ALG,
    ArchiveSigner,
    AuditArchive,
    _parse_segment,
    archive_bucket,
    seal_signature,
)
from clinflow.audit_chain import AuditChain, AuditEntry
from clinflow.keyring import Keyring
from clinflow.object_store import ObjectStore
from clinflow.settings import Settings

pytestmark = pytest.mark.stack


@pytest.fixture
async def store(stack: Settings, keyring: Keyring) -> AsyncIterator[ObjectStore]:
    async with ObjectStore(stack, keyring) as s:
        yield s


def chain_name() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


async def fill(chain: AuditChain, n: int) -> None:
    for i in range(n):
        await chain.append(
            AuditEntry(
                actor="tester",
                action="test.event",
                subject_ref=f"doc-{i}",
                details={"i": i, "note": "ünïcode ok"},
            )
        )


async def test_seal_and_verify_two_segments(
    stack: Settings, app_pool: Any, keyring: Keyring, store: ObjectStore
) -> None:
    name = chain_name()
    chain = AuditChain(app_pool, keyring, name)
    archive = AuditArchive(stack, app_pool, keyring, store, name)
    await fill(chain, 5)
    first = await archive.seal()
    assert [(s.first_seq, s.last_seq) for s in first.segments] == [(1, 5)]
    seg1 = first.segments[0]
    assert seg1.lock_mode == "object-lock" and seg1.version_id
    assert seg1.prev_segment_sha256 is None
    # The seal itself was recorded on the chain (entry 6) and is sealed next time.
    entries = await chain.entries()
    assert entries[-1]["action"] == "audit.segment_sealed"
    assert entries[-1]["payload_sha256"] == seg1.segment_sha256
    assert (await archive.seal()).segments[0].first_seq == 6  # the seal entry
    await fill(chain, 3)
    third = await archive.seal()
    assert third.segments[0].prev_segment_sha256 is not None
    report = await archive.verify_archive()
    assert report.ok, report.first_discrepancy
    assert report.segments == 3 and report.entries == 10
    # Nothing new beyond the seal entries: sealing is idempotent in effect.
    assert (await archive.seal()).segments[0].entry_count == 1
    assert (await chain.verify()).ok
    # Every seal leaves the head, seal entries included, checkpointed.
    anchored = await archive.verify_chain()
    assert anchored.ok and anchored.unanchored_entries == 0
    assert anchored.checkpoint and anchored.checkpoint.checkpoint
    assert anchored.checkpoint.checkpoint.reason == "seal"


async def test_seals_are_ed25519_and_legacy_hmac_seals_still_verify(
    stack: Settings, app_pool: Any, keyring: Keyring, store: ObjectStore
) -> None:
    name = chain_name()
    await fill(AuditChain(app_pool, keyring, name), 2)
    archive = AuditArchive(stack, app_pool, keyring, store, name)
    [seg] = (await archive.seal()).segments
    signer = ArchiveSigner.from_keyring(keyring)
    assert seg.signing_key_id == signer.key_id
    parsed = _parse_segment(await archive._read(seg.object_key, seg.version_id))
    assert parsed.header["format"] == 2 and parsed.seal["alg"] == SIGNATURE_ALG
    assert archive._signature_problem(parsed.seal) is None
    assert "does not verify" in (
        archive._signature_problem({**parsed.seal, "signature": signer.sign(b"other")}) or ""
    )
    # A format-1 seal (HMAC with the audit key, no 'alg') verifies as before.
    kid, key = keyring.active("audit")
    digest = parsed.seal["body_sha256"]
    legacy = {"type": "seal", "body_sha256": digest, "signing_key_id": kid}
    assert archive._signature_problem({**legacy, "signature": seal_signature(key, digest)}) is None
    assert "does not verify" in (
        archive._signature_problem({**legacy, "signature": seal_signature(b"x" * 32, digest)}) or ""
    )


async def test_segments_are_split_by_size(
    stack: Settings, app_pool: Any, keyring: Keyring, store: ObjectStore
) -> None:
    name = chain_name()
    small = stack.model_copy(update={"archive_max_segment_entries": 2})
    await fill(AuditChain(app_pool, keyring, name), 5)
    archive = AuditArchive(small, app_pool, keyring, store, name)
    result = await archive.seal()
    assert [(s.first_seq, s.last_seq) for s in result.segments] == [(1, 2), (3, 4), (5, 5)]
    assert (await archive.verify_archive()).ok


async def test_locked_segment_cannot_be_deleted_or_replaced(
    stack: Settings, app_pool: Any, keyring: Keyring, store: ObjectStore
) -> None:
    name = chain_name()
    await fill(AuditChain(app_pool, keyring, name), 2)
    archive = AuditArchive(stack, app_pool, keyring, store, name)
    [seg] = (await archive.seal()).segments
    client = store.client
    with pytest.raises(ClientError) as refused:
        await client.delete_object(Bucket=seg.bucket, Key=seg.object_key, VersionId=seg.version_id)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError):
        await client.put_object_retention(
            Bucket=seg.bucket,
            Key=seg.object_key,
            VersionId=seg.version_id,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": seg.sealed_at},
        )
    # A write-once put onto the same key is refused.
    with pytest.raises(ClientError) as taken:
        await client.put_object(
            Bucket=seg.bucket, Key=seg.object_key, Body=b"forged", IfNoneMatch="*"
        )
    assert taken.value.response["Error"]["Code"] == "PreconditionFailed"
    # A plain overwrite only adds a version; the sealed version stays and still verifies.
    await client.put_object(Bucket=seg.bucket, Key=seg.object_key, Body=b"forged")
    assert (await archive.verify_archive()).ok
    assert seg.bucket == archive_bucket(stack)


async def test_tampered_database_entry_is_named(
    stack: Settings, app_pool: Any, admin_pool: Any, keyring: Keyring, store: ObjectStore
) -> None:
    name = chain_name()
    await fill(AuditChain(app_pool, keyring, name), 4)
    archive = AuditArchive(stack, app_pool, keyring, store, name)
    await archive.seal()
    async with admin_pool.acquire() as conn, conn.transaction():
        # An administrator bypassing the append-only trigger rewrites history.
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "UPDATE audit_log SET reason = 'rewritten' WHERE chain = $1 AND seq = 3", name
        )
    report = await archive.verify_archive()
    assert not report.ok and report.first_discrepancy is not None
    assert report.first_discrepancy.seq == 3
    assert "differs from the archive" in report.first_discrepancy.problem


async def test_removed_segment_row_breaks_continuity(
    stack: Settings, app_pool: Any, admin_pool: Any, keyring: Keyring, store: ObjectStore
) -> None:
    name = chain_name()
    small = stack.model_copy(update={"archive_max_segment_entries": 2})
    await fill(AuditChain(app_pool, keyring, name), 4)
    archive = AuditArchive(small, app_pool, keyring, store, name)
    await archive.seal()
    async with admin_pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "DELETE FROM audit_archive_segments WHERE chain = $1 AND segment_no = 1", name
        )
    report = await archive.verify_archive()
    assert not report.ok and report.first_discrepancy is not None
    assert report.first_discrepancy.segment_no == 2
    assert "starts at 3, expected 1" in report.first_discrepancy.problem


async def test_segment_table_is_append_only(
    stack: Settings, app_pool: Any, keyring: Keyring, store: ObjectStore
) -> None:
    import asyncpg

    name = chain_name()
    await fill(AuditChain(app_pool, keyring, name), 1)
    await AuditArchive(stack, app_pool, keyring, store, name).seal()
    async with app_pool.acquire() as conn:
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute(
                "UPDATE audit_archive_segments SET segment_sha256 = 'x' WHERE chain = $1", name
            )


async def test_seal_workflow_and_idempotent_schedules(
    stack: Settings, keyring: Keyring, app_pool: Any, temporal_client: Any
) -> None:
    from activities.deps import Deps
    from starters.archive_cli import (
        CHECKPOINT_SCHEDULE_ID,
        RETENTION_SCHEDULE_ID,
        SEAL_SCHEDULE_ID,
        ensure_schedules,
    )
    from workers.factory import build_worker
    from workers.governance_plan import governance_plan
    from workflows.governance import AuditSealInput, AuditSealWorkflow

    queue = f"test-governance-{uuid.uuid4()}"
    settings = stack.model_copy(update={"archive_task_queue": queue})
    deps = await Deps.open(settings, keyring)
    name = chain_name()
    await fill(AuditChain(app_pool, keyring, name), 3)
    try:
        plan = governance_plan(settings, deps)
        async with build_worker(temporal_client, settings, task_queue=queue, plan=plan[queue]):
            result = await temporal_client.execute_workflow(
                AuditSealWorkflow.run,
                AuditSealInput(chain=name),
                id=f"test-seal-{name}",
                task_queue=queue,
            )
            await fill(AuditChain(app_pool, keyring, name), 1)
            only = await temporal_client.execute_workflow(
                AuditSealWorkflow.run,
                AuditSealInput(chain=name, seal=False, verify=False),
                id=f"test-checkpoint-{name}",
                task_queue=queue,
            )
    finally:
        await deps.close()
    assert result.seal.entries == 3 and result.verified_segments == 1
    assert result.seal.checkpoint_seq == 4  # the 3 entries and the seal entry
    assert only.seal.segments == 0 and only.verified_segments is None
    assert only.seal.checkpoint_written and only.seal.checkpoint_seq == 5

    first = await ensure_schedules(temporal_client, settings)
    second = await ensure_schedules(temporal_client, settings)
    assert (
        set(first)
        == set(second)
        == {
            SEAL_SCHEDULE_ID,
            CHECKPOINT_SCHEDULE_ID,
            RETENTION_SCHEDULE_ID,
        }
    )
    assert set(second.values()) == {"updated"}
    desc = await temporal_client.get_schedule_handle(RETENTION_SCHEDULE_ID).describe()
    # The server stores cron expressions as calendar specs ("17 3 * * *": 03:17 UTC).
    [calendar] = desc.schedule.spec.calendars
    assert (calendar.hour[0].start, calendar.minute[0].start) == (3, 17)
    checkpoints = await temporal_client.get_schedule_handle(CHECKPOINT_SCHEDULE_ID).describe()
    [interval] = checkpoints.schedule.spec.intervals
    assert interval.every.total_seconds() == 60
    for schedule_id in first:  # leave the session's server without running schedules
        await temporal_client.get_schedule_handle(schedule_id).delete()


def test_cli_verifies_a_pdf_signature(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from starters.cli import app
    from tests.pdf_signing_kit import Kit, sign, unsigned_pdf, write_bundle

    kit = Kit.create()
    pdf = tmp_path / "signed.pdf"
    pdf.write_bytes(sign(unsigned_pdf(), kit.signer, kit.ca))
    bundle = write_bundle(tmp_path / "trust", kit.ca)
    runner = CliRunner()
    ok = runner.invoke(app, ["pdf", "verify-signature", str(pdf), "--trust", str(bundle)])
    assert ok.exit_code == 0, ok.output
    assert "VALID" in ok.output
    other = write_bundle(tmp_path / "other", kit.other_ca)
    bad = runner.invoke(app, ["pdf", "verify-signature", str(pdf), "--trust", str(other)])
    assert bad.exit_code == 2 and "UNTRUSTED" in bad.output
