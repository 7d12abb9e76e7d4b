"""Key escrow and crypto-shredding, retention policies, and retention runs on the real stack."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from clinflow.audit_chain import AuditChain
from clinflow.envelope import EnvelopeError, read_header
from clinflow.key_escrow import KeyDestroyed, KeyEscrow
from clinflow.keyring import Keyring
from clinflow.object_store import ObjectStore
from clinflow.retention import (
    Retention,
    RetentionPolicy,
    RetentionPolicyError,
    load_policies,
)
from clinflow.settings import Settings


def policy(period: str) -> RetentionPolicy:
    return RetentionPolicy.model_validate(
        {"name": "p", "applies_to": {"kind": "bucket", "bucket": "documents"}, "period": period}
    )


def test_cutoff_uses_calendar_arithmetic() -> None:
    leap = datetime(2028, 2, 29, 12, tzinfo=UTC)
    assert policy("6y").cutoff(leap) == datetime(2022, 2, 28, 12, tzinfo=UTC)
    assert policy("1m").cutoff(datetime(2026, 3, 31, tzinfo=UTC)) == datetime(
        2026, 2, 28, tzinfo=UTC
    )
    assert policy("90d").cutoff(leap) == leap - timedelta(days=90)
    assert policy("2w").cutoff(leap) == leap - timedelta(days=14)
    with pytest.raises(ValueError):
        policy("six years")


def test_packaged_policies_load() -> None:
    names = {p.name: p for p in load_policies()}
    assert names["clinical-records"].period == "6y"
    assert names["raw-logs"].period == "90d"
    assert names["quarantine-raw-records"].applies_to.table == "quarantine"
    assert names["dlq-payloads"].period == "2y"


def test_policy_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies: [{name: x, applies_to: {kind: table, table: 'a;drop'}}]")
    with pytest.raises(RetentionPolicyError):
        load_policies(bad)


# --------------------------------------------------------------------------- on the stack
pytestmark_stack = pytest.mark.stack


@pytest.fixture
async def escrow(app_pool: Any, keyring: Keyring) -> KeyEscrow:
    return KeyEscrow(app_pool, keyring)


@pytest.fixture
async def store(stack: Settings, keyring: Keyring, escrow: KeyEscrow) -> AsyncIterator[ObjectStore]:
    async with ObjectStore(stack, keyring, escrow=escrow) as s:
        yield s


@pytestmark_stack
async def test_shredded_object_is_unreadable_in_every_copy(
    stack: Settings, keyring: Keyring, store: ObjectStore, escrow: KeyEscrow, app_pool: Any
) -> None:
    bucket, key = stack.s3_bucket_documents, f"shred/{uuid.uuid4().hex}.pdf"
    stored = await store.put_bytes(bucket, key, b"%PDF-1.7 fictional document" * 100)
    assert stored.escrow_key_id is not None
    assert (await store.head(bucket, key)).escrow_key_id == stored.escrow_key_id
    # A copy of the ciphertext, as a backup or replica would hold it.
    resp = await store.client.get_object(Bucket=bucket, Key=key)
    async with resp["Body"] as body:
        backup = await body.read()
    header = read_header(backup)
    assert header is not None and header.escrow_key_id == stored.escrow_key_id
    assert stored.escrow_key_id.encode() in backup[:200]
    assert await escrow.decrypt(backup) == b"%PDF-1.7 fictional document" * 100
    assert await store.get_bytes(bucket, key) == b"%PDF-1.7 fictional document" * 100
    # Without the escrow the object does not open: the key is not in the object.
    no_escrow = stack.model_copy(update={"retention_key_escrow": False})
    async with ObjectStore(no_escrow, keyring) as plain_store:
        with pytest.raises(EnvelopeError) as unavailable:
            await plain_store.get_bytes(bucket, key)
    assert unavailable.value.code == "envelope_key_unavailable"

    record = await escrow.destroy(stored.escrow_key_id, actor="tester", reason="test shred")
    assert record.newly_destroyed and record.object_key == key
    again = await escrow.destroy(stored.escrow_key_id, actor="tester", reason="again")
    assert not again.newly_destroyed and again.destroyed_at == record.destroyed_at

    with pytest.raises(KeyDestroyed) as from_backup:
        await escrow.decrypt(backup)
    assert from_backup.value.code == "envelope_key_destroyed"
    assert "crypto-shredded" in from_backup.value.reason
    with pytest.raises(KeyDestroyed):
        await store.get_bytes(bucket, key)
    async with app_pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT wrapped_key, wrap_nonce FROM object_data_keys WHERE key_id = $1",
            stored.escrow_key_id,
        )
        assert row["wrapped_key"] is None and row["wrap_nonce"] is None
        with pytest.raises(asyncpg.PostgresError):  # a destroyed key stays destroyed
            await conn.execute(
                "UPDATE object_data_keys SET wrapped_key = '\\x00', wrap_nonce = '\\x00', "
                "destroyed_at = now() WHERE key_id = $1",
                stored.escrow_key_id,
            )
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute(
                "DELETE FROM object_data_keys WHERE key_id = $1", stored.escrow_key_id
            )


@pytestmark_stack
async def test_large_escrowed_object_streams(stack: Settings, store: ObjectStore) -> None:
    data = bytes(range(256)) * (6 * 1024 * 1024 // 256 + 7)  # multipart at 5 MiB parts
    stored = await store.put_bytes(stack.s3_bucket_batches, f"shred/{uuid.uuid4().hex}", data)
    assert stored.escrow_key_id and stored.size == len(data)
    assert await store.get_bytes(stack.s3_bucket_batches, stored.key) == data


def write_policies(path: Path, run: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "policies": [
                    {
                        "name": "old-docs",
                        "applies_to": {
                            "kind": "bucket",
                            "bucket": "documents",
                            "prefix": f"{run}/old/",
                        },
                        "period": "1d",
                    },
                    {
                        "name": "new-docs",
                        "applies_to": {
                            "kind": "bucket",
                            "bucket": "documents",
                            "prefix": f"{run}/new/",
                        },
                        "period": "10y",
                    },
                    {
                        "name": "quarantine-rows",
                        "applies_to": {
                            "kind": "table",
                            "table": "quarantine",
                            "id_column": "quarantine_id",
                            "time_column": "created_at",
                            "object_ref_column": "raw_object_ref",
                        },
                        "period": "1y",
                    },
                ]
            }
        )
    )
    return path


async def add_quarantine_row(pool: Any, run: str, created_at: datetime, ref: str | None) -> int:
    async with pool.acquire() as conn:
        value: int = await conn.fetchval(
            """INSERT INTO quarantine (batch_id, source_system, source_uri, byte_offset,
                   reason_code, message, raw_object_ref, created_at)
               VALUES ($1, 'test', 'file:///fictional.ndjson', $2, 'TEST', 'fictional', $3, $4)
               RETURNING quarantine_id""",
            run,
            int(created_at.timestamp()),
            ref,
            created_at,
        )
    return value


@pytestmark_stack
async def test_retention_purges_what_is_due_and_nothing_else(
    stack: Settings,
    tmp_path: Path,
    keyring: Keyring,
    store: ObjectStore,
    escrow: KeyEscrow,
    app_pool: Any,
) -> None:
    run = f"ret-{uuid.uuid4().hex[:8]}"
    docs, quarantine = stack.s3_bucket_documents, stack.s3_bucket_quarantine
    real_now = datetime.now(UTC)
    old_a = await store.put_bytes(docs, f"{run}/old/a.pdf", b"fictional a")
    no_escrow = stack.model_copy(update={"retention_key_escrow": False})
    async with ObjectStore(no_escrow, keyring) as legacy:  # written before escrow: envelope v1
        old_b = await legacy.put_bytes(docs, f"{run}/old/b.pdf", b"fictional b")
    new_c = await store.put_bytes(docs, f"{run}/new/c.pdf", b"fictional c")
    other = await store.put_bytes(docs, f"{run}/untracked/d.pdf", b"fictional d")
    q_obj = await store.put_bytes(quarantine, f"{run}/raw-1", b"fictional raw record")
    due_row = await add_quarantine_row(
        app_pool, run, real_now - timedelta(days=400), f"s3://{quarantine}/{q_obj.key}"
    )
    kept_row = await add_quarantine_row(app_pool, run, real_now - timedelta(days=300), None)

    audit = AuditChain(app_pool, keyring)
    retention = Retention(
        stack.model_copy(
            update={"retention_policies_file": write_policies(tmp_path / "p.yaml", run)}
        ),
        app_pool,
        store,
        escrow,
        audit,
    )
    now = real_now + timedelta(days=2)

    plan = await retention.plan(now)
    mine = {i.ref for i in plan.items if run in i.ref or i.ref == f"table:quarantine/{due_row}"}
    assert mine == {
        f"s3://{docs}/{old_a.key}",
        f"s3://{docs}/{old_b.key}",
        f"table:quarantine/{due_row}",
    }
    dry = await retention.run(now, dry_run=True)
    assert dry.dry_run and dry.purged == []
    assert await store.exists(docs, old_a.key) and await store.exists(docs, old_b.key)

    result = await retention.run(now)
    by_ref = {p.ref: p for p in result.purged}
    assert by_ref[f"s3://{docs}/{old_a.key}"].crypto_shredded
    assert by_ref[f"s3://{docs}/{old_a.key}"].destroyed_key_ids == [old_a.escrow_key_id]
    assert not by_ref[f"s3://{docs}/{old_b.key}"].crypto_shredded
    row_record = by_ref[f"table:quarantine/{due_row}"]
    assert row_record.destroyed_key_ids == [q_obj.escrow_key_id]

    for gone in (old_a.key, old_b.key):
        assert not await store.exists(docs, gone)
    assert not await store.exists(quarantine, q_obj.key)
    for kept in (new_c.key, other.key):
        assert await store.exists(docs, kept)
    async with app_pool.acquire() as conn:
        ids = {
            r["quarantine_id"]
            for r in await conn.fetch(
                "SELECT quarantine_id FROM quarantine WHERE batch_id = $1", run
            )
        }
    assert ids == {kept_row}
    with pytest.raises(KeyDestroyed):
        await escrow.data_key(q_obj.escrow_key_id or "")
    assert await escrow.data_key(new_c.escrow_key_id or "")  # untouched keys still open

    # The deletion record: what, which key, digest, policy.
    entries = {
        e["subject_ref"]: e for e in await audit.entries() if e["action"] == "retention.purged"
    }
    rec = entries[f"s3://{docs}/{old_a.key}"]
    assert rec["payload_sha256"] == old_a.sha256
    assert rec["details"]["policy"] == "old-docs"
    assert rec["details"]["destroyed_key_ids"] == [old_a.escrow_key_id]
    assert entries[f"table:quarantine/{due_row}"]["details"]["policy"] == "quarantine-rows"
    assert (await audit.verify()).ok

    # A second run finds nothing more of ours and writes nothing twice.
    again = await retention.run(now)
    assert not any(run in p.ref or p.ref == f"table:quarantine/{due_row}" for p in again.purged)


def test_policies_may_not_target_the_archive(stack_free_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "policies": [
                    {
                        "name": "x",
                        "applies_to": {"kind": "bucket", "bucket": "audit"},
                        "period": "1d",
                    }
                ]
            }
        )
    )
    with pytest.raises(RetentionPolicyError):
        Retention(stack_free_settings, None, None, None, None, load_policies(path))  # type: ignore[arg-type]


@pytest.fixture
def stack_free_settings() -> Settings:
    return Settings()


@pytestmark_stack
async def test_retention_workflow_dry_run(
    stack: Settings, keyring: Keyring, temporal_client: Any, tmp_path: Path
) -> None:
    from activities.deps import Deps
    from workers.factory import build_worker
    from workers.governance_plan import governance_plan
    from workflows.governance import RetentionInput, RetentionWorkflow

    run = f"wf-{uuid.uuid4().hex[:8]}"
    queue = f"test-retention-{uuid.uuid4()}"
    settings = stack.model_copy(
        update={
            "archive_task_queue": queue,
            "retention_policies_file": write_policies(tmp_path / "p.yaml", run),
        }
    )
    deps = await Deps.open(settings, keyring)
    try:
        await deps.store.put_bytes(settings.s3_bucket_documents, f"{run}/old/x", b"fictional")
        plan = governance_plan(settings, deps)
        async with build_worker(temporal_client, settings, task_queue=queue, plan=plan[queue]):
            summary = await temporal_client.execute_workflow(
                RetentionWorkflow.run,
                RetentionInput(dry_run=True, now=datetime.now(UTC) + timedelta(days=2)),
                id=f"test-retention-{run}",
                task_queue=queue,
            )
        assert summary.dry_run and summary.purged == 0
        assert summary.per_policy.get("old-docs") == 1
        assert await deps.store.exists(settings.s3_bucket_documents, f"{run}/old/x")
    finally:
        await deps.close()
