"""Data residency of site packets: an EU packet is processed by the EU worker only, and what
reaches the US worker (which also runs the batch on the global queue) holds tokens only.

Two worker instances run in-process with their own dependencies: an EU worker serving
``<prefix>-eu`` and a US worker serving ``<prefix>-us`` and ``<prefix>-batch``. Each has an
interceptor recording every workflow input, signal, update and activity input it receives. A
batch of one US and one EU demo packet runs through them; then

- every workflow task and activity task of the EU packet (from its history) was taken by the
  EU worker, and the US worker's recordings never mention the EU packet's workflow;
- neither the US worker's recordings nor the batch workflow's decoded history (which includes
  the children's results and ``packet_settled`` signals) contain an EU person's name, the EU
  institution or ethics committee, or an EU file name; the EU child's result reached the batch
  with tokenised document names.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic_core
import pytest
from google.protobuf.message import Message
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    HandleSignalInput,
    HandleUpdateInput,
    Interceptor,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from activities.deps import Deps
from activities.packets import PacketActivities
from activities.packets_models import PacketInput, PacketStatus, PacketStatusName
from clinflow.keyring import Keyring
from clinflow.packets.manifest import manifest_for
from clinflow.packets.sample_data import EU_SITE, generate_demo_packets
from clinflow.settings import Settings
from clinflow.tokenise import TOKEN_PREFIX
from starters.packets_submit import packet_input, start_batch, upload_documents
from workflows.packets import SitePacketWorkflow
from workflows.packets_batch import PacketBatchWorkflow

pytestmark = pytest.mark.stack


@dataclass
class Received:
    kind: str
    workflow_id: str
    task_queue: str
    payload: str


@dataclass
class Recorder(Interceptor):
    """Records (as JSON) every input a worker's workflows and activities receive."""

    name: str
    items: list[Received] = field(default_factory=list)

    def add(self, kind: str, workflow_id: str, task_queue: str, args: Sequence[Any]) -> None:
        payload = pydantic_core.to_json(list(args), fallback=str).decode()
        self.items.append(Received(kind, workflow_id, task_queue, payload))

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        recorder = self

        class _Activity(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                info = activity.info()
                recorder.add(
                    f"activity:{info.activity_type}",
                    info.workflow_id or "",
                    info.task_queue,
                    input.args,
                )
                return await super().execute_activity(input)

        return _Activity(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        recorder = self

        def note(kind: str, args: Sequence[Any]) -> None:
            info = workflow.info()
            with workflow.unsafe.sandbox_unrestricted():
                recorder.add(kind, info.workflow_id, info.task_queue, args)

        class _Workflow(WorkflowInboundInterceptor):
            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                note(f"workflow:{workflow.info().workflow_type}", input.args)
                return await super().execute_workflow(input)

            async def handle_signal(self, input: HandleSignalInput) -> None:
                note(f"signal:{input.signal}", input.args)
                await super().handle_signal(input)

            async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
                note(f"update:{input.update}", input.args)
                return await super().handle_update_handler(input)

        return _Workflow


async def _decoded_payloads(client: Client, message: Message) -> list[str]:
    """Every payload inside a history event, decoded through the client's codec."""
    found: list[Payload] = []

    def walk(msg: Message) -> None:
        if isinstance(msg, Payload):
            found.append(msg)
            return
        for desc, value in msg.ListFields():
            if desc.type != desc.TYPE_MESSAGE:
                continue
            entry = desc.message_type is not None and desc.message_type.GetOptions().map_entry
            if entry:
                for item in value.values():
                    if isinstance(item, Message):
                        walk(item)
            elif isinstance(value, Message):
                walk(value)
            else:
                for item in value:
                    walk(item)

    walk(message)
    codec = client.data_converter.payload_codec
    if codec is not None and found:
        found = list(await codec.decode(found))
    return [p.data.decode("utf-8", "replace") for p in found]


def _forbidden_eu_words() -> list[str]:
    """EU person names (also inside file names), institution, ethics committee (lower case)."""
    words = [EU_SITE.institution, EU_SITE.irb]
    for person in EU_SITE.people:
        words.extend(person.name.split())
    return sorted({w.lower() for w in words if len(w) > 3})


def _leaks(texts: list[str], words: list[str]) -> list[tuple[str, str]]:
    return [(w, t[:160]) for t in texts for w in words if w in t.lower()]


async def _packet(settings: Settings, deps: Deps, folder: Path, tag: str) -> PacketInput:
    manifest, base = manifest_for(folder)
    # The demo's activation dates are not within the urgent window: regional queues.
    manifest = manifest.model_copy(update={"site_id": f"{manifest.site_id}-{tag}"})
    documents = await upload_documents(deps.store, settings, manifest, base)
    return packet_input(settings, manifest, documents, source="test")


async def test_eu_packet_stays_on_the_eu_worker_and_the_us_worker_sees_tokens_only(
    stack: Settings,
    keyring: Keyring,
    temporal_client: Client,
    tmp_path: Path,
) -> None:
    demo = {
        p.name: Path(p.path)
        for p in generate_demo_packets(tmp_path, only=["us-101-complete", "eu-201-complete"])
    }
    prefix = f"r{uuid.uuid4().hex[:10]}"
    settings = stack.model_copy(
        update={
            "packets_queue_prefix": prefix,
            "packets_regions": "us,eu",
            "packets_external_url": None,
            "packets_review_deadline_seconds": 3600.0,
            "packets_gap_deadline_seconds": 3600.0,
        }
    )
    eu_rec, us_rec = Recorder("eu"), Recorder("us")
    eu_deps = await Deps.open(settings, keyring)
    us_deps = await Deps.open(settings, keyring)
    try:
        eu_acts, us_acts = PacketActivities(eu_deps), PacketActivities(us_deps)
        workers = [
            Worker(
                temporal_client,
                task_queue=f"{prefix}-eu",
                workflows=[SitePacketWorkflow],
                activities=eu_acts.workflow_activities(),
                interceptors=[eu_rec],
                identity="worker-eu",
            ),
            Worker(
                temporal_client,
                task_queue=f"{prefix}-us",
                workflows=[SitePacketWorkflow],
                activities=us_acts.workflow_activities(),
                interceptors=[us_rec],
                identity="worker-us",
            ),
            Worker(
                temporal_client,
                task_queue=f"{prefix}-batch",
                workflows=[PacketBatchWorkflow],
                activities=us_acts.batch_activities(),
                interceptors=[us_rec],
                identity="worker-us",
            ),
        ]
        tag = uuid.uuid4().hex[:8]
        us_packet = await _packet(settings, us_deps, demo["us-101-complete"], tag)
        eu_packet = await _packet(settings, eu_deps, demo["eu-201-complete"], tag)
        async with workers[0], workers[1], workers[2]:
            batch = await start_batch(
                temporal_client, settings, us_deps.store, [us_packet, eu_packet], batch_id=tag
            )
            summary = await batch.result()
            eu_handle = temporal_client.get_workflow_handle(
                eu_packet.packet_id, result_type=PacketStatus
            )
            eu_result = await eu_handle.result()
            eu_history = await eu_handle.fetch_history()
            batch_history = await batch.fetch_history()
    finally:
        await eu_deps.close()
        await us_deps.close()

    by_packet = {p.packet_id: p for p in summary.packets}
    assert by_packet[eu_packet.packet_id].queue == f"{prefix}-eu"
    assert by_packet[us_packet.packet_id].queue == f"{prefix}-us"
    assert by_packet[eu_packet.packet_id].status == PacketStatusName.VALIDATED.value

    # Every workflow task and activity task of the EU packet was taken by the EU worker.
    takers = [
        e.workflow_task_started_event_attributes.identity
        for e in eu_history.events
        if e.HasField("workflow_task_started_event_attributes")
    ] + [
        e.activity_task_started_event_attributes.identity
        for e in eu_history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert len(takers) > 10
    assert set(takers) == {"worker-eu"}
    assert {r.workflow_id for r in eu_rec.items} == {eu_packet.packet_id}
    assert eu_packet.packet_id not in {r.workflow_id for r in us_rec.items}
    assert any(r.kind == "activity:packets.analyse" for r in eu_rec.items)

    # The recorders see real content: the EU worker received the EU names (file names) ...
    words = _forbidden_eu_words()
    assert _leaks([r.payload for r in eu_rec.items], words)
    # ... the US worker received none of them, nor does the batch's decoded history hold any.
    assert not _leaks([r.payload for r in us_rec.items], words)
    batch_texts = [
        t for e in batch_history.events for t in await _decoded_payloads(temporal_client, e)
    ]
    assert batch_texts, "the batch history has payloads to inspect"
    assert not _leaks(batch_texts, words)
    assert any("packet_settled" in r.kind for r in us_rec.items)
    # The EU child's result (what a parent receives) holds tokens for names, no free text.
    assert eu_result.documents and all(
        d.name.startswith(f"{TOKEN_PREFIX}_doc_") for d in eu_result.documents
    )
    assert not _leaks([eu_result.model_dump_json()], words)
    assert any(r.kind == "signal:packet_settled" for r in us_rec.items)
