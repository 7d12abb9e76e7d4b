"""Batches across regions, transient failures to the DLQ and back, and the ingestion channels."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from temporalio.client import Client

from activities.packets_models import PacketStatus, PacketStatusName
from clinflow.keyring import Keyring
from clinflow.packets.sample_data import DemoPacket, generate_demo_packets
from clinflow.settings import Settings
from starters.packets_dlq import get_dlq, replay_dlq
from starters.packets_submit import start_batch
from starters.packets_upload import make_app
from starters.packets_watch import DropFolderWatcher
from tests.test_packets_support import PacketEnv, packet_workers
from workflows.packets import SitePacketWorkflow

pytestmark = pytest.mark.stack
S = PacketStatusName
NAMES = ["us-101-complete", "eu-201-complete", "us-103-expired-irb", "us-106-truncated"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DemoPacket]:
    return {p.name: p for p in generate_demo_packets(tmp_path_factory.mktemp("batch"), only=NAMES)}


@pytest.fixture(scope="module")
async def env(
    stack: Settings, keyring: Keyring, temporal_client: Client
) -> AsyncIterator[PacketEnv]:
    async with packet_workers(stack, keyring, temporal_client) as e:
        yield e


async def test_batch_fans_out_per_region_and_reports_waiting_children(
    env: PacketEnv, demo: dict[str, DemoPacket]
) -> None:
    inputs = [await env.make_input(Path(demo[n].path)) for n in NAMES]
    inputs.append(inputs[0])  # the same packet twice in one batch
    handle = await start_batch(
        env.client, env.settings, env.store, inputs, batch_id=uuid.uuid4().hex, max_parallel=2
    )
    summary = await handle.result()
    assert summary.total == summary.settled == len(inputs)
    by_id = {p.packet_id: p for p in summary.packets if p.status != "DUPLICATE_IN_BATCH"}
    assert by_id[inputs[0].packet_id].status == S.VALIDATED
    assert by_id[inputs[0].packet_id].queue == f"{env.prefix}-us"
    assert by_id[inputs[1].packet_id].queue == f"{env.prefix}-eu"
    assert by_id[inputs[2].packet_id].status == S.BLOCKED  # still waiting, batch returned
    assert by_id[inputs[3].packet_id].status == S.DEAD_LETTERED
    assert summary.outcomes == {
        "VALIDATED": 2,
        "BLOCKED": 1,
        "DEAD_LETTERED": 1,
        "DUPLICATE_IN_BATCH": 1,
    }
    assert summary.categories["FATAL_SCHEMA_MISMATCH"] >= 1
    assert summary.categories["COMPLIANCE_BLOCK"] >= 1
    # The blocked child keeps waiting for its reviewer after the batch finished.
    blocked = env.client.get_workflow_handle(inputs[2].packet_id)
    assert (await blocked.query(SitePacketWorkflow.status)).status is S.BLOCKED
    # Submitting the same batch again starts nothing new: children already exist.
    again = await start_batch(env.client, env.settings, env.store, inputs[:2])
    second = await again.result()
    assert {p.note for p in second.packets} == {"already submitted"}
    assert {str(p.status) for p in second.packets} == {"VALIDATED"}


async def test_transient_failure_retries_then_dead_letters_then_replays(
    env: PacketEnv, demo: dict[str, DemoPacket], app_pool: object
) -> None:
    env.portal.status = 503
    calls_before = env.portal.calls
    inp = await env.make_input(Path(demo["eu-201-complete"].path), external_check=True)
    result = await (await env.start(inp)).result()
    assert result.status is S.DEAD_LETTERED
    assert 1 <= env.portal.calls - calls_before <= 3  # the breaker may fail the last fast
    entry = await get_dlq(app_pool, result.dlq_ids[0])  # type: ignore[arg-type]
    assert entry.category == "RECOVERABLE_TIMEOUT"
    assert entry.code in {"EXTERNAL_CHECK_UNAVAILABLE", "CIRCUIT_OPEN"}
    assert [a["attempt"] for a in entry.attempts] == [1, 2, 3]
    assert {a["activity"] for a in entry.attempts} == {"packets.external_check"}
    # The portal recovers; the operator replays the entry as a new run.
    env.portal.status = 200
    await asyncio.sleep(env.settings.packets_breaker_cooldown_seconds)
    handle, _ = await replay_dlq(env.client, env.settings, app_pool, entry.dlq_id)  # type: ignore[arg-type]
    replayed = await handle.result()
    assert replayed.status is S.VALIDATED
    assert (await get_dlq(app_pool, entry.dlq_id)).replayed_at is not None  # type: ignore[arg-type]
    async with app_pool.acquire() as conn:  # type: ignore[attr-defined]
        validations = await conn.fetchval(
            "SELECT count(*) FROM packet_validations WHERE packet_id = $1 AND stage = 'structural'",
            inp.packet_id,
        )
        received = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'packet.received' AND subject_ref = $1",
            inp.packet_id,
        )
    assert validations == len(inp.documents)  # the replay reused the validated documents
    assert received == 2  # the first run and the audited replay


async def test_drop_folder_picks_up_complete_packets_once(
    env: PacketEnv, demo: dict[str, DemoPacket], tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    src = Path(demo["us-101-complete"].path)
    packet = drop / "incoming-101"
    packet.mkdir(parents=True)
    manifest = yaml.safe_load((src / "manifest.yaml").read_text())
    manifest["site_id"] = f"SITE-US-0101-w{uuid.uuid4().hex[:6]}"
    for f in manifest["files"]:
        (packet / f["path"]).write_bytes((src / f["path"]).read_bytes())
    (packet / "late.pdf.part").write_bytes(b"%PDF-1.7 partial")
    (packet / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    settings = env.settings.model_copy(update={"home": tmp_path / "home"})
    watcher = DropFolderWatcher(drop, settings, env.client, env.store, echo=lambda _: None)
    assert await watcher.poll() == []  # a partial upload is present
    (packet / "late.pdf.part").unlink()
    assert await watcher.poll() == []  # first sight of the complete listing
    submitted = await watcher.poll()  # stable across two polls
    assert len(submitted) == 1
    restarted = DropFolderWatcher(drop, settings, env.client, env.store, echo=lambda _: None)
    assert await restarted.poll() == [] and await restarted.poll() == []
    handle = env.client.get_workflow_handle(submitted[0])
    assert (await handle.describe()).task_queue == f"{env.prefix}-us"


async def test_http_upload_streams_and_starts_the_packet(
    env: PacketEnv, demo: dict[str, DemoPacket]
) -> None:
    from aiohttp import web

    src = Path(demo["eu-201-complete"].path)
    manifest = yaml.safe_load((src / "manifest.yaml").read_text())
    manifest["site_id"] = f"SITE-DE-0201-u{uuid.uuid4().hex[:6]}"
    runner = web.AppRunner(make_app(env.settings, env.client, env.store))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        form = aiohttp.FormData()
        form.add_field("manifest", yaml.safe_dump(manifest))
        for f in manifest["files"]:
            form.add_field("file", (src / f["path"]).read_bytes(), filename=f["path"])
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{port}/packets", data=form) as resp,
        ):
            body = await resp.json()
            assert resp.status == 202, body
        handle = env.client.get_workflow_handle(body["packet_id"], result_type=PacketStatus)
        result = await handle.result()
        assert result.status is S.VALIDATED
        assert body["queue"] == f"{env.prefix}-eu"
    finally:
        await runner.cleanup()
