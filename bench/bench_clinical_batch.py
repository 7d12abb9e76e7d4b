"""End-to-end throughput of clinical FHIR batches through Temporal, against in-process baselines.

Starts a throw-away local stack, generates a bulk export by multiplying the Synthea corpus with
fresh ids (``--copies``), then, in the same run and on the same machine:

1. baselines in this process, one core: ``orjson.loads`` per line; validate-only
   (``orjson`` + ``fhir.resources.R4B``); the full domain pipeline (``process_fhir_line``);
2. end to end through Temporal (store inputs, plan, partitions, validate, COPY + merge,
   finish) with worker layouts to compare:
   ``pool``  one worker process validating in a 2-process ``ProcessPoolExecutor``;
   ``procs`` two worker processes validating in a thread each (no pool).

Prints records/s, MB/s, the ratio to the validate-only and domain baselines (x2 for two
cores), and the peak RSS of every worker process (pool children included).
Usage: ``.venv/bin/python bench/bench_clinical_batch.py --copies 15 --modes pool,procs``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import orjson
import psutil

from clinflow.clinical import ProcessContext, process_fhir_line
from clinflow.clinical.fhir_validate import validate_resource
from clinflow.keyring import Keyring
from clinflow.object_store import ObjectStore
from clinflow.settings import Settings
from clinflow.stack import WEED_PORT_SPAN, LocalStack, free_port_block

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "fhir" / "sample-bulk-10-patients"


def build_export(out: Path, copies: int, tag: str) -> tuple[int, int]:
    """One NDJSON file per resource type, ``copies`` copies with fresh ids; (records, bytes)."""
    out.mkdir(parents=True)
    n = size = 0
    for src in sorted(CORPUS.glob("*.000.ndjson")):
        lines = [orjson.loads(line) for line in src.read_bytes().splitlines() if line.strip()]
        with (out / src.name).open("wb") as fh:
            for copy in range(copies):
                for doc in lines:
                    doc = dict(doc)
                    doc["id"] = f"{tag}{copy}-{doc['id']}"[:64]
                    data = orjson.dumps(doc) + b"\n"
                    fh.write(data)
                    n += 1
                    size += len(data)
    return n, size


def baselines(folder: Path) -> dict[str, float]:
    lines = [line for p in sorted(folder.glob("*.ndjson")) for line in p.read_bytes().splitlines()]
    ctx = ProcessContext(source_uri="bench")
    rates = {}
    for label, fn in (
        ("parse only (orjson)", orjson.loads),
        ("validate only (orjson + R4B)", lambda b: validate_resource(orjson.loads(b))),
        ("domain pipeline (process_fhir_line)", lambda b: process_fhir_line(b, ctx)),
    ):
        start = time.perf_counter()
        for line in lines:
            fn(line)
        rates[label] = len(lines) / (time.perf_counter() - start)
        print(f"  {label:<38} {rates[label]:>9,.0f} records/s (one core)")
    return rates


class RssSampler:
    """Peak RSS of each process (and its children) in a set of worker processes."""

    def __init__(self, pids: list[int]) -> None:
        self.peaks: dict[str, int] = {}
        self._procs = [psutil.Process(p) for p in pids]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for i, proc in enumerate(self._procs):
                try:
                    members = [proc, *proc.children(recursive=True)]
                except psutil.Error:
                    continue
                for m in members:
                    try:
                        label = f"worker{i}" if m.pid == proc.pid else f"worker{i}/child{m.pid}"
                        rss = m.memory_info().rss
                    except psutil.Error:
                        continue
                    self.peaks[label] = max(self.peaks.get(label, 0), rss)
            self._stop.wait(0.2)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return self.peaks


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "workers.main"],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def run_mode(settings: Settings, mode: str, export: Path, records: int, size: int) -> float:
    from starters.clinical_cli import prepare_local, submit_batch
    from workers.client import connect_client

    queue = f"bench-{mode}-{uuid.uuid4().hex[:6]}"
    pool = 2 if mode == "pool" else 0
    count = 1 if mode == "pool" else 2
    wsettings = settings.model_copy(
        update={"clinical_task_queue": queue, "task_queue": queue + "-main",
                "clinical_process_pool_size": pool}
    )  # fmt: skip
    env = {**os.environ, **wsettings.to_env()}
    procs = [await asyncio.to_thread(start_worker, env) for _ in range(count)]
    try:
        keyring = Keyring.load(settings)
        t0 = time.perf_counter()
        async with ObjectStore(settings, keyring) as store:
            inputs = await prepare_local(store, wsettings, "fhir", export)
        t_store = time.perf_counter() - t0
        client = await connect_client(settings, keyring)
        sampler = RssSampler([p.pid for p in procs])
        t1 = time.perf_counter()
        sub = await submit_batch(client, wsettings, "fhir", f"bench-{mode}", inputs)
        result = await sub.handle.result()
        elapsed = time.perf_counter() - t1
        peaks = sampler.stop()
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, 15)
        for p in procs:
            p.wait(60)
    assert result.report.valid == records, (result.report.valid, records)
    rate = records / elapsed
    print(
        f"  [{mode}] store inputs {t_store:.1f}s; batch {elapsed:.1f}s: {rate:,.0f} records/s, "
        f"{size / elapsed / 1e6:.1f} MB/s; partitions {result.partitions}, runs {result.runs}"
    )
    for label, rss in sorted(peaks.items()):
        print(f"      peak RSS {label:<22} {rss / 1e6:7.0f} MB")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=15)
    parser.add_argument("--modes", default="pool,procs")
    parser.add_argument("--partition-mb", type=float, default=8.0)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    if not CORPUS.is_dir():
        sys.exit(f"corpus not found at {CORPUS}")
    home = Path(tempfile.mkdtemp(prefix="clinflow-bench-"))
    os.chmod(home, 0o755)
    base = free_port_block(4, 30000, 40000)
    settings = Settings(
        home=home,
        temporal_address=f"127.0.0.1:{base}",
        temporal_ui_port=base + 1,
        s3_endpoint_url=f"http://127.0.0.1:{base + 2}",
        pg_port=base + 3,
        stack_weed_base_port=free_port_block(WEED_PORT_SPAN, 40000, 50000),
        clinical_partition_bytes=int(args.partition_mb * 1024 * 1024),
        clinical_max_parallel_partitions=args.parallel,
        clinical_lineage_transport="none",
    )
    stack = LocalStack(settings)
    try:
        stack.up()
        modes = [m for m in args.modes.split(",") if m]
        exports = {}
        for mode in modes:
            folder = home / f"export-{mode}"
            records, size = build_export(folder, args.copies, f"b{mode[:2]}")
            exports[mode] = folder
        print(f"export: {records:,} records, {size / 1e6:.1f} MB per mode, "
              f"{len(list(folder.glob('*.ndjson')))} files")  # fmt: skip
        print("baselines (this process):")
        base_rates = baselines(exports[modes[0]])
        print("end to end through Temporal:")
        for mode in modes:
            rate = asyncio.run(run_mode(settings, mode, exports[mode], records, size))
            validate = base_rates["validate only (orjson + R4B)"]
            domain = base_rates["domain pipeline (process_fhir_line)"]
            print(f"      ratio to validate-only x2 cores: {rate / (2 * validate):.2f}; "
                  f"to domain pipeline x2 cores: {rate / (2 * domain):.2f}; "
                  f"to domain pipeline one core: {rate / domain:.2f}")  # fmt: skip
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
