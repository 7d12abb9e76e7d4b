"""Throughput of FHIR record processing (parse + normalise + validate) against baselines.

Builds an NDJSON file from the Synthea corpus (``--copies`` copies with fresh ids), then, in
the same run and on the same records, measures:

1. baseline: ``orjson.loads`` per line;
2. validate-only: ``orjson.loads`` + ``fhir.resources.R4B`` validation per line;
3. full: ``process_fhir_line`` (parse, checks, normalisation, validation, row building),
   first in this process, then over the file's partitions in a process pool (``--workers``).

Prints records/s, MB/s, the ratios, and peak RSS of this process and of the pool workers.
Usage: ``.venv/bin/python bench/bench_fhir_load.py --copies 3 --workers 2``
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import orjson

from clinflow.clinical import (
    Partition,
    ProcessContext,
    Processed,
    iter_ndjson_range,
    plan_partitions,
    process_fhir_line,
    read_file_range,
)
from clinflow.clinical.fhir_validate import validate_resource

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "fhir"


def build_input(copies: int, out: Path) -> int:
    """Write ``copies`` of every Synthea line (ids made unique per copy); returns the line count."""
    sources = sorted((CORPUS / "sample-bulk-10-patients").glob("*.000.ndjson"))
    if not sources:
        sys.exit(f"corpus not found under {CORPUS}")
    n = 0
    with out.open("wb") as fh:
        for copy in range(copies):
            for src in sources:
                for line in src.read_bytes().splitlines():
                    if not line.strip():
                        continue
                    doc = orjson.loads(line)
                    doc["id"] = f"c{copy}-{doc['id']}"[:64]
                    fh.write(orjson.dumps(doc) + b"\n")
                    n += 1
    return n


def lines_of(path: Path) -> list[bytes]:
    return [line.data for line in iter_ndjson_range(read_file_range(path))]


def timed(label: str, fn: object, lines: list[bytes], size: int) -> float:
    start = time.perf_counter()
    assert callable(fn)
    for line in lines:
        fn(line)
    elapsed = time.perf_counter() - start
    rate = len(lines) / elapsed
    print(f"{label:<34} {rate:>10,.0f} records/s {size / elapsed / 1e6:>8.1f} MB/s")
    return rate


def validate_only(line: bytes) -> None:
    validate_resource(orjson.loads(line))


CTX = ProcessContext(source_uri="bench")


def full(line: bytes) -> None:
    process_fhir_line(line, CTX)


def run_partition(part: Partition) -> tuple[int, int, int]:
    """Process one partition in a worker; returns (records, valid, peak RSS KiB)."""
    path = Path(part.uri)
    records = valid = 0
    for line in iter_ndjson_range(read_file_range(path, part.start, part.end), part.start):
        result = process_fhir_line(line, CTX)
        records += 1
        valid += isinstance(result, Processed)
    return records, valid, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--partition-mb", type=float, default=4.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.ndjson"
        count = build_input(args.copies, path)
        size = path.stat().st_size
        print(f"input: {count:,} records, {size / 1e6:.1f} MB ({args.copies} corpus copies)")
        lines = lines_of(path)
        full(lines[0])  # warm caches (model classes, unit registry) outside the timings
        base = timed("baseline orjson.loads", orjson.loads, lines, size)
        val = timed("validate-only (orjson + R4B)", validate_only, lines, size)
        one = timed("full process_fhir_line, 1 proc", full, lines, size)
        del lines

        parts = plan_partitions(path, int(args.partition_mb * 1024 * 1024))
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            results = list(pool.map(run_partition, parts))
        elapsed = time.perf_counter() - start
        pooled = sum(r[0] for r in results) / elapsed
        print(
            f"{'full, ' + str(args.workers) + ' workers, ' + str(len(parts)) + ' parts':<34} "
            f"{pooled:>10,.0f} records/s {size / elapsed / 1e6:>8.1f} MB/s"
        )
        print(f"ratio full/baseline (1 proc):       {one / base:.3f}")
        print(f"ratio full/validate-only (1 proc):  {one / val:.3f}")
        print(f"ratio pooled/validate-only (1 proc): {pooled / val:.3f}")
        main_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS main process: {main_rss:.0f} MB")
        print(f"peak RSS per worker:   {max(r[2] for r in results) / 1024:.0f} MB")


if __name__ == "__main__":
    main()
