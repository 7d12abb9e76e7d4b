"""The PHI scanner: run a packet batch and a FHIR load, then look for their PHI everywhere.

Every patient name, birth date, MRN, address and phone number of the Synthea
Patients, and every person named in the demo packets' documents, is searched
for in the worker's log output, the Temporal server's log, the raw Temporal
histories (fetched without the codec, every payload decoded from base64) and
the search attributes of every workflow the two jobs ran. Zero hits allowed.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from activities.deps import Deps
from clinflow.keyring import Keyring
from clinflow.log_config import configure_logging
from clinflow.object_store import ObjectStore
from clinflow.packets.sample_data import EU_SITE, US_SITE, generate_demo_packets
from clinflow.settings import Settings
from starters.clinical_cli import prepare_local, submit_batch
from starters.packets_submit import start_batch
from tests.conftest import corpus_path
from tests.phi_scan import fhir_patient_phi, hits, raw_histories
from tests.test_packets_support import packet_workers
from workers.clinical_plan import clinical_plan
from workers.factory import build_worker

pytestmark = pytest.mark.stack

PACKETS = ["us-101-complete", "eu-201-complete", "us-103-expired-irb"]


@pytest.fixture
async def captured_logs(stack: Settings, keyring: Keyring) -> AsyncIterator[io.StringIO]:
    """Everything this process logs while the jobs run (workers run in this process)."""
    buffer = io.StringIO()
    configure_logging(
        stack.model_copy(update={"log_level": "DEBUG"}), stream=buffer, keyring=keyring
    )
    try:
        yield buffer
    finally:
        configure_logging(stack, keyring=keyring)


def packet_people() -> set[str]:
    names: set[str] = set()
    for site in (US_SITE, EU_SITE):
        for person in site.people:
            names.add(person.name)
            names.update(part for part in person.name.split() if len(part) >= 4)
    return names


async def run_fhir_load(stack: Settings, keyring: Keyring, client: Client, export: Path) -> str:
    settings = stack.model_copy(
        update={
            "clinical_task_queue": f"phi-clinical-{uuid.uuid4()}",
            "clinical_process_pool_size": 1,
            "clinical_lineage_file": stack.home / f"lineage-{uuid.uuid4().hex}.ndjson",
        }
    )
    deps = await Deps.open(settings, keyring)
    try:
        ((queue, plan),) = clinical_plan(settings, deps).items()
        async with build_worker(client, settings, task_queue=queue, plan=plan):
            async with ObjectStore(settings, keyring) as store:
                inputs = await prepare_local(store, settings, "fhir", export)
            sub = await submit_batch(
                client, settings, "fhir", f"phi-{uuid.uuid4().hex[:8]}", inputs
            )
            result = await sub.handle.result()
            assert result.report.valid > 0
        acts: Any = plan.activities[0].__self__  # type: ignore[attr-defined]
        if acts.executor is not None:
            acts.executor.shutdown(wait=True)
    finally:
        await deps.close()
    return sub.batch_id


async def test_no_phi_in_logs_histories_or_search_attributes(
    stack: Settings,
    keyring: Keyring,
    temporal_client: Client,
    captured_logs: io.StringIO,
    tmp_path: Path,
) -> None:
    export = corpus_path("fhir", "sample-bulk-10-patients")
    phi = fhir_patient_phi(export / "Patient.000.ndjson") | packet_people()
    assert len(phi) > 50, "the inputs must hold PHI for this test to mean anything"
    control = {"inputs": [(export / "Patient.000.ndjson").read_bytes()]}
    assert len(hits(phi, control)) > 50, "the scanner finds PHI where it is"

    # 1. A packet batch across two regions (one packet blocks for review).
    demo = {p.name: p for p in generate_demo_packets(tmp_path / "packets", only=PACKETS)}
    async with packet_workers(stack, keyring, temporal_client) as env:
        inputs = [await env.make_input(Path(demo[n].path)) for n in PACKETS]
        batch_id = uuid.uuid4().hex
        handle = await start_batch(env.client, env.settings, env.store, inputs, batch_id=batch_id)
        summary = await handle.result()
        assert summary.settled == len(PACKETS)
    packet_ids = {i.packet_id for i in inputs} | {f"packet-batch-{batch_id}"}

    # 2. A FHIR bulk load of real Synthea patients.
    clinical_id = await run_fhir_load(stack, keyring, temporal_client, export)

    # 3. Search everywhere.
    everything = await raw_histories(temporal_client)
    ours = {
        where: texts
        for where, texts in everything.items()
        if where.split("/", 1)[0] in packet_ids or where.startswith(clinical_id)
    }
    assert any(w.startswith(clinical_id) for w in ours), "the FHIR batch's history was scanned"
    assert sum(w.split("/", 1)[0] in packet_ids for w in ours) >= len(PACKETS) + 1
    haystacks = dict(ours)
    log_text = captured_logs.getvalue()
    assert "clinical" in log_text or "packet" in log_text, "the workers' logs were captured"
    haystacks["worker log"] = [log_text.encode()]
    haystacks["temporal server log"] = [(stack.home / "logs" / "temporal.log").read_bytes()]
    found = hits(phi, haystacks)
    assert found == [], f"PHI found: {found[:10]}"
