"""SIGKILL of the worker during a multi-partition load, then restart: same result as a clean run.

The worker runs as a real subprocess (``python -m workers.main``) with its validation pool; it
is killed (whole process group, SIGKILL) after a few chunks committed and restarted. The batch
must complete with the same report and counts as a clean run and leave the same rows.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from temporalio.client import Client

from clinflow.clinical.quarantine_store import open_sealed
from clinflow.keyring import Keyring
from clinflow.object_store import ObjectStore
from clinflow.settings import Settings
from starters.clinical_cli import prepare_local, submit_batch
from tests.conftest import corpus_path

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[1]


def build_export(folder: Path, tag: str) -> Path:
    """Three Synthea files with fresh ids, plus two bad lines."""
    folder.mkdir()
    for name in ("Condition", "Encounter", "Procedure"):
        src = corpus_path("fhir", "sample-bulk-10-patients", f"{name}.000.ndjson")
        out = []
        for line in src.read_bytes().splitlines():
            doc = orjson.loads(line)
            doc["id"] = f"{tag}-{doc['id']}"[:64]
            out.append(orjson.dumps(doc))
        if name == "Encounter":
            out.insert(500, b"{not json")
            out.insert(900, b'{"resourceType":"Encounter"}')
        (folder / f"{name}.000.ndjson").write_bytes(b"\n".join(out) + b"\n")
    return folder


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "workers.main"],
        cwd=REPO,
        env={**os.environ, **settings.to_env()},
        start_new_session=True,  # its own process group: the pool's children die with it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


async def snapshot(pool: Any, keyring: Keyring, batch_id: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT resource_type, id, version_id, last_updated, source_system, batch_id, "
            "body::text, content_sha256 FROM fhir_resources WHERE batch_id = $1 "
            "ORDER BY resource_type, id",
            batch_id,
        )
        dupes = await conn.fetchval(
            "SELECT count(*) FROM (SELECT batch_id, source_uri, byte_offset FROM quarantine "
            "WHERE batch_id = $1 GROUP BY 1, 2, 3 HAVING count(*) > 1) d",
            batch_id,
        )
        quarantine = await conn.fetch(
            "SELECT source_system, source_uri, line_index, byte_offset, reason_code, message, "
            "raw_key_id, raw_ciphertext, raw_truncated, attempt, status FROM quarantine "
            "WHERE batch_id = $1 ORDER BY source_uri, byte_offset",
            batch_id,
        )
    assert dupes == 0
    q = []
    for r in quarantine:
        raw = open_sealed(keyring.get("payload", r["raw_key_id"]), r["raw_ciphertext"])
        q.append((*[v for k, v in r.items() if k != "raw_ciphertext"], raw))
    return {"resources": [tuple(r) for r in rows], "quarantine": q}


async def reset_batch(admin_pool: Any, batch_id: str, source: str) -> None:
    async with admin_pool.acquire() as conn, conn.transaction():
        for table in ("fhir_resources", "quarantine", "batches", "clinical_partition_progress"):
            await conn.execute(f"DELETE FROM {table} WHERE batch_id = $1", batch_id)
        await conn.execute("DELETE FROM source_watermarks WHERE source_system = $1", source)


async def test_sigkill_mid_load_then_restart_equals_clean_run(
    stack: Settings,
    keyring: Keyring,
    temporal_client: Client,
    app_pool: Any,
    admin_pool: Any,
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:8]
    export = build_export(tmp_path / "export", tag)
    settings = stack.model_copy(
        update={
            "task_queue": f"test-crash-main-{tag}",
            "clinical_task_queue": f"test-crash-{tag}",
            "clinical_lineage_file": tmp_path / "lineage.ndjson",
            "clinical_partition_bytes": 256 * 1024,
            "clinical_chunk_rows": 50,
            "clinical_max_parallel_partitions": 2,
            "clinical_partitions_per_run": 5,
            "clinical_heartbeat_timeout_seconds": 3.0,
            "clinical_process_pool_size": 1,
        }
    )
    source = f"crash-{tag}"
    async with ObjectStore(settings, keyring) as store:
        inputs = await prepare_local(store, settings, "fhir", export)

    worker = await asyncio.to_thread(start_worker, settings)
    try:
        # 1. A clean run.
        clean_sub = await submit_batch(temporal_client, settings, "fhir", source, inputs)
        clean = await asyncio.wait_for(clean_sub.handle.result(), 180)
        assert clean.partitions > 10, "the export must span many partitions"
        assert clean.runs > 1, "continue-as-new must have carried the batch over runs"
        assert clean.report.quarantined == {"INVALID_JSON": 1, "MISSING_ID": 1}
        expected = await snapshot(app_pool, keyring, clean.batch_id)
        assert len(expected["resources"]) == clean.report.valid

        # 2. The same batch again from empty tables, killing the worker mid-load.
        await reset_batch(admin_pool, clean.batch_id, source)
        sub = await submit_batch(temporal_client, settings, "fhir", source, inputs, force=True)
        assert sub.batch_id == clean.batch_id
        committed, all_done = 0, False
        for _ in range(600):
            async with app_pool.acquire() as conn:
                row = await conn.fetchrow(
                    "SELECT coalesce(sum(chunks), 0) AS chunks, count(*) FILTER (WHERE NOT done "
                    "AND chunks > 0) AS partial FROM clinical_partition_progress "
                    "WHERE batch_id = $1",
                    clean.batch_id,
                )
            committed = int(row["chunks"])
            if committed >= 3 and row["partial"]:
                break
            await asyncio.sleep(0.02)
        await asyncio.to_thread(kill_group, worker)
        async with app_pool.acquire() as conn:
            done = await conn.fetchval(
                "SELECT count(*) FROM clinical_partition_progress WHERE batch_id = $1 AND done",
                clean.batch_id,
            )
        all_done = done >= clean.partitions
        assert committed >= 3 and not all_done, "the kill must land in the middle of the load"

        # 3. Restart: the batch completes, every record counted once, rows as in the clean run.
        worker = await asyncio.to_thread(start_worker, settings)
        result = await asyncio.wait_for(sub.handle.result(), 180)
        assert result.status == "completed"
        assert result.resumed_partitions >= 1, "a killed partition resumes, not restarts"
        assert clean.resumed_partitions == 0
        assert result.report == clean.report
        assert result.counts == clean.counts
        assert await snapshot(app_pool, keyring, clean.batch_id) == expected
    finally:
        await asyncio.to_thread(kill_group, worker)
