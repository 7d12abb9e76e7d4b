"""The audit chain on the real PostgreSQL: append-only, tamper-evident, fork-free."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from typer.testing import CliRunner

from clinflow.audit_chain import AuditChain, AuditEntry
from clinflow.keyring import Keyring
from clinflow.settings import Settings

pytestmark = pytest.mark.stack


def _entry(i: int, **kw: object) -> AuditEntry:
    return AuditEntry(
        actor="svc:test",
        action="document.stored",
        location="test-host",
        reason=f"step {i}",
        subject_ref=f"doc-{i}",
        payload_sha256="ab" * 32,
        details={"i": i, "nested": {"ok": True}},
        **kw,  # type: ignore[arg-type]
    )


async def test_append_verify_and_idempotent_entry_id(
    app_pool: asyncpg.Pool, keyring: Keyring
) -> None:
    chain = AuditChain(app_pool, keyring, chain=f"t-{uuid.uuid4()}")
    first = await chain.append(_entry(1, entry_id="fixed-id"))
    again = await chain.append(_entry(1, entry_id="fixed-id"))
    assert first.created and not again.created
    assert again.seq == first.seq == 1
    await chain.append(_entry(2))
    report = await chain.verify()
    assert report.ok and report.entries == 2


async def test_concurrent_appenders_never_fork(app_pool: asyncpg.Pool, keyring: Keyring) -> None:
    chain = AuditChain(app_pool, keyring, chain=f"t-{uuid.uuid4()}")
    records = await asyncio.gather(*(chain.append(_entry(i)) for i in range(40)))
    assert sorted(r.seq for r in records) == list(range(1, 41))
    report = await chain.verify()
    assert report.ok and report.entries == 40


async def test_application_role_cannot_update_or_delete(
    app_pool: asyncpg.Pool, keyring: Keyring
) -> None:
    chain = AuditChain(app_pool, keyring, chain=f"t-{uuid.uuid4()}")
    await chain.append(_entry(1))
    async with app_pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "UPDATE audit_log SET actor = 'mallory' WHERE chain = $1", chain.chain
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM audit_log WHERE chain = $1", chain.chain)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("TRUNCATE audit_log")


async def test_owner_is_refused_too(
    admin_pool: asyncpg.Pool, app_pool: asyncpg.Pool, keyring: Keyring
) -> None:
    chain = AuditChain(app_pool, keyring, chain=f"t-{uuid.uuid4()}")
    await chain.append(_entry(1))
    async with admin_pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("UPDATE audit_log SET actor = 'x' WHERE chain = $1", chain.chain)


async def _bypass(admin_pool: asyncpg.Pool, sql: str, *args: object) -> None:
    """Change audit rows as the superuser with the guard triggers switched off."""
    async with admin_pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        for statement in sql.split(";"):
            await conn.execute(statement, *args)


@pytest.mark.parametrize(
    ("tamper", "expected_seq", "problem"),
    [
        ("UPDATE audit_log SET reason = 'edited' WHERE chain = $1 AND seq = 3", 3, "altered"),
        ("UPDATE audit_log SET details = '{\"i\": 99}' WHERE chain = $1 AND seq = 2", 2, "altered"),
        ("DELETE FROM audit_log WHERE chain = $1 AND seq = 4", 4, "missing"),
        ("DELETE FROM audit_log WHERE chain = $1 AND seq = 5", 5, "removed from the end"),
        (
            "UPDATE audit_log SET seq = -2 WHERE chain = $1 AND seq = 2;"
            "UPDATE audit_log SET seq = 2 WHERE chain = $1 AND seq = 3;"
            "UPDATE audit_log SET seq = 3 WHERE chain = $1 AND seq = -2",
            2,
            "does not follow",
        ),
    ],
)
async def test_verify_names_the_first_tampered_entry(
    admin_pool: asyncpg.Pool,
    app_pool: asyncpg.Pool,
    keyring: Keyring,
    tamper: str,
    expected_seq: int,
    problem: str,
) -> None:
    chain = AuditChain(app_pool, keyring, chain=f"t-{uuid.uuid4()}")
    for i in range(1, 6):
        await chain.append(_entry(i))
    assert (await chain.verify()).ok
    await _bypass(admin_pool, tamper, chain.chain)
    report = await chain.verify()
    assert not report.ok
    assert report.first_break is not None
    assert report.first_break.seq == expected_seq
    assert problem in report.first_break.problem


async def test_rotated_audit_key_still_verifies(app_pool: asyncpg.Pool, keyring: Keyring) -> None:
    ring = Keyring.from_json(keyring.to_json())
    chain = AuditChain(app_pool, ring, chain=f"t-{uuid.uuid4()}")
    await chain.append(_entry(1))
    ring.rotate("audit")
    await chain.append(_entry(2))
    assert (await chain.verify()).ok
    stale = AuditChain(app_pool, keyring, chain=chain.chain)
    report = await stale.verify()
    assert not report.ok and "unknown key" in (
        report.first_break.problem if report.first_break else ""
    )


def test_cli_audit_verify_names_the_row(stack: Settings, keyring: Keyring) -> None:
    from starters.cli import app

    chain_name = f"cli-{uuid.uuid4()}"

    async def build_and_tamper() -> None:
        pool = await asyncpg.create_pool(stack.app_dsn())
        admin = await asyncpg.create_pool(stack.admin_dsn())
        try:
            chain = AuditChain(pool, keyring, chain=chain_name)
            for i in range(1, 4):
                await chain.append(_entry(i))
            await _bypass(
                admin,
                "UPDATE audit_log SET actor = 'mallory' WHERE chain = $1 AND seq = 2",
                chain_name,
            )
        finally:
            await pool.close()
            await admin.close()

    runner = CliRunner()
    assert runner.invoke(app, ["audit", "verify", "--chain", chain_name]).exit_code == 0
    asyncio.run(build_and_tamper())
    result = runner.invoke(app, ["audit", "verify", "--chain", chain_name])
    assert result.exit_code == 2
    assert "entry 2" in result.output and "altered" in result.output


async def test_a_trusted_head_exposes_a_truncated_tail(
    admin_pool: asyncpg.Pool, app_pool: asyncpg.Pool, keyring: Keyring
) -> None:
    from datetime import UTC, datetime

    from clinflow.audit_chain import TrustedHead

    chain = AuditChain(app_pool, keyring, chain=f"t-{uuid.uuid4()}")
    records = [await chain.append(_entry(i)) for i in range(1, 6)]
    witnessed = TrustedHead(
        seq=5, entry_id=records[-1].entry_id, mac=records[-1].mac, at=datetime.now(UTC)
    )
    assert (await chain.verify(witnessed)).ok
    assert (await chain.verify_since(witnessed.model_copy(update={"seq": 3}))).ok is False
    since = TrustedHead(seq=3, entry_id=records[2].entry_id, mac=records[2].mac, at=witnessed.at)
    assert (await chain.verify_since(since)).ok
    await _bypass(
        admin_pool,
        "DELETE FROM audit_log WHERE chain = $1 AND seq > 3;"
        "UPDATE audit_chain_head h SET seq = l.seq, mac = l.mac FROM audit_log l "
        "WHERE h.chain = $1 AND l.chain = $1 AND l.seq = 3",
        chain.chain,
    )
    assert (await chain.verify()).ok  # the database alone cannot tell
    report = await chain.verify(witnessed)
    brk = report.first_break
    assert brk is not None and brk.kind == "truncated"
    assert (brk.last_trusted_seq, brk.last_trusted_entry_id) == (3, records[2].entry_id)
    assert brk.missing_range == "seq 4..5"
    assert not (await chain.verify_since(witnessed)).ok


async def test_a_removed_head_row_is_a_reset_head(
    admin_pool: asyncpg.Pool, app_pool: asyncpg.Pool, keyring: Keyring
) -> None:
    chain = AuditChain(app_pool, keyring, chain=f"t-{uuid.uuid4()}")
    await chain.append(_entry(1))
    await _bypass(admin_pool, "DELETE FROM audit_chain_head WHERE chain = $1", chain.chain)
    report = await chain.verify()
    assert report.first_break is not None and report.first_break.kind == "head_missing"
