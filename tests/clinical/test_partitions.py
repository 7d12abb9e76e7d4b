"""Partition planning and the streaming reader: exact, line-aligned, bounded."""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinflow.clinical import (
    aiter_ndjson_range,
    gunzip_chunks,
    iter_ndjson_range,
    plan_partitions,
    read_file_range,
)
from clinflow.clinical.partitions import aplan_partitions
from tests.clinical.conftest import fhir_export


def assert_exact_cover(path: Path, target: int) -> list[bytes]:
    data = path.read_bytes()
    parts = plan_partitions(path, target)
    assert [p.index for p in parts] == list(range(len(parts)))
    pos = 0
    lines: list[bytes] = []
    for part in parts:
        assert part.start == pos, "no gap, no overlap"
        assert part.end > part.start
        assert part.start == 0 or data[part.start - 1 : part.start] == b"\n", "line-aligned"
        pos = part.end
        chunks = read_file_range(path, part.start, part.end, chunk_size=7)
        got = list(iter_ndjson_range(chunks, part.start, part.end))
        for line in got:
            assert data[line.offset : line.offset + len(line.data)] == line.data
        lines.extend(line.data for line in got)
    assert pos == len(data)
    return lines


def expected_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def test_real_file_partitions_cover_exactly() -> None:
    path = fhir_export("sample-bulk-10-patients") / "Encounter.000.ndjson"
    for target in (1, 4096, 100_000, 10**9):
        lines = assert_exact_cover(path, target)
        assert lines == expected_lines(path.read_bytes())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=40),
    trailing_newline=st.booleans(),
    target=st.integers(min_value=1, max_value=300),
)
def test_generated_files_cover_exactly(
    lines: list[bytes], trailing_newline: bool, target: int
) -> None:
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gen.ndjson"
        path.write_bytes(data)
        got = assert_exact_cover(path, target)
    assert got == expected_lines(data)


def test_gzip_is_one_partition_and_streams(tmp_path: Path) -> None:
    src = fhir_export("sample-bulk-10-patients") / "Condition.000.ndjson"
    gz = tmp_path / "Condition.ndjson.gz"  # name says nothing; magic bytes decide
    gz.write_bytes(gzip.compress(src.read_bytes()))
    parts = plan_partitions(gz, 1024)
    assert len(parts) == 1 and parts[0].compressed
    lines = list(iter_ndjson_range(gunzip_chunks(read_file_range(gz, chunk_size=1000))))
    assert [line.data for line in lines] == expected_lines(src.read_bytes())


def test_resume_from_offset_skips_committed_lines() -> None:
    data = b"a\nbb\nccc\ndddd\n"
    all_lines = list(iter_ndjson_range([data]))
    resume = all_lines[2].offset
    rest = list(iter_ndjson_range([data], resume_from=resume))
    assert [line.data for line in rest] == [b"ccc", b"dddd"]
    assert [line.index for line in rest] == [2, 3]


def test_over_long_line_is_skipped_not_buffered() -> None:
    long = b"x" * 5000
    data = b"ok1\n" + long + b"\nok2\n" + long  # the last one has no newline
    for chunk_size in (1, 10, 4096, 100_000):
        chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
        got = list(iter_ndjson_range(chunks, max_line_bytes=1000, keep_prefix=16))
        assert [(g.data, g.too_long) for g in got] == [
            (b"ok1", False),
            (b"x" * 16, True),
            (b"ok2", False),
            (b"x" * 16, True),
        ]
        assert got[1].offset == 4 and got[1].length == 5001
        assert got[2].offset == 5005


async def test_async_reader_and_remote_planning_match_local(tmp_path: Path) -> None:
    path = fhir_export("sample-bulk-10-patients") / "Procedure.000.ndjson"
    data = path.read_bytes()
    local = plan_partitions(path, 50_000)

    async def read_range(start: int, end: int) -> bytes:
        return data[start:end]

    from clinflow.clinical.models import InputFile

    remote = await aplan_partitions(
        InputFile(uri=str(path), size=len(data)), read_range, 50_000, window=333
    )
    assert [(p.start, p.end) for p in remote] == [(p.start, p.end) for p in local]

    async def stream(start: int, end: int) -> AsyncIterator[bytes]:
        for i in range(start, end, 4096):
            yield data[i : min(i + 4096, end)]

    got: list[bytes] = []
    for part in remote:
        async for line in aiter_ndjson_range(stream(part.start, part.end), part.start, part.end):
            got.append(line.data)
    assert got == expected_lines(data)
