"""Audit access segmented by business role, enforced by PostgreSQL itself (SET ROLE)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from clinflow.audit_chain import AuditChain, AuditEntry
from clinflow.keyring import Keyring

pytestmark = pytest.mark.stack

# action -> expected category
EVENTS: dict[str, str] = {
    "worker.started": "operational",
    "retention.run.completed": "operational",
    "packet.review.approved": "compliance",
    "retention.purge.completed": "compliance",
    "auth.decision.refused": "compliance",
    "fhir.batch.loaded": "data",
    "packet.parsed": "data",
    "something.unclassified": "data",
}

VISIBLE: dict[str, set[str]] = {
    "clinflow_qa": {"operational", "compliance", "data"},
    "clinflow_regulatory_affairs": {"compliance"},
    "clinflow_clinical_ops": {"data", "operational"},
    "clinflow_devops": {"operational"},
}


@pytest.fixture(scope="module")
async def seeded(app_pool: asyncpg.Pool, keyring: Keyring) -> str:
    chain = f"rbac-{uuid.uuid4().hex[:8]}"
    audit = AuditChain(app_pool, keyring, chain)
    for action in EVENTS:
        await audit.append(
            AuditEntry(
                actor="svc",
                action=action,
                subject_ref="doc-ref-1",
                reason="seeded for the access test",
                details={"content": f"secret detail of {action}"},
            )
        )
    return chain


async def _as(admin_pool: asyncpg.Pool, role: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with admin_pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {role}")
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows


async def test_action_categories_are_data(admin_pool: asyncpg.Pool) -> None:
    async with admin_pool.acquire() as conn:
        for action, category in EVENTS.items():
            got = await conn.fetchval("SELECT audit_action_category($1)", action)
            assert got == category, action


@pytest.mark.parametrize("role", sorted(VISIBLE))
async def test_each_role_sees_only_its_categories(
    admin_pool: asyncpg.Pool, seeded: str, role: str
) -> None:
    rows = await _as(
        admin_pool,
        role,
        "SELECT action, category FROM audit_events WHERE chain = $1",
        seeded,
    )
    seen = {r["action"] for r in rows}
    expected = {a for a, c in EVENTS.items() if c in VISIBLE[role]}
    assert seen == expected
    assert {r["category"] for r in rows} <= VISIBLE[role]


@pytest.mark.parametrize(
    "role", ["clinflow_qa", "clinflow_regulatory_affairs", "clinflow_clinical_ops"]
)
async def test_detail_roles_read_details_of_what_they_see(
    admin_pool: asyncpg.Pool, seeded: str, role: str
) -> None:
    rows = await _as(
        admin_pool, role, "SELECT action, details FROM audit_log WHERE chain = $1", seeded
    )
    assert rows, "each of these roles sees some of the seeded events"
    assert all("secret detail" in r["details"] for r in rows)
    detailed = await _as(
        admin_pool,
        role,
        "SELECT count(*) AS n FROM audit_events_detailed WHERE chain = $1",
        seeded,
    )
    assert detailed[0]["n"] == len(rows)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT details FROM audit_log WHERE chain = $1",
        "SELECT reason FROM audit_log WHERE chain = $1",
        "SELECT * FROM audit_log WHERE chain = $1",
        "SELECT details FROM audit_events_detailed WHERE chain = $1",
    ],
)
async def test_devops_never_reads_details(admin_pool: asyncpg.Pool, seeded: str, sql: str) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await _as(admin_pool, "clinflow_devops", sql, seeded)


async def test_devops_reads_operational_metadata_from_the_table(
    admin_pool: asyncpg.Pool, seeded: str
) -> None:
    rows = await _as(
        admin_pool,
        "clinflow_devops",
        "SELECT action, actor, occurred_at FROM audit_log WHERE chain = $1",
        seeded,
    )
    assert {r["action"] for r in rows} == {"worker.started", "retention.run.completed"}


@pytest.mark.parametrize("role", [*sorted(VISIBLE), "clinflow_app"])
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_log SET actor = 'someone-else' WHERE chain = $1",
        "DELETE FROM audit_log WHERE chain = $1",
    ],
)
async def test_no_role_changes_history(
    admin_pool: asyncpg.Pool, seeded: str, role: str, sql: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with admin_pool.acquire() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {role}")
            await conn.execute(sql, seeded)


@pytest.mark.parametrize("role", sorted(VISIBLE))
async def test_business_roles_cannot_append_or_reclassify(
    admin_pool: asyncpg.Pool, role: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with admin_pool.acquire() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {role}")
            await conn.execute(
                "UPDATE audit_action_categories SET category = 'operational' "
                "WHERE prefix = 'packet.review.'"
            )
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with admin_pool.acquire() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {role}")
            await conn.execute(
                "INSERT INTO audit_log (chain, seq, entry_id, occurred_at, actor, action, "
                "location, key_id, prev_mac, mac) VALUES ('x', 1, 'e', now(), 'a', 'b', 'c', "
                "'k', '\\x00', '\\x00')"
            )


async def test_app_role_still_sees_and_verifies_the_whole_chain(
    app_pool: asyncpg.Pool, keyring: Keyring, seeded: str
) -> None:
    report = await AuditChain(app_pool, keyring, seeded).verify()
    assert report.ok, report.first_break
    assert report.entries == len(EVENTS)


async def test_reviewer_keys_are_not_for_everyone(admin_pool: asyncpg.Pool) -> None:
    for role in ("clinflow_qa", "clinflow_regulatory_affairs"):
        await _as(admin_pool, role, "SELECT key_id FROM reviewer_keys LIMIT 1")
    for role in ("clinflow_devops", "clinflow_clinical_ops"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _as(admin_pool, role, "SELECT key_id FROM reviewer_keys LIMIT 1")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with admin_pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL ROLE clinflow_app")
            await conn.execute("DELETE FROM reviewer_keys")
