"""Reviewer decisions as 21 CFR Part 11 electronic signatures, on the real stack.

``clinflow packets approve --key`` signs the decision locally (Ed25519, the reviewer's
registered key) over the packet's record hash; the workflow's verify activity checks token
and signature; the audit entry carries the signed decision and the record hash, so
``clinflow audit verify-signatures`` re-verifies it, and a decision altered in the database
afterwards fails that check. A decision signed for another record is refused and audited.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client
from typer.testing import CliRunner

from activities.packets_models import PacketStatusName
from clinflow.auth import issue_token
from clinflow.esign import (
    SIGNED_DECISION_DETAIL,
    generate_private_key,
    load_private_key,
    register_reviewer_key,
    verify_audit_signatures,
    write_key_pair,
)
from clinflow.keyring import Keyring
from clinflow.packets.sample_data import DemoPacket, generate_demo_packets
from clinflow.settings import Settings
from starters.cli import app
from tests.test_packets_support import PacketEnv, Reviewer, packet_workers
from workflows.packets import SitePacketWorkflow

pytestmark = pytest.mark.stack
S = PacketStatusName


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPacket:
    (packet,) = generate_demo_packets(tmp_path_factory.mktemp("esign"), only=["us-103-expired-irb"])
    return packet


@pytest.fixture(scope="module")
async def env(
    stack: Settings, keyring: Keyring, temporal_client: Client
) -> AsyncIterator[PacketEnv]:
    async with packet_workers(stack, keyring, temporal_client) as e:
        yield e


async def _bypass(admin_pool: asyncpg.Pool, sql: str, *args: object) -> None:
    """Change an audit row as the superuser with the guard triggers switched off."""
    async with admin_pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(sql, *args)


async def test_cli_signed_approval_is_verified_audited_and_tamper_evident(
    env: PacketEnv,
    demo: DemoPacket,
    app_pool: asyncpg.Pool,
    admin_pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    user = f"ra.sign-{tmp_path.name[-8:]}"
    key_file = tmp_path / "reviewer.pem"
    write_key_pair(generate_private_key(), key_file)
    await register_reviewer_key(
        app_pool, user, load_private_key(key_file).public_key(), registered_by="test"
    )
    inp = await env.make_input(Path(demo.path))
    handle = await env.start(inp)
    blocked = await env.wait_status(handle, {S.BLOCKED})
    assert len(blocked.record_sha256) == 64
    token = issue_token(env.keyring, user, "regulatory_affairs", timedelta(minutes=10))
    args = ["packets", "approve", handle.id, "--reason", "IRB renewal on file", "--token", token]
    args += ["--key", str(key_file), "--name", "Morgan Fictional"]
    result = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert result.exit_code == 0, result.output
    assert "Morgan Fictional" in result.output
    final = await handle.result()
    assert final.status is S.APPROVED
    assert final.reviews[-1].signature and "Morgan Fictional" in final.reviews[-1].signature

    async with app_pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT seq, entry_id, payload_sha256, details FROM audit_log "
            "WHERE subject_ref = $1 AND action = 'packet.review.approved'",
            inp.packet_id,
        )
    assert row["payload_sha256"] == blocked.record_sha256
    details = json.loads(row["details"])
    signed = details[SIGNED_DECISION_DETAIL]
    assert signed["decision"]["printed_name"] == "Morgan Fictional"
    assert signed["decision"]["meaning"] == "approval"
    assert signed["decision"]["record_sha256"] == blocked.record_sha256

    def check_of(report_items: list) -> object:  # type: ignore[type-arg]
        return next(i for i in report_items if i.entry_id == row["entry_id"])

    clean = await verify_audit_signatures(app_pool)
    assert check_of(clean.items).ok  # type: ignore[attr-defined]

    # An administrator edits the signed reason in the database: the signature check fails.
    tampered = json.loads(row["details"])
    tampered[SIGNED_DECISION_DETAIL]["decision"]["reason"] = "approved without conditions"
    update = "UPDATE audit_log SET details = $2::jsonb WHERE seq = $1"
    await _bypass(admin_pool, update, row["seq"], json.dumps(tampered))
    try:
        broken = check_of((await verify_audit_signatures(app_pool)).items)
        assert not broken.ok  # type: ignore[attr-defined]
        assert broken.code == "esign_bad_signature"  # type: ignore[attr-defined]
        # ... and so does the operator's one command: 'clinflow audit verify' exits 2.
        verified = await asyncio.to_thread(CliRunner().invoke, app, ["audit", "verify"])
        assert verified.exit_code == 2, verified.output
    finally:
        await _bypass(admin_pool, update, row["seq"], row["details"])
    assert check_of((await verify_audit_signatures(app_pool)).items).ok  # type: ignore[attr-defined]


async def test_decision_signed_for_another_record_is_refused_and_audited(
    env: PacketEnv, demo: DemoPacket, app_pool: asyncpg.Pool, keyring: Keyring
) -> None:
    reviewer = await Reviewer.register(app_pool, keyring, "ra.other", "Ari Fictional")
    inp = await env.make_input(Path(demo.path))
    handle = await env.start(inp)
    blocked = await env.wait_status(handle, {S.BLOCKED})
    wrong = reviewer.review(
        blocked, "APPROVE", "looks fine", record_sha256="0" * 64, with_update=True
    )
    outcome = await handle.execute_update(SitePacketWorkflow.review, wrong)
    assert not outcome.accepted and outcome.code == "esign_record_mismatch"
    # Signed with a key that is not registered: refused as well.
    stranger = Reviewer("ra.other", "Ari Fictional", generate_private_key(), keyring)
    outcome = await handle.execute_update(
        SitePacketWorkflow.review,
        stranger.review(blocked, "APPROVE", "looks fine", with_update=True),
    )
    assert not outcome.accepted and outcome.code == "esign_unknown_key"
    assert (await handle.query(SitePacketWorkflow.status)).status is S.BLOCKED
    async with app_pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT action, details FROM audit_log WHERE subject_ref = $1 "
            "AND action LIKE 'packet.review.%' ORDER BY seq",
            inp.packet_id,
        )
    assert [r["action"] for r in rows] == ["packet.review.refused"] * 2
    codes = [json.loads(r["details"])["refusal_code"] for r in rows]
    assert codes == ["esign_record_mismatch", "esign_unknown_key"]
    # A correctly signed rejection then closes the packet.
    await handle.signal(SitePacketWorkflow.reject, reviewer.review(blocked, "REJECT", "IRB lapsed"))
    assert (await handle.result()).status is S.REJECTED
