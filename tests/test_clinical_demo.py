"""The clinical demo: generated sample data, loaded through Temporal, reports what it promises."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from typer.testing import CliRunner

from activities.deps import Deps
from clinflow.clinical.sample_data import generate_demo_export
from clinflow.keyring import Keyring
from clinflow.settings import Settings
from starters.cli import app
from starters.clinical_cli import DEMO_FHIR_SOURCE, DEMO_HL7_SOURCE, run_demo
from workers.clinical_plan import clinical_plan
from workers.factory import build_worker


def test_generator_is_deterministic(tmp_path: Path) -> None:
    first = generate_demo_export(tmp_path / "a")
    second = generate_demo_export(tmp_path / "b")
    names = sorted(p.name for p in first.fhir_dir.iterdir())
    assert names == sorted(p.name for p in second.fhir_dir.iterdir())
    for name in names:
        assert (first.fhir_dir / name).read_bytes() == (second.fhir_dir / name).read_bytes()
    for a, b in zip(first.hl7_files, second.hl7_files, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert set(first.fhir_files) == {
        "Patient",
        "Encounter",
        "Observation",
        "Condition",
        "MedicationRequest",
    }
    other = generate_demo_export(tmp_path / "c", tag="other")
    assert not set(other.ids["Patient"]) & set(first.ids["Patient"])


def test_demo_command_is_registered() -> None:
    result = CliRunner().invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    assert "clinical" in result.output


@pytest.fixture
async def clinical(
    stack: Settings, keyring: Keyring, temporal_client: Client, tmp_path: Path
) -> AsyncIterator[Settings]:
    settings = stack.model_copy(
        update={
            "clinical_task_queue": f"test-clinical-demo-{uuid.uuid4()}",
            "clinical_lineage_file": tmp_path / "lineage.ndjson",
            "clinical_process_pool_size": 0,
        }
    )
    deps = await Deps.open(settings, keyring)
    ((queue, plan),) = clinical_plan(settings, deps).items()
    async with build_worker(temporal_client, settings, task_queue=queue, plan=plan):
        yield settings
    await deps.close()


@pytest.mark.stack
async def test_demo_load_report_matches_the_generated_data(
    clinical: Settings, app_pool: Any, tmp_path: Path
) -> None:
    expected = generate_demo_export(tmp_path / "expected").expected
    fhir, hl7 = await run_demo(clinical, wait_seconds=300)

    assert fhir.status == "completed" and fhir.source_system == DEMO_FHIR_SOURCE
    assert fhir.report.records == expected.fhir_records
    assert fhir.counts.inserted == expected.fhir_loaded
    assert fhir.counts.skipped == expected.fhir_skipped_older
    assert fhir.report.quarantined == expected.fhir_quarantined
    assert fhir.error_objects  # the bad lines are in an error NDJSON object

    assert hl7.status == "completed" and hl7.source_system == DEMO_HL7_SOURCE
    assert hl7.report.hl7_messages == expected.hl7_messages
    assert hl7.report.hl7_acks == expected.hl7_acks
    assert hl7.report.quarantined == expected.hl7_quarantined
    assert hl7.counts.inserted == expected.hl7_loaded
    assert len(hl7.ack_objects) == len(generate_demo_export(tmp_path / "n").hl7_files)

    async with app_pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT count(*) FROM fhir_resources WHERE batch_id = $1", fhir.batch_id
        )
        older_kept = await conn.fetchval(
            "SELECT meta_version FROM (SELECT body->'meta'->>'versionId' AS meta_version "
            "FROM fhir_resources WHERE resource_type = 'Patient' AND id = 'demo-pat-1') v"
        )
    assert stored == expected.fhir_loaded
    assert older_kept == "2"  # the newer version won; the older copy was skipped

    again, _ = await run_demo(clinical, wait_seconds=300)  # same data: the completed batch, joined
    assert again.batch_id == fhir.batch_id
    assert again.counts == fhir.counts
