"""Submitting packets: stream files to the object store (hashing on the way), then start.

Every ingestion channel (CLI, drop-folder watcher, HTTP upload, DLQ replay) ends here, in
:func:`start_packet` / :func:`start_batch`, so all of them start the same workflow with the
same id (the packet key), the same policies and the same search attributes. The workflow input
carries claim checks (bucket, key, sha256, size), never bytes.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.packets_models import (
    BatchInput,
    BatchPlan,
    BatchSummary,
    DocumentInput,
    ObjectRef,
    PacketClaim,
    PacketInput,
    PacketStatus,
    PacketStatusName,
    packet_queue,
    residency_head,
)
from clinflow.object_store import ObjectStore
from clinflow.packets.manifest import PacketManifest, manifest_for
from clinflow.packets.models import DocumentRef
from clinflow.settings import Settings
from workflows.packets import SitePacketWorkflow
from workflows.packets_batch import PacketBatchWorkflow
from workflows.search_attributes import KIND, PROTOCOL, REGION, SITE, SOURCE, STATUS

INCOMING_PREFIX = "packets/incoming"
BATCH_PREFIX = "packets/batches"
CONTENT_TYPES = {".pdf": "application/pdf", ".docx": "application/vnd.openxmlformats"}


class SubmitError(Exception):
    """A packet cannot be submitted (bad manifest, missing file, unknown region)."""


@dataclass(frozen=True)
class Submitted:
    packet_id: str
    workflow_id: str
    queue: str
    existing: bool
    run_id: str | None = None


def submitter() -> str:
    return os.environ.get("CLINFLOW_USER") or os.environ.get("USER") or "operator"


def incoming_key(received: datetime) -> str:
    return f"{INCOMING_PREFIX}/{received:%Y/%m/%d}/{uuid.uuid4().hex}"


async def upload_path(store: ObjectStore, settings: Settings, path: Path) -> DocumentRef:
    """Stream one file to the documents bucket, encrypted; the SHA-256 is computed on the way."""
    stored = await store.upload(
        settings.s3_bucket_documents,
        incoming_key(datetime.now(UTC)),
        path,
        content_type=CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream"),
    )
    return DocumentRef(bucket=stored.bucket, key=stored.key, sha256=stored.sha256, size=stored.size)


async def upload_stream(
    store: ObjectStore, settings: Settings, chunks: AsyncIterable[bytes], content_type: str
) -> DocumentRef:
    """Stream request-body chunks to the documents bucket (bounded memory), hashing them."""
    stored = await store.upload(
        settings.s3_bucket_documents,
        incoming_key(datetime.now(UTC)),
        chunks,
        content_type=content_type,
    )
    return DocumentRef(bucket=stored.bucket, key=stored.key, sha256=stored.sha256, size=stored.size)


async def upload_documents(
    store: ObjectStore, settings: Settings, manifest: PacketManifest, folder: Path
) -> list[DocumentInput]:
    """Upload every file the manifest lists; raises SubmitError when one is missing."""
    documents: list[DocumentInput] = []
    for entry in manifest.files:
        file = folder / entry.path
        if not file.is_file():
            raise SubmitError(f"{manifest.packet_id}: listed file {entry.path!r} is missing")
        ref = await upload_path(store, settings, file)
        documents.append(
            DocumentInput(
                name=entry.path,
                ref=ref,
                declared_type=entry.doc_type,
                declared_sha256=entry.sha256,
                received_at=datetime.now(UTC),
            )
        )
    return documents


def packet_input(
    settings: Settings,
    manifest: PacketManifest,
    documents: list[DocumentInput],
    *,
    source: str,
    submitted_by: str | None = None,
    replay_of: str | None = None,
) -> PacketInput:
    """The workflow input, with deadlines and the external check taken from ``settings``."""
    return PacketInput(
        manifest=manifest,
        documents=documents,
        submitted_by=submitted_by or submitter(),
        source=source,
        correlation_id=manifest.correlation_id or uuid.uuid4().hex,
        submitted_at=datetime.now(UTC),
        review_deadline_seconds=settings.packets_review_deadline_seconds,
        gap_deadline_seconds=settings.packets_gap_deadline_seconds,
        external_check=bool(settings.packets_external_url),
        external_queue=f"{settings.packets_queue_prefix}-external",
        replay_of=replay_of,
    )


def queue_for(settings: Settings, manifest: PacketManifest, today: date | None = None) -> str:
    """The task queue the packet runs on (urgent or regional); SubmitError if none fits."""
    try:
        return packet_queue(
            settings.packets_queue_prefix,
            manifest.region,
            manifest.target_activation_date,
            today or datetime.now(UTC).date(),
            settings.packets_urgent_days,
            settings.packets_region_list,
        )
    except ValueError as exc:
        raise SubmitError(str(exc)) from exc


def search_attributes(inp: PacketInput) -> TypedSearchAttributes:
    m = inp.manifest
    return TypedSearchAttributes(
        [
            SearchAttributePair(KIND, "packet"),
            SearchAttributePair(STATUS, PacketStatusName.PROCESSING.value),
            SearchAttributePair(SITE, m.site_id),
            SearchAttributePair(PROTOCOL, f"{m.protocol_number}-v{m.protocol_version}"),
            SearchAttributePair(REGION, m.region),
            SearchAttributePair(SOURCE, inp.source),
        ]
    )


async def workflow_exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def start_packet(
    client: Client,
    settings: Settings,
    inp: PacketInput,
    *,
    workflow_id: str | None = None,
    queue: str | None = None,
) -> tuple[WorkflowHandle[SitePacketWorkflow, PacketStatus], Submitted]:
    """Start the packet's workflow, or return the existing one (same id: the packet key).

    Conflict policy USE_EXISTING (a running duplicate returns the running execution) and
    reuse policy REJECT_DUPLICATE (a finished packet is never run again under its id).
    """
    wf_id = workflow_id or inp.packet_id
    task_queue = queue or queue_for(settings, inp.manifest)
    existed = await workflow_exists(client, wf_id)
    if existed:
        handle: WorkflowHandle[SitePacketWorkflow, PacketStatus] = client.get_workflow_handle(
            wf_id, result_type=PacketStatus
        )
        desc = await handle.describe()
        return handle, Submitted(inp.packet_id, wf_id, desc.task_queue, True, desc.run_id)
    try:
        handle = await client.start_workflow(
            SitePacketWorkflow.run,
            inp,
            id=wf_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=search_attributes(inp),
            static_summary=f"site packet {inp.packet_id}",
        )
    except WorkflowAlreadyStartedError:
        # Finished meanwhile (a closed run is never reused): return the existing execution.
        handle = client.get_workflow_handle(wf_id, result_type=PacketStatus)
        desc = await handle.describe()
        return handle, Submitted(inp.packet_id, wf_id, desc.task_queue, True, desc.run_id)
    return handle, Submitted(inp.packet_id, wf_id, task_queue, False, handle.first_execution_run_id)


async def submit_path(
    client: Client,
    settings: Settings,
    store: ObjectStore,
    path: Path,
    *,
    source: str = "cli",
    submitted_by: str | None = None,
) -> tuple[WorkflowHandle[SitePacketWorkflow, PacketStatus], Submitted]:
    """Submit the packet at ``path`` (its folder or manifest file).

    A packet whose workflow already exists is not uploaded again: the existing execution is
    returned. Raises SubmitError for an invalid manifest or a missing file.
    """
    try:
        manifest, folder = manifest_for(path)
    except Exception as exc:
        raise SubmitError(f"{path}: {exc}") from exc
    try:
        queue = queue_for(settings, manifest)
    except SubmitError as exc:
        # No region serves it: a one-packet batch ends it visibly (DEAD_LETTERED with
        # MANIFEST_INVALID, a DLQ entry, an audit entry), then the caller hears why.
        documents = await upload_documents(store, settings, manifest, folder)
        inp = packet_input(settings, manifest, documents, source=source, submitted_by=submitted_by)
        summary = await (await start_batch(client, settings, store, [inp])).result()
        note = summary.packets[0].note if summary.packets else str(exc)
        raise SubmitError(f"{manifest.packet_id}: DEAD_LETTERED MANIFEST_INVALID: {note}") from exc
    if await workflow_exists(client, manifest.packet_id):
        handle: WorkflowHandle[SitePacketWorkflow, PacketStatus] = client.get_workflow_handle(
            manifest.packet_id, result_type=PacketStatus
        )
        desc = await handle.describe()
        return handle, Submitted(manifest.packet_id, manifest.packet_id, desc.task_queue, True)
    documents = await upload_documents(store, settings, manifest, folder)
    inp = packet_input(settings, manifest, documents, source=source, submitted_by=submitted_by)
    return await start_packet(client, settings, inp, queue=queue)


def packet_folders(root: Path) -> list[Path]:
    """The packet folders under ``root``: folders holding a manifest (or ``root`` itself)."""
    from clinflow.packets.manifest import find_manifest

    if root.is_file() or find_manifest(root) is not None:
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and find_manifest(p) is not None)


def batch_id_for(inputs: Iterable[PacketInput]) -> str:
    """A content-derived batch id: the same packets and bytes give the same batch."""
    h = hashlib.sha256()
    for inp in sorted(inputs, key=lambda i: i.packet_id):
        h.update(inp.packet_id.encode())
        for d in inp.documents:
            h.update(d.ref.sha256.encode())
    return h.hexdigest()[:20]


async def start_batch(
    client: Client,
    settings: Settings,
    store: ObjectStore,
    inputs: list[PacketInput],
    *,
    batch_id: str | None = None,
    max_parallel: int | None = None,
) -> WorkflowHandle[PacketBatchWorkflow, BatchSummary]:
    """Store the batch plan (claim check) and start PacketBatchWorkflow (or return it)."""
    bid = batch_id or batch_id_for(inputs)
    plan_key = f"{BATCH_PREFIX}/{bid}.json"
    heads: list[PacketInput] = []
    for inp in inputs:
        # Residency: each packet's full input is its own object, read by its regional
        # worker; the plan (read by the batch on the global queue) holds heads only.
        claim = PacketClaim(
            ref=ObjectRef(
                bucket=settings.s3_bucket_documents,
                key=f"{BATCH_PREFIX}/{bid}/{inp.manifest.region}/{inp.packet_id}.json",
            ),
            packet_id=inp.packet_id,
        )
        await store.put_bytes(
            claim.ref.bucket,
            claim.ref.key,
            inp.model_dump_json().encode(),
            content_type="application/json",
        )
        heads.append(residency_head(inp, claim))
    await store.put_bytes(
        settings.s3_bucket_documents,
        plan_key,
        BatchPlan(packets=heads).model_dump_json().encode(),
        content_type="application/json",
    )
    wf_id = f"packet-batch-{bid}"
    try:
        return await _start_batch_workflow(client, settings, inputs, bid, plan_key, max_parallel)
    except WorkflowAlreadyStartedError:
        # The same batch (same packets, same bytes) was submitted before: return it.
        return client.get_workflow_handle(wf_id, result_type=BatchSummary)


async def _start_batch_workflow(
    client: Client,
    settings: Settings,
    inputs: list[PacketInput],
    bid: str,
    plan_key: str,
    max_parallel: int | None,
) -> WorkflowHandle[PacketBatchWorkflow, BatchSummary]:
    prefix = settings.packets_queue_prefix
    return await client.start_workflow(
        PacketBatchWorkflow.run,
        BatchInput(
            batch_id=bid,
            plan=ObjectRef(bucket=settings.s3_bucket_documents, key=plan_key),
            total=len(inputs),
            max_parallel=max_parallel or settings.packets_max_parallel,
            page_size=settings.packets_batch_page_size,
            continue_after=settings.packets_batch_continue_after,
            queue_prefix=prefix,
            regions=list(settings.packets_region_list),
            urgent_days=settings.packets_urgent_days,
        ),
        id=f"packet-batch-{bid}",
        task_queue=f"{prefix}-batch",
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(KIND, "packet-batch"), SearchAttributePair(STATUS, "RUNNING")]
        ),
        static_summary=f"batch of {len(inputs)} site packets",
    )


async def prepare_batch(
    settings: Settings, store: ObjectStore, folders: list[Path], *, source: str = "batch"
) -> list[PacketInput]:
    """Upload every packet folder's files and build their inputs."""
    inputs: list[PacketInput] = []
    for folder in folders:
        try:
            manifest, base = manifest_for(folder)
        except Exception as exc:
            raise SubmitError(f"{folder}: {exc}") from exc
        documents = await upload_documents(store, settings, manifest, base)
        inputs.append(packet_input(settings, manifest, documents, source=source))
    return inputs


__all__ = [
    "SubmitError",
    "Submitted",
    "batch_id_for",
    "packet_folders",
    "packet_input",
    "prepare_batch",
    "queue_for",
    "search_attributes",
    "start_batch",
    "start_packet",
    "submit_path",
    "upload_documents",
    "upload_path",
    "upload_stream",
]
