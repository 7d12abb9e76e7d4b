"""SIGTERM drains a worker: the in-flight activity finishes on its first attempt."""

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

from clinflow.settings import Settings

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[1]


async def test_sigterm_drains_in_flight_activity(
    stack: Settings, temporal_client: Client, tmp_path: Path
) -> None:
    queue = f"drain-{uuid.uuid4()}"
    marker = tmp_path / "marker"

    def start_worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.drain_worker_app", queue],
            cwd=REPO,
            env={**os.environ, **stack.to_env()},
        )

    proc = await asyncio.to_thread(start_worker)
    successor: subprocess.Popen[bytes] | None = None
    try:
        handle = await temporal_client.start_workflow(
            "DrainTestWorkflow", str(marker), id=f"drain-{uuid.uuid4()}", task_queue=queue
        )
        for _ in range(300):
            if marker.exists():
                break
            await asyncio.sleep(0.1)
        assert marker.read_text() == "started", "the activity never started"
        proc.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(proc.wait, 30)
        assert exit_code == 0
        assert marker.read_text() == "finished", "the in-flight activity was cut short"
        # The activity's result is recorded; a restarted worker finishes the workflow
        # without running the activity again.
        successor = await asyncio.to_thread(start_worker)
        assert await asyncio.wait_for(handle.result(), 60) == "attempt-1"
    finally:
        for p in (proc, successor):
            if p is not None and p.poll() is None:
                p.kill()
