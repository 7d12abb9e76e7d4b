"""Clinical batches end to end through Temporal on the real stack (worker in this process)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from temporalio.client import Client

from activities.clinical_models import ClinicalBatchResult
from activities.deps import Deps
from clinflow.clinical import (
    ProcessContext,
    Processed,
    ValidationReport,
    iter_ndjson_range,
    process_ndjson_lines,
    read_file_range,
    split_hl7_messages,
)
from clinflow.clinical.models import QuarantineReason, QuarantineRecord
from clinflow.clinical.quarantine_store import aesgcm_sealer, insert_quarantine
from clinflow.keyring import Keyring
from clinflow.object_store import ObjectStore
from clinflow.settings import Settings
from starters.clinical_cli import (
    ensure_schedule,
    local_hl7_files,
    prepare_local,
    run_reconciliation,
    submit_batch,
)
from tests.conftest import corpus_path
from workers.clinical_plan import clinical_plan
from workers.factory import build_worker

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
async def clinical(
    stack: Settings, keyring: Keyring, temporal_client: Client, tmp_path_factory: Any
) -> AsyncIterator[Settings]:
    """A clinical worker (with its 2-process validation pool) on a fresh task queue."""
    lineage = tmp_path_factory.mktemp("lineage") / "events.ndjson"
    settings = stack.model_copy(
        update={
            "clinical_task_queue": f"test-clinical-{uuid.uuid4()}",
            "clinical_lineage_file": lineage,
            "clinical_partition_bytes": 512 * 1024,
            "clinical_chunk_rows": 500,
            "clinical_process_pool_size": 2,
        }
    )
    deps = await Deps.open(settings, keyring)
    ((queue, plan),) = clinical_plan(settings, deps).items()
    worker = build_worker(temporal_client, settings, task_queue=queue, plan=plan)
    async with worker:
        yield settings
    acts = plan.activities[0].__self__  # type: ignore[attr-defined]
    if acts.executor is not None:
        acts.executor.shutdown(wait=True)
    await deps.close()


async def ingest(
    client: Client,
    settings: Settings,
    keyring: Keyring,
    kind: str,
    path: Path,
    source: str,
    *,
    force: bool = False,
) -> tuple[ClinicalBatchResult, bool]:
    async with ObjectStore(settings, keyring) as store:
        inputs = await prepare_local(store, settings, kind, path)  # type: ignore[arg-type]
    sub = await submit_batch(client, settings, kind, source, inputs, force=force)  # type: ignore[arg-type]
    return await sub.handle.result(), sub.already_completed


def valid_line_ids(path: Path) -> set[str]:
    """Ids of the lines of ``path`` that pass the domain pipeline on their own."""
    ctx = ProcessContext(source_uri="check", expected_resource_type=path.name.split(".", 1)[0])
    lines = iter_ndjson_range(read_file_range(path))
    return {
        r.row.id
        for r in process_ndjson_lines(lines, ctx, ValidationReport())
        if isinstance(r, Processed)
    }


def nonblank_lines(path: Path) -> int:
    return sum(1 for line in path.read_bytes().split(b"\n") if line.strip())


async def table_snapshot(pool: Any, batch_id: str) -> dict[str, list[tuple[Any, ...]]]:
    async with pool.acquire() as conn:
        resources = await conn.fetch(
            "SELECT resource_type, id, version_id, last_updated, source_system, batch_id, "
            "body::text, content_sha256 FROM fhir_resources WHERE batch_id = $1 "
            "ORDER BY resource_type, id",
            batch_id,
        )
        quarantine = await conn.fetch(
            "SELECT * FROM quarantine WHERE batch_id = $1 ORDER BY quarantine_id", batch_id
        )
        batches = await conn.fetch("SELECT * FROM batches WHERE batch_id = $1", batch_id)
    return {
        "resources": [tuple(r) for r in resources],
        "quarantine": [tuple(r) for r in quarantine],
        "batches": [tuple(r) for r in batches],
    }


@pytest.mark.parametrize("export", ["sample-bulk-10-patients", "cumulus-etl-simple"])
async def test_synthea_export_loads_every_valid_line(
    clinical: Settings, keyring: Keyring, temporal_client: Client, app_pool: Any, export: str
) -> None:
    folder = corpus_path("fhir", export)
    source = f"synthea-{uuid.uuid4().hex[:8]}"
    result, _ = await ingest(temporal_client, clinical, keyring, "fhir", folder, source)
    assert result.status == "completed"
    files = sorted(p for p in folder.glob("*.ndjson") if p.name != "log.ndjson")
    assert result.report.records == sum(nonblank_lines(p) for p in files)
    async with app_pool.acquire() as conn:
        loaded = {
            r["resource_type"]: r["n"]
            for r in await conn.fetch(
                "SELECT resource_type, count(*) AS n FROM fhir_resources WHERE batch_id = $1 "
                "GROUP BY resource_type",
                result.batch_id,
            )
        }
        quarantined = await conn.fetchval(
            "SELECT count(*) FROM quarantine WHERE batch_id = $1", result.batch_id
        )
        batch = await conn.fetchrow("SELECT * FROM batches WHERE batch_id = $1", result.batch_id)
        watermark = await conn.fetchval(
            "SELECT high_water FROM source_watermarks WHERE source_system = $1", source
        )
        audit = await conn.fetch(
            "SELECT action FROM audit_log WHERE subject_ref = $1 OR actor = $2",
            f"batch:{result.batch_id}",
            f"workflow:{result.batch_id}",
        )
    # Every resource type with a valid line is loaded; counts equal the valid lines (checked
    # here line by line with the domain pipeline, independent of the workflow's report).
    valid_ids = {p.name.split(".", 1)[0]: valid_line_ids(p) for p in files}
    invalid = sum(nonblank_lines(p) for p in files) - sum(len(v) for v in valid_ids.values())
    assert set(loaded) == {t for t, ids in valid_ids.items() if ids}
    if export == "sample-bulk-10-patients":
        assert set(loaded) == {p.name.split(".", 1)[0] for p in files}, "every type loads"
    for rtype, ids in valid_ids.items():
        assert loaded.get(rtype, 0) == len(ids) == result.report.by_resource_type.get(rtype, 0)
    assert quarantined == result.report.quarantined_total == invalid
    assert sum(loaded.values()) == result.report.valid == result.counts.inserted
    assert batch["status"] == "completed" and batch["kind"] == "fhir"
    assert json.loads(batch["report"])["valid"] == result.report.valid
    assert watermark == result.counts.max_last_updated
    actions = [r["action"] for r in audit]
    assert actions.count("clinical.batch.started") == 1
    assert actions.count("clinical.batch.completed") == 1
    assert actions.count("clinical.partition.loaded") == result.partitions
    # Lineage: one START and one COMPLETE for this batch's run, naming inputs and tables.
    events = [json.loads(line) for line in clinical.clinical_lineage_path.read_text().splitlines()]
    mine = [e for e in events if any(i["name"] in {f"clinical/inputs/{_sha(p)}" for p in files}
                                     for i in e["inputs"])]  # fmt: skip
    assert [e["eventType"] for e in mine][-2:] == ["START", "COMPLETE"]
    assert mine[-1]["run"]["runId"] == mine[-2]["run"]["runId"]
    assert {o["name"].rsplit(".", 1)[-1] for o in mine[-1]["outputs"]} == {
        "fhir_resources",
        "quarantine",
    }


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_same_export_twice_is_one_batch_and_forced_rerun_changes_nothing(
    clinical: Settings, keyring: Keyring, temporal_client: Client, app_pool: Any
) -> None:
    folder = corpus_path("fhir", "cumulus-etl-simple")
    source = f"twice-{uuid.uuid4().hex[:8]}"
    first, existed = await ingest(temporal_client, clinical, keyring, "fhir", folder, source)
    assert not existed
    before = await table_snapshot(app_pool, first.batch_id)
    second, existed = await ingest(temporal_client, clinical, keyring, "fhir", folder, source)
    assert existed, "the second submission must not start a second run"
    assert second == first
    rerun, existed = await ingest(
        temporal_client, clinical, keyring, "fhir", folder, source, force=True
    )
    assert not existed and rerun.batch_id == first.batch_id
    assert rerun.counts.inserted == 0 and rerun.counts.updated == 0
    assert rerun.report == first.report
    assert await table_snapshot(app_pool, first.batch_id) == before
    async with app_pool.acquire() as conn:
        n = await conn.fetchval("SELECT count(*) FROM batches WHERE batch_id = $1", first.batch_id)
    assert n == 1


def _bad_file(tmp_path: Path, tag: str) -> tuple[Path, int]:
    src = corpus_path("fhir", "sample-bulk-10-patients", "Condition.000.ndjson")
    good = []
    for line in src.read_bytes().splitlines()[:300]:
        doc = orjson.loads(line)
        doc["id"] = f"{tag}-{doc['id']}"[:64]
        good.append(orjson.dumps(doc))
    patient = orjson.loads(
        corpus_path("fhir", "sample-bulk-10-patients", "Patient.000.ndjson")
        .read_bytes()
        .splitlines()[0]
    )
    patient["id"] = f"{tag}-patient"
    invalid_fhir = orjson.loads(good[0])
    invalid_fhir["id"] = f"{tag}-invalid"
    invalid_fhir["subject"] = 5
    huge = orjson.loads(good[1])
    huge["id"] = f"{tag}-huge"
    huge["note"] = [{"text": "x" * (20 * 1024 * 1024)}]
    bad = [
        b'{"resourceType": "Condition", "id": "broken',  # invalid JSON
        orjson.dumps(patient),  # wrong resourceType for a Condition file
        orjson.dumps(invalid_fhir),  # invalid FHIR
        orjson.dumps(huge),  # a 20 MB single line
        b'{"resourceType":"Condition","id":"' + tag.encode() + b'-utf8\xff\xfe"}',  # bad UTF-8
    ]
    lines = good[:100] + bad[:2] + good[100:200] + bad[2:] + good[200:]
    path = tmp_path / "Condition.000.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, len(good)


EXPECTED_REASONS = {
    "INVALID_JSON": 1,
    "RESOURCE_TYPE_MISMATCH": 1,
    "FHIR_VALIDATION": 1,
    "LINE_TOO_LONG": 1,
    "INVALID_UTF8": 1,
}


async def test_bad_lines_are_quarantined_and_good_lines_load(
    clinical: Settings,
    keyring: Keyring,
    temporal_client: Client,
    app_pool: Any,
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:8]
    path, good = _bad_file(tmp_path, tag)
    result, _ = await ingest(temporal_client, clinical, keyring, "fhir", path, f"bad-{tag}")
    assert result.status == "completed", "bad records never halt the batch"
    assert result.partitions > 1
    assert result.report.valid == good
    assert result.report.quarantined == EXPECTED_REASONS
    async with app_pool.acquire() as conn:
        loaded = await conn.fetchval(
            "SELECT count(*) FROM fhir_resources WHERE batch_id = $1", result.batch_id
        )
        rows = await conn.fetch(
            "SELECT reason_code, raw_ciphertext, raw_truncated, status FROM quarantine "
            "WHERE batch_id = $1",
            result.batch_id,
        )
    assert loaded == good
    assert sorted(r["reason_code"] for r in rows) == sorted(EXPECTED_REASONS)
    for r in rows:
        assert r["raw_ciphertext"] and tag.encode() not in r["raw_ciphertext"]
        assert r["raw_truncated"] == (r["reason_code"] == "LINE_TOO_LONG")
    # One error NDJSON object for the file, one OperationOutcome per quarantined record.
    assert len(result.error_objects) == 1
    bucket, key = result.error_objects[0].removeprefix("s3://").split("/", 1)
    async with ObjectStore(clinical, keyring) as store:
        body = await store.get_bytes(bucket, key)
    outcomes = [orjson.loads(line) for line in body.splitlines()]
    reasons = [o["issue"][0]["details"]["coding"][0]["code"] for o in outcomes]
    assert sorted(reasons) == sorted(EXPECTED_REASONS)
    assert all(o["resourceType"] == "OperationOutcome" for o in outcomes)
    assert tag.encode() not in body or b"-utf8" not in body


async def test_hl7_corpus_routes_acks_and_maps(
    clinical: Settings, keyring: Keyring, temporal_client: Client, app_pool: Any
) -> None:
    folder = corpus_path("hl7", "ms-fhir-converter")
    source = f"hl7-{uuid.uuid4().hex[:8]}"
    result, _ = await ingest(temporal_client, clinical, keyring, "hl7", folder, source)
    assert result.status == "completed"
    files = local_hl7_files(folder)
    per_file = [len(split_hl7_messages(p.read_bytes()).messages) for p in files]
    assert result.report.hl7_messages == sum(per_file)
    assert sum(result.report.hl7_acks.values()) == sum(per_file)
    assert result.report.hl7_routes.get("ADT", 0) >= 1
    assert len(result.ack_objects) == len([n for n in per_file if n])
    async with ObjectStore(clinical, keyring) as store:
        total_acks = 0
        for ref in result.ack_objects:
            bucket, key = ref.removeprefix("s3://").split("/", 1)
            lines = (await store.get_bytes(bucket, key)).splitlines()
            acks = [orjson.loads(line) for line in lines]
            assert all(a["ack"].startswith("MSH") and a["ack_code"] in "AA AE AR" for a in acks)
            total_acks += len(acks)
    assert total_acks == sum(per_file)
    async with app_pool.acquire() as conn:
        by_type = {
            r["resource_type"]: r["n"]
            for r in await conn.fetch(
                "SELECT resource_type, count(*) AS n FROM fhir_resources WHERE batch_id = $1 "
                "GROUP BY resource_type",
                result.batch_id,
            )
        }
        quarantined = await conn.fetchval(
            "SELECT count(*) FROM quarantine WHERE batch_id = $1", result.batch_id
        )
    assert by_type.get("Patient", 0) >= 1
    assert quarantined == result.report.quarantined_total
    assert result.report.hl7_acks.get("AR", 0) + result.report.hl7_acks.get("AE", 0) == quarantined


async def test_reconciliation_recovers_after_a_fix(
    clinical: Settings, keyring: Keyring, temporal_client: Client, app_pool: Any, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    path, _ = _bad_file(tmp_path, tag)
    result, _ = await ingest(temporal_client, clinical, keyring, "fhir", path, f"rec-{tag}")
    # A record set aside by an earlier rule (say a crosswalk gap) that today's pipeline accepts.
    line = corpus_path("fhir", "sample-bulk-10-patients", "Condition.000.ndjson").read_bytes()
    doc = orjson.loads(line.splitlines()[0])
    doc["id"] = f"{tag}-recoverable"
    raw = orjson.dumps(doc)
    record = QuarantineRecord(
        source_uri=f"s3://reconcile-test/{tag}",
        byte_offset=0,
        line_index=0,
        raw=raw,
        reason=QuarantineReason.FHIR_VALIDATION,
        message="Condition: code.coding.0.system: unknown alias (crosswalk gap)",
    )
    async with app_pool.acquire() as conn:
        await insert_quarantine(
            conn, [record], result.batch_id, f"rec-{tag}",
            seal=aesgcm_sealer(*keyring.active("payload")),
        )  # fmt: skip
    report = await run_reconciliation(temporal_client, clinical, batch=result.batch_id)
    assert report.recovered == 1
    assert report.recovered_by_reason == {"FHIR_VALIDATION": 1}
    # Records still broken stay quarantined, with one more attempt (truncated ones are skipped).
    assert report.still_quarantined == len(EXPECTED_REASONS) - 2
    async with app_pool.acquire() as conn:
        status = await conn.fetchval(
            "SELECT status FROM quarantine WHERE source_uri = $1", record.source_uri
        )
        body = await conn.fetchval(
            "SELECT body::text FROM fhir_resources WHERE resource_type = 'Condition' AND id = $1",
            doc["id"],
        )
        attempts = await conn.fetch(
            "SELECT reason_code, attempt, status FROM quarantine WHERE batch_id = $1 "
            "AND source_uri <> $2",
            result.batch_id,
            record.source_uri,
        )
    assert status == "recovered"
    assert body is not None and orjson.loads(body)["id"] == doc["id"]
    for row in attempts:
        expected = 1 if row["reason_code"] in ("LINE_TOO_LONG", "RESOURCE_TYPE_MISMATCH") else 2
        assert (row["attempt"], row["status"]) == (expected, "open"), row["reason_code"]
    # The Schedule is created once, then updated in place.
    assert await ensure_schedule(temporal_client, clinical) in ("created", "updated")
    assert await ensure_schedule(temporal_client, clinical) == "updated"


async def test_s3_export_in_place_and_cli_ingest_twice(
    clinical: Settings,
    keyring: Keyring,
    temporal_client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    from typer.testing import CliRunner

    from starters.cli import app
    from starters.clinical_cli import prepare_s3

    folder = corpus_path("fhir", "cumulus-etl-simple")
    tag = uuid.uuid4().hex[:8]
    bucket, prefix = clinical.s3_bucket_batches, f"exports/{tag}"
    files = sorted(p for p in folder.glob("*.ndjson") if p.name != "log.ndjson")
    manifest = {
        "transactionTime": "2024-08-06T18:12:57Z",
        "output": [
            {"type": p.name.split(".")[0], "url": f"https://fhir.example/bulk/{p.name}"}
            for p in files
        ],
        "error": [],
    }
    async with ObjectStore(clinical, keyring) as store:
        for p in files:  # as an exporter would leave them: plain objects, no clinflow metadata
            await store.client.put_object(
                Bucket=bucket, Key=f"{prefix}/{p.name}", Body=p.read_bytes()
            )
        await store.client.put_object(
            Bucket=bucket, Key=f"{prefix}/manifest.json", Body=orjson.dumps(manifest)
        )
        inputs = await prepare_s3(store, "fhir", f"s3://{bucket}/{prefix}")
    assert [f.name for f in inputs.files] == [p.name for p in files]
    assert not any(f.encrypted for f in inputs.files)
    sub = await submit_batch(temporal_client, clinical, "fhir", f"s3-{tag}", inputs)
    result = await sub.handle.result()
    assert result.status == "completed"
    assert result.report.records == sum(nonblank_lines(p) for p in files)
    assert result.report.valid == sum(len(valid_line_ids(p)) for p in files)

    # The CLI: the same local export twice is one batch; the second prints the existing result.
    for key, value in {
        "CLINFLOW_CLINICAL_TASK_QUEUE": clinical.clinical_task_queue,
        "CLINFLOW_CLINICAL_LINEAGE_FILE": str(clinical.clinical_lineage_path),
    }.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    argv = ["ingest", "fhir", str(folder), "--source", f"cli-{tag}"]
    first = await asyncio.to_thread(runner.invoke, app, argv)
    second = await asyncio.to_thread(runner.invoke, app, argv)
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert "started" in first.output and "already completed" in second.output
    assert "Load report" in second.output
