"""Parts of the clinical batch flow: ranged decrypting reads, chunk signatures, lineage events."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from openlineage.client.serde import Serde

from activities.clinical_transform import FhirChunk, raw_items, transform_fhir_chunk
from clinflow.clinical import ProcessContext, iter_ndjson_range
from clinflow.clinical.chunk_signing import (
    ChunkTampered,
    chunk_key,
    sign_output,
    sign_raw,
    verify_output,
    verify_raw,
)
from clinflow.clinical.lineage import LineageDataset, LineageRun, build_event, run_id
from clinflow.envelope import EnvelopeError
from clinflow.keyring import Keyring
from clinflow.object_store import ObjectStore
from clinflow.settings import Settings

MiB = 1024 * 1024


@pytest.mark.stack
async def test_download_range_matches_plaintext_for_any_range(
    stack: Settings, keyring: Keyring
) -> None:
    data = os.urandom(3 * MiB + 12345)
    bucket, key = stack.s3_bucket_batches, f"test/range-{uuid.uuid4()}"
    ranges = [
        (0, 10), (0, None), (MiB - 1, MiB + 1), (MiB, 2 * MiB), (5, 3 * MiB + 12345),
        (3 * MiB, None), (len(data) - 1, len(data) + 100), (2 * MiB + 7, 2 * MiB + 7),
    ]  # fmt: skip
    async with ObjectStore(stack, keyring) as store:
        for plain in (False, True):
            await store.put_bytes(bucket, key, data, plain=plain)
            for start, end in ranges:
                got = b"".join([c async for c in store.download_range(bucket, key, start, end)])
                assert got == data[start:end], (plain, start, end)
        # Flip one ciphertext byte in the third segment: ranges over it fail, others still open.
        await store.put_bytes(bucket, key, data)
        head = await store.client.head_object(Bucket=bucket, Key=key)
        resp = await store.client.get_object(Bucket=bucket, Key=key)
        async with resp["Body"] as body:
            stored = bytearray(await body.read())
        stored[len(stored) - MiB - 100] ^= 1
        await store.client.put_object(
            Bucket=bucket, Key=key, Body=bytes(stored), Metadata=head["Metadata"]
        )
        with pytest.raises(EnvelopeError):
            _ = [c async for c in store.download_range(bucket, key, 2 * MiB, 3 * MiB)]
        ok = b"".join([c async for c in store.download_range(bucket, key, 0, MiB)])
        assert ok == data[:MiB]
        await store.delete(bucket, key)


def test_chunk_signatures_detect_tampering_between_stages() -> None:
    ring = Keyring.generate()
    key = chunk_key(ring)
    text = b'{"resourceType":"Patient","id":"p1","gender":"female"}\n{"resourceType":"Patient"}\n'
    lines = list(iter_ndjson_range([text]))
    items = raw_items(lines)
    sig = sign_raw(key, "batch/0000-000000", items)
    verify_raw(key, "batch/0000-000000", items, sig)
    with pytest.raises(ChunkTampered):
        verify_raw(key, "batch/0000-000001", items, sig)  # another partition's chunk
    altered = [(items[0][0], items[0][1].replace(b"female", b"male")), items[1]]
    with pytest.raises(ChunkTampered):
        verify_raw(key, "batch/0000-000000", altered, sig)
    with pytest.raises(ChunkTampered):
        verify_raw(chunk_key(Keyring.generate()), "batch/0000-000000", items, sig)

    ctx = ProcessContext(source_uri="s3://b/k", expected_resource_type="Patient")
    out = transform_fhir_chunk(FhirChunk("batch/0000-000000", lines, sig, ctx, key))
    assert len(out.rows) == 1 and len(out.records) == 1
    verify_output(key, "batch/0000-000000", out.rows, out.records, out.signature)
    out.rows[0] = out.rows[0].model_copy(update={"body": out.rows[0].body + b" "})
    with pytest.raises(ChunkTampered):
        verify_output(key, "batch/0000-000000", out.rows, out.records, out.signature)
    with pytest.raises(ChunkTampered):
        verify_output(key, "batch/0000-000000", out.rows, [], sign_output(key, "x", [], []))
    with pytest.raises(ChunkTampered):  # the transformer refuses a raw chunk altered in transit
        transform_fhir_chunk(FhirChunk("batch/0000-000000", lines[:1], sig, ctx, key))


def test_lineage_events_name_inputs_outputs_and_share_a_run_id() -> None:
    run = LineageRun(
        batch_id="clinical-fhir-src-abc",
        attempt_token="run-1",
        kind="fhir",
        source_system="src",
        inputs=[LineageDataset(namespace="s3://clinflow-batches", name="clinical/inputs/aa")],
        outputs=[LineageDataset(namespace="postgres://h:1", name="db.public.fhir_resources",
                                rows=7)],
    )  # fmt: skip
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    start = orjson.loads(Serde.to_json(build_event(run, "START", when)))
    fail = orjson.loads(Serde.to_json(build_event(run, "FAIL", when, "partition failed")))
    assert start["eventType"] == "START" and fail["eventType"] == "FAIL"
    assert start["run"]["runId"] == fail["run"]["runId"] == run_id(run.batch_id, "run-1")
    assert run_id(run.batch_id, "run-2") != start["run"]["runId"]
    assert start["job"] == {"namespace": "clinflow", "name": "clinical_batch.fhir"} | {
        k: v for k, v in start["job"].items() if k not in ("namespace", "name")
    }
    assert start["inputs"][0]["name"] == "clinical/inputs/aa"
    assert start["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 7
    assert fail["run"]["facets"]["errorMessage"]["message"] == "partition failed"
