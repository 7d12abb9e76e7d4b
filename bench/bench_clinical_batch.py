"""End-to-end throughput of a clinical FHIR batch through Temporal, against same-run baselines.

Starts a throw-away local stack, streams to disk a bulk export of ``--size-gb`` GB made by
multiplying the Synthea corpus with fresh ids (never held in memory), then, on the same machine
and in the same run:

1. validate-only, two cores: a 2-process pool running only ``orjson.loads`` + fhir.resources
   R4B validation over a sample of the same records (``--sample-copies`` copies of the corpus
   per process), ``--validate-runs`` times before and as many after the batch (once its
   writes are flushed: a checkpoint and a sync); the median run is the baseline (one run
   disturbed by other work on the machine does not move it);
2. parse + COPY only (one process, no validation, no normalisation): ``orjson.loads``, key and
   version, binary COPY tuples, COPY + merge into PostgreSQL, over ``--copy-sample`` records;
3. end to end through Temporal: the inputs stored (claim check), then one ``ClinicalBatchWorkflow``
   run by one worker process (``python -m workers.main``) validating in its process pool.

Prints records/s and MB/s, the ratio to the validate-only rate and to the parse+COPY baseline,
and the peak RSS of every worker process (main and each pool process: the kernel's high-water
mark, read with psutil's process list).
Exits 1 when a target is missed: end to end >= ``--min-ratio`` (0.70) of validate-only, and
every worker process under ``--max-rss-mb`` (300).
Usage: ``.venv/bin/python bench/bench_clinical_batch.py --size-gb 1``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import psutil

from clinflow.clinical.copy_rows import CopyRowsBuilder
from clinflow.clinical.fhir_validate import validate_resource
from clinflow.clinical.loader import load_copy_rows
from clinflow.clinical.models import EPOCH, FhirRow
from clinflow.keyring import Keyring
from clinflow.object_store import ObjectStore
from clinflow.settings import Settings
from clinflow.stack import LocalStack, throwaway_settings

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "fhir" / "sample-bulk-10-patients"
GB = 1_000_000_000


def corpus_templates() -> dict[str, list[tuple[bytes, bytes]]]:
    """Per file: each record serialised around its id, as (before id, after id)."""
    out: dict[str, list[tuple[bytes, bytes]]] = {}
    for src in sorted(CORPUS.glob("*.000.ndjson")):
        pairs = []
        for line in src.read_bytes().splitlines():
            if not line.strip():
                continue
            doc = orjson.loads(line)
            doc["id"] = "\x00ID\x00"
            head, tail = orjson.dumps(doc).split(b"\\u0000ID\\u0000")
            pairs.append((head, tail + b"\n"))
        out[src.name] = pairs
    return out


def build_export(out: Path, size_bytes: int, tag: str) -> tuple[int, int]:
    """Stream NDJSON files (one per resource type) of about ``size_bytes`` in total to ``out``:
    copies of the corpus with fresh ids. Returns (records, bytes)."""
    out.mkdir(parents=True)
    templates = corpus_templates()
    corpus_bytes = sum(len(h) + len(t) + 20 for pairs in templates.values() for h, t in pairs)
    copies = max(1, round(size_bytes / corpus_bytes))
    records = written = 0
    for name, pairs in templates.items():
        with (out / name).open("wb", buffering=4 * 1024 * 1024) as fh:
            for copy in range(copies):
                prefix = f"{tag}{copy:05d}-".encode()
                block = b"".join(
                    b"".join((head, prefix, str(i).encode(), tail))
                    for i, (head, tail) in enumerate(pairs)
                )
                fh.write(block)
                records += len(pairs)
                written += len(block)
    return records, written


def sample_lines(folder: Path, limit: int) -> list[bytes]:
    """The first ``limit`` records of every file (the export's mix of resource types)."""
    lines: list[bytes] = []
    for path in sorted(folder.glob("*.ndjson")):
        with path.open("rb") as fh:
            for n, line in enumerate(fh):
                if n >= limit:
                    break
                lines.append(line)
    return lines


def _validate_only(lines: list[bytes]) -> tuple[int, float, float]:
    from clinflow.clinical.fhir_validate import resource_class

    for name in {orjson.loads(line)["resourceType"] for line in lines}:
        resource_class(name)
    start, cpu = time.perf_counter(), time.process_time()
    for line in lines:
        validate_resource(orjson.loads(line))
    return len(lines), time.perf_counter() - start, time.process_time() - cpu


def validate_only_two_cores(lines: list[bytes], runs: int) -> list[tuple[float, float]]:
    """Per run: (records/s of two processes each validating ``lines``, CPU seconds per
    record)."""
    out = []
    with ProcessPoolExecutor(2) as pool:
        for _ in range(runs):
            results = list(pool.map(_validate_only, [lines, lines]))
            rate = sum(n / elapsed for n, elapsed, _ in results)
            cpu = sum(c for _, _, c in results) / sum(n for n, _, _ in results)
            out.append((rate, cpu))
    return out


def _parse_row(line: bytes) -> FhirRow:
    doc = orjson.loads(line)
    meta = doc.get("meta") or {}
    stamp = meta.get("lastUpdated")
    body = line.rstrip(b"\n")
    return FhirRow(
        resource_type=doc["resourceType"],
        id="copybase-" + doc["id"],
        version_id=meta.get("versionId"),
        last_updated=datetime.fromisoformat(stamp) if stamp else EPOCH,
        last_updated_from_meta=bool(stamp),
        body=body,
        content_sha256=hashlib.sha256(body).hexdigest(),
    )


async def parse_copy_only(settings: Settings, lines: list[bytes], chunk: int = 2000) -> float:
    """records/s of parse (orjson, key, version) + COPY + merge, no validation, one process."""
    from clinflow.db import create_pool

    pool = await create_pool(settings)
    try:
        start = time.perf_counter()
        for i in range(0, len(lines), chunk):
            builder = CopyRowsBuilder(source_system="bench", batch_id="bench-copy-baseline")
            for line in lines[i : i + chunk]:
                builder.add(_parse_row(line))
            async with pool.acquire() as conn:
                await load_copy_rows(conn, builder.build())
        return len(lines) / (time.perf_counter() - start)
    finally:
        await pool.close()


async def settle(settings: Settings) -> None:
    """A PostgreSQL checkpoint and a sync: no write-back of the batch left running."""
    import asyncpg

    conn = await asyncpg.connect(settings.admin_dsn())
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    await asyncio.to_thread(os.sync)


def stack_cpu(home: Path) -> dict[str, float]:
    """CPU seconds so far of the local stack's processes (by program), found by their home."""
    out: dict[str, float] = {}
    for proc in psutil.process_iter(["cmdline", "name"]):
        try:
            if str(home) not in " ".join(proc.info["cmdline"] or []):
                continue
            members = [proc, *proc.children(recursive=True)]
            name = proc.info["name"]
            for m in members:
                t = m.cpu_times()
                out[name] = out.get(name, 0.0) + t.user + t.system
        except psutil.Error:
            continue
    return out


def _busy_fraction(before: Any, after: Any) -> float:
    """Share of all cores' time between two ``psutil.cpu_times()`` that was not idle."""
    fields = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")

    def spent(times: Any, names: tuple[str, ...]) -> float:
        return sum(getattr(times, n, 0.0) for n in names)

    idle = spent(after, ("idle", "iowait")) - spent(before, ("idle", "iowait"))
    total = spent(after, fields) - spent(before, fields)
    return 1 - idle / total if total > 0 else 0.0


def _child_label(proc: psutil.Process) -> str:
    cmd = " ".join(proc.cmdline())
    kind = "resource tracker" if "resource_tracker" in cmd else "pool process"
    return f"{kind} {proc.pid}"


class RssSampler:
    """Peak RSS and CPU seconds (from the first sample on) of a worker process and each of its
    children.

    The peak is the kernel's own high-water mark (``VmHWM`` in ``/proc/<pid>/status``), so a
    spike between two samples is not missed; sampling once a second only has to find the
    processes and read their counters (each pass scans /proc, which costs CPU the batch
    would otherwise use).
    """

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        self.peaks: dict[str, int] = {}
        self.cpu: dict[str, float] = {}
        self.first: dict[str, int] = {}
        self._cpu_start: dict[str, float] = {}
        self._sampled = False
        self._interval = interval
        self._proc = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            members = [self._proc, *self._proc.children(recursive=True)]
        except psutil.Error:
            members = []
        for m in members:
            try:
                label = "worker main" if m.pid == self._proc.pid else _child_label(m)
                rss = m.memory_info().rss
                times = m.cpu_times()
                peak = _high_water_mark(m.pid)
            except (psutil.Error, OSError):
                continue
            used = times.user + times.system
            if label not in self.first:
                # Processes already running when the batch starts: count from now on.
                self._cpu_start[label] = used if not self._sampled else 0.0
            self.cpu[label] = used - self._cpu_start[label]
            self.peaks[label] = max(self.peaks.get(label, 0), rss, peak)
            self.first.setdefault(label, rss)
        self._sampled = True

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self._interval)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        self._sample()  # the final counters
        return self.peaks


def _high_water_mark(pid: int) -> int:
    """Peak resident set size of ``pid`` since it started, in bytes (Linux ``VmHWM``)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """One worker process serving every task queue (its validation pool as children)."""
    return subprocess.Popen(
        [sys.executable, "-m", "workers.main"],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def end_to_end(
    settings: Settings, export: Path, records: int
) -> tuple[float, float, dict[str, int], int, float]:
    """(batch seconds, store seconds, peak RSS per worker process, partitions, CPU seconds of
    the worker processes and the stack during the batch)."""
    from starters.clinical_cli import prepare_local, submit_batch
    from workers.client import connect_client

    queue = f"bench-{uuid.uuid4().hex[:6]}"
    wsettings = settings.model_copy(
        update={"clinical_task_queue": queue, "task_queue": queue + "-main"}
    )
    env = {**os.environ, **wsettings.to_env()}
    proc = await asyncio.to_thread(start_worker, env)
    try:
        keyring = Keyring.load(settings)
        t0 = time.perf_counter()
        async with ObjectStore(settings, keyring) as store:
            inputs = await prepare_local(store, wsettings, "fhir", export)
        t_store = time.perf_counter() - t0
        client = await connect_client(settings, keyring)
        sampler = RssSampler(proc.pid)
        cpu_before = stack_cpu(settings.home)
        busy_before = psutil.cpu_times()
        t1 = time.perf_counter()
        sub = await submit_batch(client, wsettings, "fhir", "bench", inputs)
        result = await sub.handle.result()
        elapsed = time.perf_counter() - t1
        busy = _busy_fraction(busy_before, psutil.cpu_times())
        peaks = sampler.stop()
        cpu_after = stack_cpu(settings.home)
        stack_used = {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
        host = [f"{k} {v:.0f}s" for k, v in sorted(stack_used.items())]
        work = [f"{k} {v:.0f}s" for k, v in sorted(sampler.cpu.items())]
        first = [f"{k} {v / 1e6:.0f} MB" for k, v in sorted(sampler.first.items())]
        print(f"RSS when the batch started: {', '.join(first)}")
        print(f"CPU during the batch: {', '.join(work)}; stack: {', '.join(host)}")
        print(f"machine busy during the batch: {busy:.1%} of {psutil.cpu_count()} cores")
        cpu_total = sum(stack_used.values()) + sum(sampler.cpu.values())
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
        proc.wait(120)
    if result.report.valid != records or result.counts.inserted != records:
        sys.exit(f"batch loaded {result.counts.inserted} of {records} records: {result.report}")
    return elapsed, t_store, peaks, result.partitions, cpu_total


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--size-gb", type=float, default=1.0, help="NDJSON to generate (GB).")
    parser.add_argument("--sample-copies", type=int, default=2, help="Validate-only sample.")
    parser.add_argument(
        "--validate-runs", type=int, default=3, help="Validate-only runs before and after."
    )
    parser.add_argument("--copy-sample", type=int, default=100_000, help="Parse+COPY sample.")
    parser.add_argument("--partition-mb", type=float, default=48.0)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--pool", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--min-ratio", type=float, default=0.70)
    parser.add_argument("--max-rss-mb", type=float, default=300.0)
    args = parser.parse_args()
    if not CORPUS.is_dir():
        sys.exit(f"corpus not found at {CORPUS}")
    home = Path(tempfile.mkdtemp(prefix="clinflow-bench-"))
    os.chmod(home, 0o755)
    settings = throwaway_settings(
        home,
        clinical_partition_bytes=int(args.partition_mb * 1024 * 1024),
        clinical_max_parallel_partitions=args.parallel,
        clinical_process_pool_size=args.pool,
        clinical_lineage_transport="none",
    )
    stack = LocalStack(settings)
    failures: list[str] = []
    try:
        t0 = time.perf_counter()
        export = home / "export"
        records, size = build_export(export, int(args.size_gb * GB), "bench")
        print(
            f"export: {records:,} records, {size / 1e6:,.0f} MB in "
            f"{len(list(export.glob('*.ndjson')))} files, written in "
            f"{time.perf_counter() - t0:.0f}s (streamed)"
        )
        stack.up()
        # ``--sample-copies`` copies of the corpus: the export's exact mix of resource types.
        sample = [
            line
            for path in sorted(export.glob("*.ndjson"))
            for line in _head(path, args.sample_copies * _corpus_lines(path.name))
        ]
        print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; others' work counts)")
        before = validate_only_two_cores(sample, args.validate_runs)
        print(
            f"validate-only, 2 processes, {args.validate_runs} runs before the batch: "
            f"{_runs(before)} (sample of {len(sample):,} per process)"
        )
        copy_lines = sample_lines(export, max(1, args.copy_sample // 14))
        copy_rate = asyncio.run(parse_copy_only(settings, copy_lines))
        print(
            f"parse + COPY only, 1 process: {copy_rate:,.0f} records/s "
            f"({len(copy_lines):,} records)"
        )
        elapsed, t_store, peaks, parts, cpu_e2e = asyncio.run(end_to_end(settings, export, records))
        rate = records / elapsed
        # Let PostgreSQL and the kernel write out the batch first, so the runs after it
        # measure validation on a settled machine, as the runs before did.
        asyncio.run(settle(settings))
        after = validate_only_two_cores(sample, args.validate_runs)
        validate2 = statistics.median(r for r, _ in before + after)
        cpu_validate = statistics.median(c for _, c in before + after)
        print(
            f"validate-only again after the batch: {_runs(after)}; median of all runs "
            f"{validate2:,.0f} records/s, {cpu_validate * 1e6:.0f} us CPU per record; "
            f"load average after: {os.getloadavg()[0]:.2f}"
        )
        print(
            f"end to end through Temporal (pool {args.pool}, {parts} partitions): "
            f"{rate:,.0f} records/s, {size / elapsed / 1e6:.1f} MB/s, batch {elapsed:.0f}s "
            f"(storing the inputs took {t_store:.0f}s more: "
            f"{records / (elapsed + t_store):,.0f} records/s including it)"
        )
        ratio = rate / validate2
        print(f"ratio to validate-only (2 cores): {ratio:.2f} (target >= {args.min_ratio:.2f})")
        fastest = max(r for r, _ in before + after)
        print(f"ratio to the fastest validate-only run ({fastest:,.0f} records/s): "
              f"{rate / fastest:.2f}")  # fmt: skip
        per_record = cpu_e2e / records
        print(
            f"CPU per record end to end (worker processes + PostgreSQL + Temporal + S3): "
            f"{per_record * 1e6:.0f} us; validate-only {cpu_validate * 1e6:.0f} us: CPU ratio "
            f"{cpu_validate / per_record:.2f} (the wall ratio on an otherwise idle machine)"
        )
        print(f"ratio to parse + COPY only (1 process): {rate / copy_rate:.2f}")
        if ratio < args.min_ratio:
            failures.append(f"throughput ratio {ratio:.2f} < {args.min_ratio:.2f}")
        for label, rss in sorted(peaks.items()):
            print(f"peak RSS {label:<18} {rss / 1e6:6.0f} MB")
            if rss / 1e6 >= args.max_rss_mb:
                failures.append(f"{label} peak RSS {rss / 1e6:.0f} MB >= {args.max_rss_mb:.0f}")
        if len(peaks) < 1 + args.pool:
            failures.append(f"sampled {len(peaks)} worker processes, expected {1 + args.pool}")
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    for failure in failures:
        print(f"TARGET MISSED: {failure}")
    sys.exit(1 if failures else 0)


def _runs(runs: list[tuple[float, float]]) -> str:
    return ", ".join(f"{rate:,.0f} records/s ({cpu * 1e6:.0f} us CPU/record)" for rate, cpu in runs)


def _corpus_lines(name: str) -> int:
    return sum(1 for line in (CORPUS / name).read_bytes().splitlines() if line.strip())


def _head(path: Path, n: int) -> list[bytes]:
    out: list[bytes] = []
    with path.open("rb") as fh:
        for line in fh:
            if len(out) >= n:
                break
            out.append(line)
    return out


if __name__ == "__main__":
    main()
