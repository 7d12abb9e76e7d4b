"""The block path (raw blocks to the transform, binary COPY tuples back) equals the line-by-line
path."""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import pytest

from activities.clinical_transform import (
    FhirBlockChunk,
    FhirChunk,
    raw_block_items,
    raw_items,
    transform_fhir_block,
    transform_fhir_chunk,
)
from clinflow.clinical import ProcessContext, ValidationReport, iter_ndjson_range
from clinflow.clinical.chunk_signing import ChunkKey, ChunkTampered, sign_raw, verify_copy_output
from clinflow.clinical.copy_rows import CopyRowsBuilder, pg_micros
from clinflow.clinical.ndjson_blocks import RawBlock, aiter_ndjson_blocks, block_line_fields
from clinflow.clinical.ndjson_reader import LineSplitter

KEY = ChunkKey("k1", b"\x01" * 32)
CTX = ProcessContext(source_uri="s3://b/Patient.ndjson", expected_resource_type="Patient")


def patient(i: int, stamp: str = "2024-01-02T03:04:05+00:00") -> bytes:
    doc = {
        "resourceType": "Patient",
        "id": f"p{i}",
        "meta": {"versionId": str(i % 3), "lastUpdated": stamp},
        "name": [{"family": f"Tab\there{i}", "given": ["Back\\slash"]}],
        "birthDate": "1970-01-01",
    }
    return orjson.dumps(doc)


def export_bytes() -> bytes:
    lines = [patient(i) for i in range(40)]
    lines.insert(5, b"")  # blank
    lines.insert(9, b"{not json")
    lines.insert(13, b'{"resourceType": "Patient", "id": "x", "' + b"a" * 3000 + b'": 1}')
    lines.insert(17, b"\xff\xfe")
    lines.insert(21, orjson.dumps({"resourceType": "Observation", "id": "o1"}))
    lines.insert(25, patient(99, "2023-01-01T00:00:00"))  # no offset: coerced
    lines.insert(30, b"x" * 5000)  # over-long at max_line_bytes=2048
    return b"\r\n".join(lines[:20]) + b"\n" + b"\n".join(lines[20:])  # last line unterminated


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def line_path(data: bytes, max_line: int, resume: int, mark: datetime | None) -> tuple:
    keep = min(1024, max_line)
    lines = list(
        iter_ndjson_range([data], 0, None, max_line_bytes=max_line, keep_prefix=keep,
                          resume_from=resume)
    )  # fmt: skip
    sig = sign_raw(KEY, "c", raw_items(lines))
    out = transform_fhir_chunk(FhirChunk("c", lines, sig, CTX, KEY))
    builder = CopyRowsBuilder(mark, "discard")
    for row in out.rows:
        builder.add(row)
    return builder.build(), out.records, out.report


def block_path(data: bytes, max_line: int, resume: int, mark: datetime | None, feed: int) -> tuple:
    keep = min(1024, max_line)

    async def items() -> list[RawBlock | object]:
        return [
            item
            async for item in aiter_ndjson_blocks(
                _chunks(data, feed), 0, None, max_lines=7, max_bytes=4096,
                max_line_bytes=max_line, keep_prefix=keep, resume_from=resume,
            )
        ]  # fmt: skip

    rows, records, report = b"", [], ValidationReport()
    kept = received = discarded = 0
    for item in asyncio.run(items()):
        sig = sign_raw(KEY, "c", raw_block_items(item))  # type: ignore[arg-type]
        chunk = FhirBlockChunk("c", item, sig, CTX, KEY, max_line, keep, resume, mark, "discard")  # type: ignore[arg-type]
        out = transform_fhir_block(chunk)
        verify_copy_output(KEY, "c", out.rows.data, out.rows.summary(), out.records, out.signature)
        rows += out.rows.data
        records += out.records
        report = report.merge(out.report)
        kept, received = kept + out.rows.kept, received + out.rows.received
        discarded += out.rows.discarded_below_watermark
    return rows, records, report, (kept, received, discarded)


@pytest.mark.parametrize("max_line", [2048, 1 << 20])
@pytest.mark.parametrize("resume", [0, 777])
@pytest.mark.parametrize("feed", [13, 1000, 1 << 20])
def test_block_path_matches_line_path(max_line: int, resume: int, feed: int) -> None:
    data = export_bytes()
    mark = datetime(2023, 6, 1, tzinfo=UTC)
    ref, ref_records, ref_report = line_path(data, max_line, resume, mark)
    rows, records, report, (kept, received, discarded) = block_path(
        data, max_line, resume, mark, feed
    )
    assert rows == ref.data
    assert (kept, received, discarded) == (ref.kept, ref.received, ref.discarded_below_watermark)
    assert report == ref_report
    assert [r.model_dump() for r in records] == [r.model_dump() for r in ref_records]
    assert ref_report.quarantined  # the bad lines are there to be compared
    if max_line == 2048:
        assert ref_report.quarantined.get("LINE_TOO_LONG", 0) >= 1


def copy_tuples(data: bytes) -> list[list[bytes | None]]:
    """Decode binary COPY tuples (no header or trailer) into their field values."""
    rows, pos = [], 0
    while pos < len(data):
        (count,) = struct.unpack_from("!h", data, pos)
        pos += 2
        fields: list[bytes | None] = []
        for _ in range(count):
            (size,) = struct.unpack_from("!i", data, pos)
            pos += 4
            if size < 0:
                fields.append(None)
                continue
            fields.append(data[pos : pos + size])
            pos += size
        rows.append(fields)
    return rows


def test_copy_rows_binary_and_watermark() -> None:
    lines = [patient(1, "2020-01-01T00:00:00+00:00"), patient(2, "2025-01-01T00:00:00+00:00")]
    data = b"\n".join(lines) + b"\n"
    item = RawBlock(0, 0, data, 2)
    mark = datetime(2024, 1, 1, tzinfo=UTC)
    chunk = FhirBlockChunk(
        "c", item, sign_raw(KEY, "c", raw_block_items(item)), CTX, KEY, 1 << 20, 1024, 0, mark,
        "discard", "src", "batch-1",
    )  # fmt: skip
    out = transform_fhir_block(chunk).rows
    assert (out.kept, out.received, out.discarded_below_watermark) == (1, 2, 1)
    assert out.max_last_updated == datetime(2025, 1, 1, tzinfo=UTC)
    [fields] = copy_tuples(out.data)
    stamp = struct.pack("!q", pg_micros(datetime(2025, 1, 1, tzinfo=UTC)))
    assert fields[:6] == [b"Patient", b"p2", b"2", stamp, b"src", b"batch-1"]
    assert fields[6] == b"\x01" + lines[1]  # jsonb: version 1, the body as received
    assert fields[7] is not None and len(fields[7]) == 64
    assert pg_micros(datetime(2000, 1, 1, 0, 0, 1)) == 1_000_000  # naive is UTC


def test_block_tampering_is_detected() -> None:
    data = patient(1) + b"\n"
    item = RawBlock(0, 0, data, 1)
    sig = sign_raw(KEY, "c", raw_block_items(item))
    forged = RawBlock(0, 0, data.replace(b"p1", b"p2"), 1)
    chunk = FhirBlockChunk("c", forged, sig, CTX, KEY, 1 << 20, 1024, 0, None, "discard")
    with pytest.raises(ChunkTampered):
        transform_fhir_block(chunk)
    out = transform_fhir_block(
        FhirBlockChunk("c", item, sig, CTX, KEY, 1 << 20, 1024, 0, None, "discard")
    )
    with pytest.raises(ChunkTampered):
        verify_copy_output(
            KEY, "c", out.rows.data.replace(b"p1", b"p9"), out.rows.summary(), out.records,
            out.signature,
        )  # fmt: skip


@pytest.mark.parametrize("seed", range(20))
def test_block_line_fields_equal_the_line_splitter(seed: int) -> None:
    """Random blocks of short, exact-limit, over-long, blank, CR-only and unterminated lines."""
    rng = random.Random(seed)
    max_line, keep = 64, 16
    pieces = []
    for _ in range(rng.randrange(1, 40)):
        size = rng.choice([0, 1, max_line - 1, max_line, max_line + 1, rng.randrange(300)])
        body = bytes(rng.choice(b"ab {}\r\t") for _ in range(size))
        pieces.append(body + rng.choice([b"\n", b"\r\n", b"\n"]))
    if rng.random() < 0.5:
        pieces[-1] = pieces[-1].rstrip(b"\n")  # end of stream without a newline
    data = b"".join(pieces)
    offset, index = rng.randrange(10_000), rng.randrange(100)
    resume = offset + rng.randrange(len(data) + 1) if rng.random() < 0.5 else 0
    splitter = LineSplitter(
        offset, max_line_bytes=max_line, keep_prefix=keep, resume_from=resume, first_index=index
    )
    expected = [
        (line.offset, line.index, line.data, line.length, line.too_long)
        for line in splitter.feed(data) + splitter.finish()
    ]
    block = RawBlock(offset, index, data, len(pieces))
    got = list(
        block_line_fields(block, max_line_bytes=max_line, keep_prefix=keep, resume_from=resume)
    )
    assert got == expected
