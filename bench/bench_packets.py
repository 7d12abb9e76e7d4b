"""Packets per minute through Temporal for a batch of packets, against the OCR bound of the run.

Runs against the stack the environment names (``clinflow stack up``): workers in this process
on a fresh task-queue prefix, packets submitted as one batch. Packets come from ``--corpus``
(any folder holding packet folders with a manifest, e.g. one seed of
``python -m bench.packet_corpus``) or, without it, from the demo packets. ``--mix text`` keeps
only packets whose every document has a text layer; ``--mix all`` keeps every packet; packets
are replicated under unique site ids up to ``--packets``.

Printed figures (medians where repeated; no timed assertions):

- packets/min and documents/s end to end, outcomes, share of activity time per stage;
- pages needing OCR, and the OCR bound: those pages divided by the pages/s that the OCR
  processes reach on their own in the same run (a sample of the same pages OCR'd with
  ``packets_ocr_max_workers`` processes before the batch), and the ratio bound / elapsed
  (1.0 = the batch ran as fast as OCR alone allows);
- peak RSS of this process and of every descendant (parser and OCR processes, tesseract).

    .venv/bin/python bench/bench_packets.py --packets 30 --mix text
    .venv/bin/python bench/bench_packets.py --corpus /tmp/corpus/101 --packets 30 --ocr-dpi 300
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import psutil
from pypdf import PdfReader
from temporalio.service import RPCError, RPCStatusCode

from activities.deps import Deps
from clinflow.keyring import Keyring
from clinflow.packets.manifest import MANIFEST_NAMES, manifest_for
from clinflow.packets.models import FileKind, ParseOptions
from clinflow.packets.ocr import ocr_pdf_pages
from clinflow.packets.pdf_parse import ocr_resolution, page_resolutions
from clinflow.packets.sample_data import generate_demo_packets
from clinflow.packets.sniff import sniff_kind
from clinflow.settings import get_settings
from starters.packets_submit import packet_input, start_batch, upload_documents
from workers.client import connect_client
from workers.factory import build_worker
from workers.packets_plan import packets_plan

OCR_MIN_CHARS = 16


async def stage_seconds(client: Any, workflow_ids: list[str]) -> dict[str, float]:
    """Seconds spent per activity type (started -> completed), summed over the workflows."""
    totals: dict[str, float] = defaultdict(float)
    for wf_id in workflow_ids:
        scheduled: dict[int, str] = {}
        started: dict[int, float] = {}
        try:
            events = [ev async for ev in client.get_workflow_handle(wf_id).fetch_history_events()]
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                continue  # a packet rejected before it started (e.g. a region with no checklist)
            raise
        for ev in events:
            t = ev.event_time.ToDatetime().timestamp()
            if ev.HasField("activity_task_scheduled_event_attributes"):
                scheduled[ev.event_id] = (
                    ev.activity_task_scheduled_event_attributes.activity_type.name
                )
            elif ev.HasField("activity_task_started_event_attributes"):
                started[ev.activity_task_started_event_attributes.scheduled_event_id] = t
            elif ev.HasField("activity_task_completed_event_attributes"):
                sid = ev.activity_task_completed_event_attributes.scheduled_event_id
                if sid in started:
                    totals[scheduled[sid]] += t - started[sid]
    return dict(totals)


def packet_folders(root: Path) -> list[Path]:
    """Every folder under ``root`` holding a packet manifest, sorted."""
    found = {p.parent for name in MANIFEST_NAMES for p in root.rglob(name)}
    return sorted(found)


def ocr_pages_of(path: Path) -> list[int]:
    """Pages of a PDF the parser would OCR (no usable text layer); [] for other files."""
    try:
        if sniff_kind(path.read_bytes()[:1024]) is not FileKind.PDF:
            return []
        reader = PdfReader(path)
        if reader.is_encrypted:
            return []
        return [
            i
            for i, page in enumerate(reader.pages)
            if len("".join((page.extract_text() or "").split())) < OCR_MIN_CHARS
        ]
    except Exception:  # unreadable files are dead-lettered by the parser, not OCR'd
        return []


class RssSampler:
    """Peak RSS of this process and every descendant, sampled every 0.2 s in a thread."""

    def __init__(self) -> None:
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for proc in [me, *me.children(recursive=True)]:
                try:
                    name = f"{proc.name()}[{proc.pid}]"
                    rss = proc.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peaks[name] = max(self.peaks.get(name, 0.0), rss)
            self._stop.wait(0.2)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def ocr_rate(samples: list[tuple[Path, list[int]]], dpi: int, max_dpi: int, workers: int) -> float:
    """Pages/s the OCR processes reach on their own on ``samples`` (median of 2 runs), each page
    at the resolution the parser would use (its scan's own, from ``dpi`` up to the cap)."""
    options = ParseOptions(ocr_dpi=dpi, ocr_max_dpi=max(dpi, max_dpi))
    rates = []
    for _ in range(2):
        pages = 0
        started = time.perf_counter()
        for path, indexes in samples:
            native = page_resolutions(path)
            dpis = [ocr_resolution(native[i], options) for i in indexes]
            ocr_pdf_pages(path, indexes, dpi=dpis, max_workers=workers)
            pages += len(indexes)
        rates.append(pages / (time.perf_counter() - started))
    return statistics.median(rates)


async def main(args: argparse.Namespace) -> None:
    base = get_settings()
    settings = base.model_copy(
        update={
            "packets_queue_prefix": f"bench{uuid.uuid4().hex[:8]}",
            "packets_max_parallel": args.parallel,
            "packets_gap_deadline_seconds": 3600.0,
            "packets_review_deadline_seconds": 3600.0,
            "packets_external_url": None,
            "packets_ocr_dpi": args.ocr_dpi,
            "packets_ocr_max_dpi": max(args.ocr_dpi, args.ocr_max_dpi),
        }
    )
    if args.corpus:
        folders = packet_folders(Path(args.corpus))
    else:
        demo = generate_demo_packets(Path(tempfile.mkdtemp(prefix="bench-packets-")))
        folders = [Path(p.path) for p in demo]
    chosen: list[tuple[Path, list[tuple[Path, list[int]]]]] = []
    for folder in folders:
        try:
            manifest, base_folder = manifest_for(folder)
        except Exception:
            continue  # a packet the corpus made invalid on purpose is not a throughput case
        ocr = [(base_folder / f.path, ocr_pages_of(base_folder / f.path)) for f in manifest.files]
        ocr = [(p, pages) for p, pages in ocr if pages]
        if args.mix == "text" and ocr:
            continue
        chosen.append((folder, ocr))
    if not chosen:
        raise SystemExit("no packet matches the mix")

    keyring = Keyring.load(settings)
    client = await connect_client(settings, keyring)
    deps = await Deps.open(settings, keyring)
    tag = uuid.uuid4().hex[:6]
    inputs = []
    ocr_total = 0
    ocr_samples: list[tuple[Path, list[int]]] = []
    for i in range(args.packets):
        folder, ocr = chosen[i % len(chosen)]
        manifest, base_folder = manifest_for(folder)
        manifest = manifest.model_copy(update={"site_id": f"{manifest.site_id}-B{tag}{i:03d}"})
        docs = await upload_documents(deps.store, settings, manifest, base_folder)
        inputs.append(packet_input(settings, manifest, docs, source="bench"))
        ocr_total += sum(len(pages) for _, pages in ocr)
        if i < len(chosen):
            ocr_samples.extend(ocr)
    documents = sum(len(i.documents) for i in inputs)
    rate = None
    if ocr_total:
        sample = ocr_samples[: max(1, min(len(ocr_samples), 8))]
        rate = ocr_rate(sample, args.ocr_dpi, args.ocr_max_dpi, settings.packets_ocr_max_workers)
    try:
        with RssSampler() as rss:
            async with AsyncExitStack() as stack:
                for queue, plan in packets_plan(settings, deps).items():
                    await stack.enter_async_context(
                        build_worker(client, settings, task_queue=queue, plan=plan)
                    )
                started = time.perf_counter()
                handle = await start_batch(
                    client, settings, deps.store, inputs, batch_id=uuid.uuid4().hex
                )
                summary = await handle.result()
                elapsed = time.perf_counter() - started
    finally:
        await deps.close()
    print(
        f"packets: {args.packets}  documents: {documents}  window: {args.parallel}  "
        f"mix: {args.mix}  dpi: {args.ocr_dpi}-{max(args.ocr_dpi, args.ocr_max_dpi)}"
    )
    print(
        f"settled in {elapsed:.1f} s  ->  {args.packets / elapsed * 60:.1f} packets/min, "
        f"{documents / elapsed:.1f} documents/s"
    )
    if rate is not None:
        bound = ocr_total / rate
        print(
            f"pages needing OCR: {ocr_total}; OCR processes alone: {rate:.2f} pages/s "
            f"-> OCR bound {bound:.1f} s; ratio bound/elapsed {bound / elapsed:.2f}"
        )
    else:
        print("pages needing OCR: 0 (text-only mix)")
    print("outcomes: " + ", ".join(f"{k}={v}" for k, v in sorted(summary.outcomes.items())))
    stages = await stage_seconds(client, [i.packet_id for i in inputs])
    total = sum(stages.values()) or 1.0
    print("share of activity time per stage:")
    for name, secs in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"  {name:28s} {secs:8.1f} s  {secs / total:6.1%}")
    top = sorted(rss.peaks.items(), key=lambda kv: -kv[1])
    print("peak RSS (MB): " + ", ".join(f"{name} {mb:.0f}" for name, mb in top[:8]))
    children = [mb for name, mb in top if not name.endswith(f"[{psutil.Process().pid}]")]
    if children:
        print(f"largest parse/OCR process: {max(children):.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--packets", type=int, default=30)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--corpus", help="folder of packet folders (default: the demo packets)")
    parser.add_argument("--mix", choices=("all", "text"), default="all")
    parser.add_argument("--ocr-dpi", type=int, default=200, help="lowest OCR resolution")
    parser.add_argument(
        "--ocr-max-dpi", type=int, default=300, help="highest (scans are read at their own)"
    )
    asyncio.run(main(parser.parse_args()))
