"""SIGKILL the worker process in the middle of a 50-packet batch, start it again: every packet
ends terminal or waiting, each document is validated once, and the audit chain verifies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.packets_models import TERMINAL_STATUSES, WAITING_STATUSES
from clinflow.audit_chain import AuditChain
from clinflow.keyring import Keyring
from clinflow.object_store import ObjectStore
from clinflow.packets.sample_data import generate_demo_packets
from clinflow.settings import Settings
from starters.packets_submit import packet_input, start_batch, upload_documents
from workers.packets_plan import packet_queues
from workflows.packets_batch import PacketBatchWorkflow

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[1]
PACKETS = 50
FILES = ("irb_approval.pdf", "protocol_signature_page.pdf")  # small packets: they wait on gaps
SERVE = (
    "import asyncio, sys; from workers.main import serve; asyncio.run(serve(None, sys.argv[1:]))"
)


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    queues = list(packet_queues(settings).values())
    return subprocess.Popen(
        [sys.executable, "-c", SERVE, *queues],
        cwd=REPO,
        env={**os.environ, **settings.to_env(), "CLINFLOW_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_sigkill_mid_batch_loses_and_duplicates_nothing(
    stack: Settings, keyring: Keyring, temporal_client: Client, app_pool: object, tmp_path: Path
) -> None:
    settings = stack.model_copy(
        update={
            "packets_queue_prefix": f"k{uuid.uuid4().hex[:10]}",
            "packets_gap_deadline_seconds": 3600.0,
            "packets_external_url": None,
        }
    )
    (demo,) = generate_demo_packets(tmp_path, only=["us-101-complete"])
    from clinflow.packets.manifest import manifest_for

    manifest, folder = manifest_for(Path(demo.path))
    tag = uuid.uuid4().hex[:6]
    inputs = []
    async with ObjectStore(settings, keyring) as store:
        for i in range(PACKETS):
            m = manifest.model_copy(
                update={
                    "site_id": f"SITE-K{tag}-{i:03d}",
                    "files": [f for f in manifest.files if f.path in FILES],
                }
            )
            docs = await upload_documents(store, settings, m, folder)
            inputs.append(packet_input(settings, m, docs, source="test"))
        handle = await start_batch(
            temporal_client, settings, store, inputs, batch_id=uuid.uuid4().hex, max_parallel=20
        )
    proc = await asyncio.to_thread(start_worker, settings)
    successor: subprocess.Popen[bytes] | None = None
    try:
        for _ in range(600):
            try:
                progress = await handle.query(PacketBatchWorkflow.progress)
            except Exception:
                progress = None
            if progress is not None and progress.settled >= 8:
                break
            await asyncio.sleep(0.2)
        assert progress is not None and progress.settled < PACKETS, "kill came too late"
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 30)
        successor = await asyncio.to_thread(start_worker, settings)
        summary = await asyncio.wait_for(handle.result(), 240)
    finally:
        for p in (proc, successor):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)

    assert summary.settled == PACKETS
    allowed = {s.value for s in TERMINAL_STATUSES | WAITING_STATUSES}
    assert {str(p.status) for p in summary.packets} <= allowed
    for inp in inputs:
        desc = await temporal_client.get_workflow_handle(inp.packet_id).describe()
        status = {p.key.name: p.value for p in desc.typed_search_attributes}["ClinflowStatus"]
        assert status in allowed, (inp.packet_id, status)
    keys = {(inp.packet_id, d.ref.sha256) for inp in inputs for d in inp.documents}
    async with app_pool.acquire() as conn:  # type: ignore[attr-defined]
        rows = await conn.fetch(
            "SELECT v.document_key, v.stage, count(*) AS n FROM packet_validations v "
            "JOIN packets p USING (packet_id) WHERE p.site_id LIKE $1 "
            "GROUP BY v.document_key, v.stage",
            f"SITE-K{tag}-%",
        )
        audited = await conn.fetch(
            "SELECT subject_ref, count(*) AS n FROM audit_log "
            "WHERE action = 'packet.document.validated' AND subject_ref LIKE $1 "
            "GROUP BY subject_ref",
            f"doc-%-SITE-K{tag}-%",
        )
        received = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'packet.received' "
            "AND subject_ref LIKE $1",
            f"packet-SITE-K{tag}-%",
        )
    structural = [r for r in rows if r["stage"] == "structural"]
    assert len(structural) == len(keys) == PACKETS * len(FILES)
    assert all(r["n"] == 1 for r in rows)
    assert len(audited) == PACKETS * len(FILES)
    assert all(r["n"] == 1 for r in audited)
    assert received == PACKETS
    report = await AuditChain(app_pool, keyring).verify()  # type: ignore[arg-type]
    assert report.ok, report.first_break
