"""Packets per minute for a batch of mixed packets, and the share of time per stage.

Runs against the stack the environment names (``clinflow stack up``): workers in this process
on a fresh task-queue prefix, the demo packets (text and scanned PDFs, DOCX, signed/unsigned,
every decision-tree branch) replicated under unique site ids, submitted as one batch. Stage
shares come from the activity timings in the children's histories (started -> completed).

    .venv/bin/python bench/bench_packets.py --packets 100
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections import defaultdict
from contextlib import AsyncExitStack
from pathlib import Path

from activities.deps import Deps
from clinflow.keyring import Keyring
from clinflow.packets.manifest import manifest_for
from clinflow.packets.sample_data import generate_demo_packets
from clinflow.settings import get_settings
from starters.packets_submit import packet_input, start_batch, upload_documents
from workers.client import connect_client
from workers.factory import build_worker
from workers.packets_plan import packets_plan


async def stage_seconds(client: object, workflow_ids: list[str]) -> dict[str, float]:
    """Seconds spent per activity type (started -> completed), summed over the workflows."""
    totals: dict[str, float] = defaultdict(float)
    for wf_id in workflow_ids:
        scheduled: dict[int, str] = {}
        started: dict[int, float] = {}
        async for ev in client.get_workflow_handle(wf_id).fetch_history_events():  # type: ignore[attr-defined]
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


async def main(n_packets: int, parallel: int) -> None:
    base = get_settings()
    settings = base.model_copy(
        update={
            "packets_queue_prefix": f"bench{uuid.uuid4().hex[:8]}",
            "packets_max_parallel": parallel,
            "packets_gap_deadline_seconds": 3600.0,
            "packets_review_deadline_seconds": 3600.0,
            "packets_external_url": None,
        }
    )
    keyring = Keyring.load(settings)
    client = await connect_client(settings, keyring)
    deps = await Deps.open(settings, keyring)
    demo = generate_demo_packets(Path(tempfile.mkdtemp(prefix="bench-packets-")))
    tag = uuid.uuid4().hex[:6]
    inputs = []
    for i in range(n_packets):
        manifest, folder = manifest_for(Path(demo[i % len(demo)].path))
        manifest = manifest.model_copy(update={"site_id": f"{manifest.site_id}-B{tag}{i:03d}"})
        docs = await upload_documents(deps.store, settings, manifest, folder)
        inputs.append(packet_input(settings, manifest, docs, source="bench"))
    documents = sum(len(i.documents) for i in inputs)
    try:
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
    print(f"packets: {n_packets}  documents: {documents}  window: {parallel}")
    print(
        f"settled in {elapsed:.1f} s  ->  {n_packets / elapsed * 60:.1f} packets/min, "
        f"{documents / elapsed:.1f} documents/s"
    )
    print("outcomes: " + ", ".join(f"{k}={v}" for k, v in sorted(summary.outcomes.items())))
    stages = await stage_seconds(client, [i.packet_id for i in inputs])
    total = sum(stages.values()) or 1.0
    print("share of activity time per stage:")
    for name, secs in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"  {name:28s} {secs:8.1f} s  {secs / total:6.1%}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.packets, args.parallel))
