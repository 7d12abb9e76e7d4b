"""SitePacketWorkflow on the real stack: every branch of the decision tree.

Workers run in-process on fresh task queues; documents are the generated demo packets,
submitted under unique site ids so no two tests share a workflow.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from activities.packets_models import AddDocumentsInput, PacketStatusName, ReviewInput
from clinflow.auth import issue_token
from clinflow.keyring import Keyring
from clinflow.packets.manifest import manifest_for
from clinflow.packets.sample_data import DemoPacket, generate_demo_packets
from clinflow.settings import Settings
from clinflow.stack import find_binary
from tests.test_packets_support import PacketEnv, Reviewer, packet_workers
from workflows.packets import SitePacketWorkflow

pytestmark = pytest.mark.stack

NAMES = [
    "us-101-complete",
    "us-102-warnings",
    "us-103-expired-irb",
    "us-104-missing-1572",
    "us-106-truncated",
]
S = PacketStatusName


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DemoPacket]:
    packets = generate_demo_packets(tmp_path_factory.mktemp("packets"), only=NAMES)
    return {p.name: p for p in packets}


@pytest.fixture(scope="module")
async def env(
    stack: Settings, keyring: Keyring, temporal_client: Client
) -> AsyncIterator[PacketEnv]:
    async with packet_workers(stack, keyring, temporal_client) as e:
        yield e


def folder(demo: dict[str, DemoPacket], name: str) -> Path:
    return Path(demo[name].path)


@pytest.fixture(scope="module")
async def kim(app_pool: object, keyring: Keyring) -> Reviewer:
    return await Reviewer.register(app_pool, keyring, "ra.kim", "Dana Kim")  # type: ignore[arg-type]


def token(env: PacketEnv, user: str, role: str = "regulatory_affairs") -> str:
    return issue_token(env.keyring, user, role, timedelta(minutes=10))


async def audit_actions(pool: object, packet_id: str) -> list[str]:
    async with pool.acquire() as conn:  # type: ignore[attr-defined]
        rows = await conn.fetch(
            "SELECT action FROM audit_log WHERE subject_ref = $1 OR entry_id LIKE $2 ORDER BY seq",
            packet_id,
            f"{packet_id}:%",
        )
    return [r["action"] for r in rows]


async def test_complete_packet_is_validated_and_duplicate_returns_same_run(
    env: PacketEnv, demo: dict[str, DemoPacket], app_pool: object
) -> None:
    inp = await env.make_input(folder(demo, "us-101-complete"))
    handle = await env.start(inp)
    again = await env.start(inp)
    result = await handle.result()
    assert result.status is S.VALIDATED, result.reasons
    assert again.id == handle.id
    assert (await again.describe()).run_id == (await handle.describe()).run_id
    # A finished packet is never run again under its id (reuse policy REJECT_DUPLICATE).
    third = await env.start(inp)
    assert (await third.describe()).run_id == (await handle.describe()).run_id
    async with app_pool.acquire() as conn:  # type: ignore[attr-defined]
        row = await conn.fetchrow(
            "SELECT status, outcome FROM packets WHERE packet_id = $1", inp.packet_id
        )
        validations = await conn.fetchval(
            "SELECT count(*) FROM packet_validations WHERE packet_id = $1 AND stage = 'structural'",
            inp.packet_id,
        )
    assert (row["status"], row["outcome"]) == ("VALIDATED", "VALIDATED")
    assert validations == len(inp.documents)
    actions = await audit_actions(app_pool, inp.packet_id)
    assert actions[0] == "packet.received"
    assert actions.count("packet.document.validated") == len(inp.documents)
    assert actions[-1] == "packet.validated"


async def test_warnings_are_recorded_not_blocking(
    env: PacketEnv, demo: dict[str, DemoPacket]
) -> None:
    inp = await env.make_input(folder(demo, "us-102-warnings"))
    result = await (await env.start(inp)).result()
    assert result.status is S.VALIDATED_WITH_WARNINGS
    codes = {f.code for f in result.findings} | {w.code for w in result.gaps.warnings}
    assert {"DUPLICATE_DOCUMENT", "DOC_TYPE_UNKNOWN", "GAP_RECOMMENDED_MISSING"} <= codes


async def test_truncated_pdf_is_dead_lettered_with_context(
    env: PacketEnv, demo: dict[str, DemoPacket], app_pool: object
) -> None:
    inp = await env.make_input(folder(demo, "us-106-truncated"))
    result = await (await env.start(inp)).result()
    assert result.status is S.DEAD_LETTERED
    assert "PDF_TRUNCATED" in result.reasons
    assert len(result.dlq_ids) == 1
    async with app_pool.acquire() as conn:  # type: ignore[attr-defined]
        row = await conn.fetchrow("SELECT * FROM dlq WHERE dlq_id = $1::uuid", result.dlq_ids[0])
    assert row["category"] == "FATAL_SCHEMA_MISMATCH"
    assert row["s3_key"] and row["document_key"]
    attempts = json.loads(row["attempts"])
    assert attempts[0]["activity"] == "packets.analyse" and len(attempts) == 1  # no retries
    assert await env.store.exists(row["s3_bucket"], row["s3_key"])
    assert await env.store.exists(env.settings.s3_bucket_dlq, f"packets/dlq/{row['dlq_id']}.json")


async def test_blocked_packet_approved_by_regulatory_affairs_after_refusals(
    env: PacketEnv,
    demo: dict[str, DemoPacket],
    app_pool: object,
    temporal_client: Client,
    kim: Reviewer,
) -> None:
    inp = await env.make_input(folder(demo, "us-103-expired-irb"))
    handle = await env.start(inp)
    blocked = await env.wait_status(handle, {S.BLOCKED})
    assert "IRB_APPROVAL_EXPIRED" in blocked.reasons
    # Visible to ops through the search attribute.
    query = f"WorkflowId = '{handle.id}' AND ClinflowStatus = 'BLOCKED'"
    for _ in range(50):
        found = [w.id async for w in temporal_client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.2)
    assert found == [handle.id]
    # A wrong role, a forged token and a mismatched reviewer are refused, audited, ignored.
    qa = ReviewInput(
        reviewer_id="qa.lee", role="qa", reason="looks fine", token=token(env, "qa.lee", "qa")
    )
    await handle.signal(SitePacketWorkflow.approve, qa)
    forged = token(env, "ra.kim")[:-4] + "AAAA"
    with_forged = ReviewInput(reviewer_id="ra.kim", reason="ok", token=forged, decision="APPROVE")
    outcome = await handle.execute_update(SitePacketWorkflow.review, with_forged)
    assert not outcome.accepted and outcome.code == "TOKEN_INVALID"
    # A valid token without an electronic signature is refused too.
    unsigned = ReviewInput(
        reviewer_id="ra.kim", reason="ok", token=token(env, "ra.kim"), decision="APPROVE"
    )
    outcome = await handle.execute_update(SitePacketWorkflow.review, unsigned)
    assert not outcome.accepted and outcome.code == "ESIGN_MISSING"
    # The signal's check runs concurrently with the updates': wait for all three, any order.
    for _ in range(100):
        state = await handle.query(SitePacketWorkflow.status)
        if len(state.reviews) == 3:
            break
        await asyncio.sleep(0.1)
    assert state.status is S.BLOCKED
    assert [r.accepted for r in state.reviews] == [False, False, False]
    assert sorted(r.code or "" for r in state.reviews) == [
        "ESIGN_MISSING",
        "ROLE_FORBIDDEN",
        "TOKEN_INVALID",
    ]
    # Regulatory Affairs approves synchronously, signed over the packet's record hash.
    ok = kim.review(
        state,
        "APPROVE",
        "IRB renewal confirmed by phone; renewal letter to follow",
        with_update=True,
    )
    outcome = await handle.execute_update(SitePacketWorkflow.review, ok)
    assert outcome.accepted
    result = await handle.result()
    assert result.status is S.APPROVED
    actions = await audit_actions(app_pool, inp.packet_id)
    assert actions.count("packet.review.refused") == 3
    assert result.reviews[-1].signature and "Dana Kim" in result.reviews[-1].signature
    assert "packet.review.approved" in actions and actions[-1] == "packet.approved"
    async with app_pool.acquire() as conn:  # type: ignore[attr-defined]
        review = await conn.fetchrow(
            "SELECT reviewer_id, reviewer_role, decision, blocking_codes FROM packet_reviews "
            "WHERE packet_id = $1",
            inp.packet_id,
        )
    assert review["reviewer_id"] == "ra.kim" and review["decision"] == "APPROVE"
    assert "IRB_APPROVAL_EXPIRED" in review["blocking_codes"]
    # Nothing to review any more: the packet is closed, the update is refused.
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):
        await handle.execute_update(SitePacketWorkflow.review, ok)


async def test_blocked_packet_rejected(
    env: PacketEnv, demo: dict[str, DemoPacket], app_pool: object
) -> None:
    ode = await Reviewer.register(app_pool, env.keyring, "ra.ode", "Sam Ode")  # type: ignore[arg-type]
    inp = await env.make_input(folder(demo, "us-103-expired-irb"))
    handle = await env.start(inp)
    blocked = await env.wait_status(handle, {S.BLOCKED})
    await handle.signal(SitePacketWorkflow.reject, ode.review(blocked, "REJECT", "IRB lapsed"))
    result = await handle.result()
    assert result.status is S.REJECTED
    assert result.rejection_reason == "IRB lapsed"


async def test_unanswered_block_escalates_and_keeps_waiting(
    env: PacketEnv, demo: dict[str, DemoPacket], app_pool: object, kim: Reviewer
) -> None:
    inp = await env.make_input(folder(demo, "us-103-expired-irb"), review_deadline_seconds=2.0)
    handle = await env.start(inp)
    escalated = await env.wait_status(handle, {S.ESCALATED})
    assert escalated.escalated
    # The status flips first; the audit entry follows from its own activity.
    for _ in range(100):
        if "packet.review.escalated" in await audit_actions(app_pool, inp.packet_id):
            break
        await asyncio.sleep(0.1)
    assert "packet.review.escalated" in await audit_actions(app_pool, inp.packet_id)
    await handle.signal(
        SitePacketWorkflow.approve, kim.review(escalated, "APPROVE", "escalation handled")
    )
    assert (await handle.result()).status is S.APPROVED


async def test_approve_signal_through_the_temporal_cli(
    env: PacketEnv, demo: dict[str, DemoPacket], stack: Settings, app_pool: object
) -> None:
    cli = await Reviewer.register(app_pool, env.keyring, "ra.cli", "Robin Cli")  # type: ignore[arg-type]
    inp = await env.make_input(folder(demo, "us-103-expired-irb"))
    handle = await env.start(inp)
    blocked = await env.wait_status(handle, {S.BLOCKED})
    # The signed decision is plain JSON: any tool can carry it.
    payload = cli.review(blocked, "APPROVE", "approved from the command line").model_dump(
        mode="json"
    )
    await asyncio.to_thread(
        subprocess.run,
        [
            str(find_binary("temporal")),
            "workflow",
            "signal",
            "--workflow-id",
            handle.id,
            "--name",
            "approve",
            "--input",
            json.dumps(payload),
            "--address",
            stack.temporal_address,
            "--namespace",
            stack.temporal_namespace,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    result = await handle.result()
    assert result.status is S.APPROVED
    assert result.reviews[-1].reviewer_id == "ra.cli"


async def test_gap_then_add_documents_completes(
    env: PacketEnv, demo: dict[str, DemoPacket]
) -> None:
    base = folder(demo, "us-101-complete")
    manifest, _ = manifest_for(base)
    form = "form_1572.pdf"
    assert form in {f.path for f in manifest.files}
    inp = await env.make_input(base, drop=(form,))
    handle = await env.start(inp)
    waiting = await env.wait_status(handle, {S.AWAITING_DOCUMENTS})
    assert waiting.gaps is not None
    assert [g.code for g in waiting.gaps.missing] == ["GAP_DOCUMENT_MISSING"]
    added = await env.upload(base, manifest, [form])
    await handle.signal(SitePacketWorkflow.add_documents, AddDocumentsInput(documents=added))
    result = await handle.result()
    assert result.status is S.VALIDATED, result.reasons
    assert len(result.documents) == len(inp.documents) + 1


async def test_gap_deadline_completes_incomplete_with_gap_list(
    env: PacketEnv, demo: dict[str, DemoPacket]
) -> None:
    inp = await env.make_input(folder(demo, "us-104-missing-1572"), gap_deadline_seconds=2.0)
    result = await (await env.start(inp)).result()
    assert result.status is S.INCOMPLETE
    assert result.gaps is not None and result.gaps.missing[0].doc_type.value == "FDA_1572"


async def test_urgent_packet_runs_on_the_urgent_queue(
    env: PacketEnv, demo: dict[str, DemoPacket], temporal_client: Client
) -> None:
    today = datetime.now(UTC).date()
    urgent = await env.make_input(folder(demo, "us-101-complete"), target=today + timedelta(days=5))
    routine = await env.make_input(
        folder(demo, "us-101-complete"), target=today + timedelta(days=60)
    )
    from starters.packets_submit import queue_for

    assert queue_for(env.settings, urgent.manifest) == f"{env.prefix}-us-urgent"
    assert queue_for(env.settings, routine.manifest) == f"{env.prefix}-us"
    handles = [await env.start(urgent, queue_for(env.settings, urgent.manifest))]
    handles.append(await env.start(routine, queue_for(env.settings, routine.manifest)))
    settled = set(S) - {S.PROCESSING}
    for h in handles:
        await env.wait_status(h, settled)
    queues = [(await h.describe()).task_queue for h in handles]
    assert queues == [f"{env.prefix}-us-urgent", f"{env.prefix}-us"]
