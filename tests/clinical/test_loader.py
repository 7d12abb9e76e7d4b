"""Loads into the stack's PostgreSQL: idempotent merge, newer wins, watermarks, quarantine."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest

from clinflow.clinical import (
    FhirRow,
    ProcessContext,
    Processed,
    Quarantined,
    ValidationReport,
    aesgcm_sealer,
    commit_watermark,
    discover_inputs,
    finish_batch,
    get_watermark,
    insert_quarantine,
    iter_ndjson_range,
    load_chunk,
    process_ndjson_lines,
    read_file_range,
    start_batch,
)
from clinflow.clinical.copy_rows import CopyRows, CopyRowsBuilder
from clinflow.clinical.loader import load_copy_rows
from clinflow.clinical.quarantine_store import open_sealed
from tests.clinical.conftest import fhir_export

pytestmark = pytest.mark.stack

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = timedelta(minutes=1)


def row(rid: str, when: datetime, note: str = "", *, from_meta: bool = True) -> FhirRow:
    body = orjson.dumps(
        {"resourceType": "Basic", "id": rid, "meta": {"lastUpdated": when.isoformat()},
         "code": {"text": note}}
    )  # fmt: skip
    return FhirRow(
        resource_type="Basic",
        id=rid,
        version_id=None,
        last_updated=when,
        last_updated_from_meta=from_meta,
        body=body,
        content_sha256=hashlib.sha256(body).hexdigest(),
    )


async def snapshot(conn: asyncpg.Connection, source: str) -> list[tuple[object, ...]]:
    """Every column plus the physical row version: a rewrite would change xmin/ctid."""
    rows = await conn.fetch(
        "SELECT resource_type, id, version_id, last_updated, source_system, batch_id,"
        " body::text, content_sha256, xmin::text, ctid::text"
        " FROM fhir_resources WHERE source_system = $1 ORDER BY resource_type, id",
        source,
    )
    return [tuple(r) for r in rows]


async def test_corpus_load_twice_is_identical(pg: asyncpg.Connection, unique: str) -> None:
    source = f"synthea-{unique}"
    inputs = discover_inputs(fhir_export("sample-bulk-10-patients"))
    report = ValidationReport()
    rows: list[FhirRow] = []
    for info in inputs.files:
        ctx = ProcessContext(
            source_uri=info.uri,
            expected_resource_type=info.resource_type,
            fallback_last_updated=inputs.transaction_time,
        )
        lines = iter_ndjson_range(read_file_range(Path(info.uri)))
        for result in process_ndjson_lines(lines, ctx, report):
            if isinstance(result, Processed):
                # Ids are made unique per test so the session database can be shared.
                doc = orjson.loads(result.row.body)
                doc["id"] = f"{unique}-{doc['id']}"[:64]
                body = orjson.dumps(doc)
                rows.append(result.row.model_copy(update={
                    "id": doc["id"], "body": body,
                    "content_sha256": hashlib.sha256(body).hexdigest(),
                }))  # fmt: skip
    assert len(rows) == report.valid > 7000

    first = await load_chunk(pg, rows, "batch-1", source)
    assert (first.inserted, first.updated, first.skipped) == (len(rows), 0, 0)
    count = await pg.fetchval(
        "SELECT count(*) FROM fhir_resources WHERE source_system = $1", source
    )
    assert count == report.valid  # rows in PostgreSQL == valid lines in the files
    before = await snapshot(pg, source)

    second = await load_chunk(pg, rows, "batch-2", source)
    assert (second.inserted, second.updated, second.skipped) == (0, 0, len(rows))
    assert await snapshot(pg, source) == before


async def test_newer_wins_older_and_equal_skipped(pg: asyncpg.Connection, unique: str) -> None:
    source = f"merge-{unique}"
    a, b = f"{unique}-a", f"{unique}-b"
    counts = await load_chunk(pg, [row(a, T0, "v1"), row(b, T0, "v1")], "b1", source)
    assert (counts.inserted, counts.updated, counts.skipped) == (2, 0, 0)

    newer, older = T0 + timedelta(hours=1), T0 - timedelta(hours=1)
    counts = await load_chunk(
        pg, [row(a, newer, "v2"), row(b, older, "v0"), row(b, T0, "changed")], "b2", source
    )
    assert (counts.inserted, counts.updated, counts.skipped) == (0, 1, 2)
    stored = {
        r["id"]: (r["last_updated"], orjson.loads(r["body"])["code"]["text"], r["batch_id"])
        for r in await pg.fetch(
            "SELECT id, last_updated, body::text AS body, batch_id FROM fhir_resources"
            " WHERE source_system = $1",
            source,
        )
    }
    assert stored[a] == (newer, "v2", "b2")
    assert stored[b] == (T0, "v1", "b1")


async def test_duplicate_keys_in_one_chunk(pg: asyncpg.Connection, unique: str) -> None:
    source = f"dup-{unique}"
    rid = f"{unique}-d"
    later = T0 + timedelta(minutes=5)
    counts = await load_chunk(pg, [row(rid, T0, "old"), row(rid, later, "new")], "b", source)
    assert (counts.inserted, counts.skipped) == (1, 1)
    body = await pg.fetchval("SELECT body::text FROM fhir_resources WHERE id = $1", rid)
    assert orjson.loads(body)["code"]["text"] == "new"


async def test_watermark_discards_older_records(pg: asyncpg.Connection, unique: str) -> None:
    source = f"wm-{unique}"
    assert await get_watermark(pg, source) is None
    first = await load_chunk(pg, [row(f"{unique}-1", T0 + timedelta(days=1))], "b1", source)
    assert first.max_last_updated == T0 + timedelta(days=1)
    assert await commit_watermark(pg, source, first.max_last_updated, "b1")
    assert not await commit_watermark(pg, source, T0, "b0")  # never moves back
    before = await pg.fetchrow("SELECT * FROM source_watermarks WHERE source_system=$1", source)
    assert not await commit_watermark(pg, source, T0 + timedelta(days=1), "b1")  # no-op
    after = await pg.fetchrow("SELECT * FROM source_watermarks WHERE source_system=$1", source)
    assert before == after

    mark = await get_watermark(pg, source)
    assert mark == T0 + timedelta(days=1)
    rows = [
        row(f"{unique}-old", T0),  # older than the watermark: discarded
        row(f"{unique}-new", T0 + timedelta(days=2)),
        row(f"{unique}-nometa", T0, from_meta=False),  # fallback time: never discarded
    ]
    counts = await load_chunk(pg, rows, "b2", source, watermark=mark)
    assert counts.discarded_below_watermark == 1
    assert counts.inserted == 2
    kept = await load_chunk(pg, [row(f"{unique}-old", T0)], "b3", source, watermark=mark,
                            policy="keep")  # fmt: skip
    assert kept.inserted == 1 and kept.discarded_below_watermark == 0


async def test_quarantine_rows_sealed_and_idempotent(pg: asyncpg.Connection, unique: str) -> None:
    batch = f"qb-{unique}"
    lines = [b'{"resourceType": "Patient"', b'{"resourceType": "Nope", "id": "1"}']
    report = ValidationReport()
    results = list(
        process_ndjson_lines(iter_ndjson_range([b"\n".join(lines)]), ProcessContext(
            source_uri="s3://b/k.ndjson"), report)
    )  # fmt: skip
    records = [r.record for r in results if isinstance(r, Quarantined)]
    assert len(records) == 2
    key = os.urandom(32)
    seal = aesgcm_sealer("payload-k1", key)
    assert await start_batch(pg, batch, "src", "fhir")
    assert not await start_batch(pg, batch, "src", "fhir")
    assert await insert_quarantine(pg, records, batch, "src", seal=seal) == 2
    snap = await pg.fetch("SELECT * FROM quarantine WHERE batch_id = $1 ORDER BY byte_offset",
                          batch)  # fmt: skip
    assert await insert_quarantine(pg, records, batch, "src", seal=seal) == 0  # retry
    assert (
        await pg.fetch("SELECT * FROM quarantine WHERE batch_id = $1 ORDER BY byte_offset", batch)
        == snap
    )
    assert [r["reason_code"] for r in snap] == ["INVALID_JSON", "UNKNOWN_RESOURCE_TYPE"]
    assert all(lines[0] not in bytes(r["raw_ciphertext"]) for r in snap)
    assert open_sealed(key, bytes(snap[0]["raw_ciphertext"])) == lines[0]
    assert await finish_batch(pg, batch, "completed", report)
    assert not await finish_batch(pg, batch, "completed", report)


def copy_rows(rows: list[FhirRow], batch: str, source: str) -> CopyRows:
    builder = CopyRowsBuilder(source_system=source, batch_id=batch)
    for r in rows:
        builder.add(r)
    return builder.build()


async def test_new_keys_go_straight_in_stored_keys_are_merged(
    pg: asyncpg.Connection, unique: str
) -> None:
    """New keys are COPYed straight into the table; a chunk meeting a stored key is refused
    there (leaving nothing behind) and merged; the result equals the merge's either way."""
    source = f"direct-{unique}"
    ids = [f"{unique}-{i}" for i in range(5)]
    fresh = copy_rows([row(i, T0, "v1") for i in ids[:3]], "b1", source)
    async with pg.transaction():
        counts, refused = await load_copy_rows(pg, fresh)
    assert (counts.inserted, counts.updated, counts.skipped, refused) == (3, 0, 0, False)
    before = await snapshot(pg, source)

    again, refused = await load_copy_rows(pg, copy_rows([row(i, T0, "v1") for i in ids[:3]],
                                                        "b2", source))  # fmt: skip
    assert (again.inserted, again.updated, again.skipped, refused) == (0, 0, 3, True)
    assert await snapshot(pg, source) == before  # the refused COPY left no row, no version

    mixed = [row(ids[0], T0 + timedelta(hours=1), "v2"), row(ids[3], T0), row(ids[4], T0)]
    counts, refused = await load_copy_rows(pg, copy_rows(mixed, "b3", source))
    assert (counts.inserted, counts.updated, counts.skipped, refused) == (2, 1, 0, True)

    # Told not to try (a reload), or holding a key twice: merged without a refusal.
    counts, refused = await load_copy_rows(
        pg, copy_rows([row(ids[1], T0)], "b4", source), insert_first=False
    )
    assert (counts.skipped, refused) == (1, False)
    twice = copy_rows([row(f"{unique}-t", T0, "a"), row(f"{unique}-t", T0 + T1, "b")], "b5",
                      source)  # fmt: skip
    assert not twice.unique_keys
    counts, refused = await load_copy_rows(pg, twice)
    assert (counts.inserted, counts.skipped, refused) == (1, 1, False)
    stored = {
        r["id"]: (r["batch_id"], orjson.loads(r["body"])["code"]["text"])
        for r in await pg.fetch(
            "SELECT id, batch_id, body::text AS body FROM fhir_resources WHERE source_system = $1",
            source,
        )
    }
    assert stored == {
        ids[0]: ("b3", "v2"), ids[1]: ("b1", "v1"), ids[2]: ("b1", "v1"),
        ids[3]: ("b3", ""), ids[4]: ("b3", ""), f"{unique}-t": ("b5", "b"),
    }  # fmt: skip
