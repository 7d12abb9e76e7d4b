"""IntakeWorkflow end to end on the real stack, and payload encryption in the raw history."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from activities.deps import Deps
from clinflow.keyring import Keyring
from clinflow.settings import Settings
from clinflow.stack import find_binary
from workers.codec import EncryptionCodec, PayloadDecryptionError
from workers.main import build_workers
from workflows.intake import IntakeInput, IntakeWorkflow

pytestmark = pytest.mark.stack

MARKER = "Fictitium-signature-page-" + uuid.uuid4().hex


@pytest.fixture
async def running_worker(
    stack: Settings, keyring: Keyring, temporal_client: Client
) -> AsyncIterator[str]:
    """A worker on a fresh task queue, running in this event loop."""
    queue = f"test-intake-{uuid.uuid4()}"
    settings = stack.model_copy(update={"task_queue": queue})
    deps = await Deps.open(settings, keyring)
    (worker,) = build_workers(temporal_client, settings, deps, [queue])
    async with worker:
        yield queue
    await deps.close()


def _sample(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "signature-page.txt"
    path.write_text(f"Protocol signature page. Submitted by {MARKER}.\n" * 50)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


async def test_intake_hashes_stores_verifies_and_audits(
    running_worker: str, temporal_client: Client, app_pool: object, tmp_path: Path
) -> None:
    path, sha = _sample(tmp_path)
    req = IntakeInput(
        path=str(path),
        sha256=sha,
        size=path.stat().st_size,
        submitted_by=MARKER,
        bucket="clinflow-documents",
    )
    result = await temporal_client.execute_workflow(
        IntakeWorkflow.run, req, id=f"intake-{sha}-{uuid.uuid4()}", task_queue=running_worker
    )
    assert result.sha256 == sha
    assert result.size == path.stat().st_size
    async with app_pool.acquire() as conn:  # type: ignore[attr-defined]
        row = await conn.fetchrow(
            "SELECT action, payload_sha256, subject_ref FROM audit_log WHERE seq = $1 "
            "AND chain = 'main'",
            result.audit_seq,
        )
    assert row["action"] == "intake.stored"
    assert row["payload_sha256"] == sha
    assert row["subject_ref"] == f"s3://{result.bucket}/{result.key}"


async def test_history_payloads_are_ciphertext_without_the_key(
    running_worker: str,
    temporal_client: Client,
    stack: Settings,
    keyring: Keyring,
    tmp_path: Path,
) -> None:
    path, sha = _sample(tmp_path)
    wf_id = f"intake-enc-{uuid.uuid4()}"
    req = IntakeInput(
        path=str(path),
        sha256=sha,
        size=path.stat().st_size,
        submitted_by=MARKER,
        bucket="clinflow-documents",
    )
    await temporal_client.execute_workflow(
        IntakeWorkflow.run, req, id=wf_id, task_queue=running_worker
    )

    # 1. The raw history as the temporal CLI shows it: no plaintext, encrypted encoding.
    shown = await asyncio.to_thread(
        subprocess.run,
        [
            str(find_binary("temporal")),
            "workflow",
            "show",
            "--workflow-id",
            wf_id,
            "--output",
            "json",
            "--address",
            stack.temporal_address,
            "--namespace",
            stack.temporal_namespace,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert MARKER not in shown.stdout
    assert str(path) not in shown.stdout
    assert "YmluYXJ5L2VuY3J5cHRlZA==" in shown.stdout  # base64 of "binary/encrypted"

    # 2. The raw payloads through a client with no codec: ciphertext, opened only with the key.
    plain_client = await Client.connect(stack.temporal_address, namespace=stack.temporal_namespace)
    history = await plain_client.get_workflow_handle(wf_id).fetch_history()
    first = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    assert first.metadata["encoding"] == b"binary/encrypted"
    assert MARKER.encode() not in first.data
    with pytest.raises(PayloadDecryptionError):
        await EncryptionCodec(Keyring.generate()).decode([first])
    (opened,) = await EncryptionCodec(keyring).decode([first])
    assert isinstance(opened, Payload)
    assert json.loads(opened.data)["submitted_by"] == MARKER


async def test_resubmission_returns_the_existing_execution(
    running_worker: str, temporal_client: Client, tmp_path: Path
) -> None:
    from temporalio.common import WorkflowIDConflictPolicy

    path, sha = _sample(tmp_path)
    req = IntakeInput(
        path=str(path),
        sha256=sha,
        size=path.stat().st_size,
        submitted_by="svc:test",
        bucket="clinflow-documents",
    )
    wf_id = f"intake-dup-{uuid.uuid4()}"
    h1 = await temporal_client.start_workflow(
        IntakeWorkflow.run,
        req,
        id=wf_id,
        task_queue=running_worker,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    h2 = await temporal_client.start_workflow(
        IntakeWorkflow.run,
        req,
        id=wf_id,
        task_queue=running_worker,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    assert h1.first_execution_run_id == h2.first_execution_run_id
    assert (await h1.result()).audit_seq == (await h2.result()).audit_seq
