"""``clinflow ingest fhir|hl7`` and ``clinflow clinical ...``: clinical data batches.

Submitting a batch: local inputs are hashed and streamed to the object store encrypted
(content-addressed ``clinical/inputs/<sha256>``, so the same file is stored once: claim check);
``s3://bucket/prefix`` inputs (a bulk-export manifest plus NDJSON files, or the NDJSON files
under the prefix) are read in place. The batch id, which is also the workflow id, is
``clinical-<kind>-<source>-<digest>`` where the digest covers every input's name, content hash
(or ETag) and size: the same export twice is one batch. A running batch is joined
(USE_EXISTING); a completed one is not run again (its result is printed) unless ``--force``,
whose re-run leaves the tables unchanged. A failed batch may be submitted again.

Everything the commands change goes through Temporal; ``quarantine list`` only reads.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.clinical_models import (
    BatchFile,
    BatchKind,
    BatchOptions,
    ClinicalBatchInput,
    ClinicalBatchResult,
    ReconcileInput,
    ReconcileResult,
)
from clinflow.clinical.discovery import discover_inputs, parse_manifest
from clinflow.clinical.fhir_validate import is_resource_type
from clinflow.keyring import Keyring
from clinflow.object_store import META_ENCRYPTION, META_SHA256, META_SIZE, ObjectStore
from clinflow.settings import Settings, get_settings
from workflows import search_attributes
from workflows.clinical import ClinicalBatchWorkflow, ReconciliationWorkflow

console = Console()
err = Console(stderr=True)

SCHEDULE_ID = "clinflow-clinical-reconcile"
_SOURCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HL7_SKIP = (".md", ".json", ".py")


class InputError(ValueError):
    """The inputs cannot be turned into a batch (missing files, bad source name...)."""


@dataclass
class PreparedInputs:
    files: list[BatchFile]
    transaction_time: datetime | None = None


@dataclass
class Submission:
    batch_id: str
    handle: WorkflowHandle[Any, ClinicalBatchResult]
    started: bool
    already_completed: bool


# -- preparing inputs --------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def check_source(source: str) -> str:
    """A source system name must be a short token (it is part of ids and search attributes)."""
    if not _SOURCE_RE.match(source):
        raise InputError(f"source system {source!r} must match {_SOURCE_RE.pattern}")
    return source


async def store_local_file(
    store: ObjectStore, settings: Settings, path: Path, resource_type: str | None, compressed: bool
) -> BatchFile:
    """Hash ``path`` and stream it encrypted to ``clinical/inputs/<sha256>`` (once per content).

    Raises InputError when the file changed while it was being uploaded.
    """
    sha = await asyncio.to_thread(_sha256_file, path)
    bucket, key = settings.s3_bucket_batches, f"clinical/inputs/{sha}"
    stored = None
    if await store.exists(bucket, key):
        head = await store.head(bucket, key)
        stored = head if head.sha256 == sha else None
    if stored is None:
        stored = await store.upload(bucket, key, path, content_type="application/x-ndjson")
        if stored.sha256 != sha:
            raise InputError(f"{path.name} changed while it was being stored; submit it again")
    return BatchFile(
        bucket=bucket,
        key=key,
        name=path.name,
        size=stored.size,
        sha256=sha,
        compressed=compressed,
        resource_type=resource_type,
        encrypted=stored.encrypted,
    )


def local_hl7_files(path: Path) -> list[Path]:
    """An HL7 file, or the regular files of a folder (sorted; hidden and doc files skipped)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(f"no such file or folder: {path}")
    files = [
        p
        for p in sorted(path.iterdir())
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(_HL7_SKIP)
    ]
    if not files:
        raise InputError(f"no HL7 files in {path}")
    return files


async def prepare_local(
    store: ObjectStore, settings: Settings, kind: BatchKind, path: Path
) -> PreparedInputs:
    """Discover local inputs and store them (claim check)."""
    if kind == "hl7":
        paths = local_hl7_files(path)
        files = [await store_local_file(store, settings, p, None, False) for p in paths]
        return PreparedInputs(files)
    try:
        found = await asyncio.to_thread(discover_inputs, path)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    files = [
        await store_local_file(store, settings, Path(f.uri), f.resource_type, f.compressed)
        for f in found.files
    ]
    return PreparedInputs(files, found.transaction_time)


def _split_s3(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise InputError(f"not an s3:// URI: {uri}")
    return parts.netloc, parts.path.lstrip("/")


async def _describe_s3(
    store: ObjectStore, bucket: str, key: str, resource_type: str | None
) -> BatchFile:
    head = await store.client.head_object(Bucket=bucket, Key=key)
    meta: dict[str, str] = head.get("Metadata", {})
    encrypted = meta.get(META_ENCRYPTION) == "aes-256-gcm-envelope-v1"
    size = int(meta[META_SIZE]) if META_SIZE in meta else int(head["ContentLength"])
    magic = b""
    async for block in store.download_range(bucket, key, 0, 2):
        magic += block
    name = PurePosixPath(key).name
    if resource_type is None:
        stem = name.split(".", 1)[0]
        resource_type = stem if is_resource_type(stem) else None
    return BatchFile(
        bucket=bucket,
        key=key,
        name=name,
        size=size,
        sha256=meta.get(META_SHA256),
        etag=str(head["ETag"]).strip('"'),
        compressed=magic == b"\x1f\x8b",
        resource_type=resource_type,
        encrypted=encrypted,
    )


async def prepare_s3(store: ObjectStore, kind: BatchKind, uri: str) -> PreparedInputs:
    """Inputs read in place: a manifest object, a prefix with ``manifest.json``, or the data
    files under a prefix (``*.ndjson``, ``*.ndjson.gz``; any file for HL7)."""
    bucket, key = _split_s3(uri)
    manifest_key: str | None = key if key.endswith(".json") else None
    keys: list[str] = []
    if manifest_key is None:
        keys = [k async for k in store.list_keys(bucket, key)]
        manifests = [k for k in keys if PurePosixPath(k).name == "manifest.json"]
        manifest_key = manifests[0] if manifests and kind == "fhir" else None
    if manifest_key is not None:
        manifest = parse_manifest(await store.get_bytes(bucket, manifest_key))
        base = str(PurePosixPath(manifest_key).parent)
        files = []
        for entry in manifest.output:
            parts = urlsplit(entry.url)
            if parts.scheme == "s3":
                fb, fk = parts.netloc, parts.path.lstrip("/")
            elif parts.scheme in ("http", "https"):
                fb, fk = bucket, f"{base}/{PurePosixPath(parts.path).name}".lstrip("/")
            else:
                fb, fk = bucket, f"{base}/{entry.url}".lstrip("/")
            files.append(await _describe_s3(store, fb, fk, entry.type))
        return PreparedInputs(files, manifest.transaction_time)
    if kind == "fhir":
        data = [
            k
            for k in keys
            if k.endswith((".ndjson", ".jsonl", ".ndjson.gz"))
            and PurePosixPath(k).name not in ("log.ndjson",)
        ]
    else:
        data = [k for k in keys if not k.endswith("/")]
    if not data:
        raise InputError(f"no input files under {uri}")
    return PreparedInputs([await _describe_s3(store, bucket, k, None) for k in sorted(data)])


def batch_id_for(kind: BatchKind, source: str, files: Sequence[BatchFile]) -> str:
    """The batch id (= workflow id): source + digest of every input's name, hash and size."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.name}|{f.sha256 or f.etag}|{f.size}|{f.resource_type}\n".encode())
    return f"clinical-{kind}-{source}-{digest.hexdigest()[:24]}"


def options_from(settings: Settings) -> BatchOptions:
    policy = "keep" if settings.clinical_watermark_policy == "keep" else "discard"
    return BatchOptions(
        partition_bytes=settings.clinical_partition_bytes,
        max_parallel=settings.clinical_max_parallel_partitions,
        partitions_per_run=settings.clinical_partitions_per_run,
        chunk_rows=settings.clinical_chunk_rows,
        max_line_bytes=settings.clinical_max_line_bytes,
        heartbeat_seconds=settings.clinical_heartbeat_timeout_seconds,
        watermark_policy=policy,
    )


async def submit_batch(
    client: Client,
    settings: Settings,
    kind: BatchKind,
    source: str,
    inputs: PreparedInputs,
    *,
    force: bool = False,
    submitted_by: str = "cli",
) -> Submission:
    """Start (or join) the batch's workflow. Never starts a second run of a completed batch
    unless ``force``; a running one is joined."""
    check_source(source)
    batch_id = batch_id_for(kind, source, inputs.files)
    req = ClinicalBatchInput(
        batch_id=batch_id,
        kind=kind,
        source_system=source,
        files=inputs.files,
        transaction_time=inputs.transaction_time,
        submitted_by=submitted_by,
        options=options_from(settings),
    )
    reuse = (
        WorkflowIDReusePolicy.ALLOW_DUPLICATE
        if force
        else WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
    )
    try:
        handle = await client.start_workflow(
            ClinicalBatchWorkflow.run,
            req,
            id=batch_id,
            task_queue=settings.clinical_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=reuse,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search_attributes.KIND, "clinical"),
                    SearchAttributePair(search_attributes.SOURCE, source),
                ]
            ),
        )
    except WorkflowAlreadyStartedError:
        existing = client.get_workflow_handle_for(ClinicalBatchWorkflow.run, batch_id)
        return Submission(batch_id, existing, started=False, already_completed=True)
    response = getattr(handle, "_start_workflow_response", None)
    started = bool(getattr(response, "started", True))
    return Submission(batch_id, handle, started=started, already_completed=False)


async def ensure_schedule(client: Client, settings: Settings) -> str:
    """Create the reconciliation Schedule, or update its cron and target; idempotent.

    Returns ``created`` or ``updated``.
    """
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            ReconciliationWorkflow.run,
            ReconcileInput(limit=settings.clinical_reconcile_limit),
            id="clinical-reconcile",
            task_queue=settings.clinical_task_queue,
        ),
        spec=ScheduleSpec(cron_expressions=[settings.clinical_reconcile_cron]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(SCHEDULE_ID, schedule)
        return "created"
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(SCHEDULE_ID)

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await handle.update(replace)
        return "updated"


# -- output ------------------------------------------------------------------------------------


def print_result(result: ClinicalBatchResult) -> None:
    rep, counts = result.report, result.counts
    table = Table("batch", "status", "files", "partitions", "runs", title="Clinical batch")
    table.add_row(
        result.batch_id, result.status, str(result.files), str(result.partitions), str(result.runs)
    )
    console.print(table)
    load = Table("records", "valid", "inserted", "updated", "skipped (older/equal)",
                 "discarded (< watermark)", "quarantined", title="Load report")  # fmt: skip
    load.add_row(
        str(rep.records), str(rep.valid), str(counts.inserted), str(counts.updated),
        str(counts.skipped), str(counts.discarded_below_watermark), str(rep.quarantined_total),
    )  # fmt: skip
    console.print(load)
    if rep.quarantined:
        q = Table("reason", "records", title="Quarantined by reason")
        for reason, n in sorted(rep.quarantined.items()):
            q.add_row(reason, str(n))
        console.print(q)
    if rep.by_resource_type:
        t = Table("resource type", "valid", title="Valid records by type")
        for name, n in sorted(rep.by_resource_type.items()):
            t.add_row(name, str(n))
        console.print(t)
    if rep.hl7_messages:
        console.print(
            f"HL7 messages: {rep.hl7_messages}; routes {rep.hl7_routes}; ACKs {rep.hl7_acks}"
        )
    if rep.coercions:
        console.print(f"coercions: {rep.coercions}")
    for ref in result.error_objects:
        console.print(f"error NDJSON: {ref}")
    for ref in result.ack_objects:
        console.print(f"ACKs: {ref}")


# -- commands ----------------------------------------------------------------------------------


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(1)


async def _ingest(
    settings: Settings, kind: BatchKind, target: str, source: str, force: bool, wait: bool,
    wait_seconds: float,
) -> ClinicalBatchResult | None:  # fmt: skip
    from workers.client import connect_client

    check_source(source)
    keyring = Keyring.load(settings)
    async with ObjectStore(settings, keyring) as store:
        if target.startswith("s3://"):
            inputs = await prepare_s3(store, kind, target)
        else:
            local = await asyncio.to_thread(lambda: Path(target).expanduser())
            inputs = await prepare_local(store, settings, kind, local)
    client = await connect_client(settings, keyring)
    sub = await submit_batch(
        client, settings, kind, source, inputs, force=force, submitted_by=getpass.getuser()
    )
    if sub.already_completed:
        console.print(f"batch {sub.batch_id} already completed: showing its result")
    elif not sub.started:
        console.print(f"batch {sub.batch_id} is already running: joined it")
    else:
        console.print(f"batch {sub.batch_id} started ({len(inputs.files)} file(s))")
    if not wait and not sub.already_completed:
        return None
    return await asyncio.wait_for(sub.handle.result(), wait_seconds)


def _ingest_command(kind: BatchKind, target: str, source: str, force: bool, wait: bool,
                    timeout: float) -> None:  # fmt: skip
    try:
        result = asyncio.run(_ingest(get_settings(), kind, target, source, force, wait, timeout))
    except InputError as exc:
        raise _fail(str(exc)) from exc
    if result is not None:
        print_result(result)


SOURCE_OPT = typer.Option("--source", "-s", help="Source system (a short token).")
FORCE_OPT = typer.Option("--force", help="Run a completed batch again (tables unchanged).")
WAIT_OPT = typer.Option("--wait/--no-wait", help="Wait for the result and print it.")
TIMEOUT_OPT = typer.Option(help="Seconds to wait for the result.")


def register(root: typer.Typer) -> None:
    """Add ``ingest`` and ``clinical`` sub-apps to the root CLI."""
    ingest_app = typer.Typer(help="Load clinical data batches.", no_args_is_help=True)
    clinical_app = typer.Typer(help="Clinical batches: status, reports, quarantine.",
                               no_args_is_help=True)  # fmt: skip
    quarantine_app = typer.Typer(help="Quarantined records.", no_args_is_help=True)
    root.add_typer(ingest_app, name="ingest")
    root.add_typer(clinical_app, name="clinical")
    clinical_app.add_typer(quarantine_app, name="quarantine")

    @ingest_app.command("fhir")
    def ingest_fhir(
        target: Annotated[str, typer.Argument(help="Manifest, NDJSON file/folder, or s3://...")],
        source: Annotated[str, SOURCE_OPT],
        force: Annotated[bool, FORCE_OPT] = False,
        wait: Annotated[bool, WAIT_OPT] = True,
        timeout: Annotated[float, TIMEOUT_OPT] = 3600.0,
    ) -> None:
        """Load a FHIR bulk export (manifest + NDJSON, plain or gzip) as one batch."""
        _ingest_command("fhir", target, source, force, wait, timeout)

    @ingest_app.command("hl7")
    def ingest_hl7(
        target: Annotated[str, typer.Argument(help="HL7 v2 file or folder, or s3://...")],
        source: Annotated[str, SOURCE_OPT],
        force: Annotated[bool, FORCE_OPT] = False,
        wait: Annotated[bool, WAIT_OPT] = True,
        timeout: Annotated[float, TIMEOUT_OPT] = 3600.0,
    ) -> None:
        """Load HL7 v2 message files as one batch (routing, ACKs, mapping to FHIR)."""
        _ingest_command("hl7", target, source, force, wait, timeout)

    demo_app = _demo_group(root)
    if demo_app is not None:

        @demo_app.command("clinical")
        def demo_clinical(
            timeout: Annotated[float, TIMEOUT_OPT] = 600.0,
        ) -> None:
            """Generate the sample FHIR export and HL7 files, load both, print the load report."""
            settings = get_settings()
            try:
                asyncio.run(run_demo(settings, timeout))
            except InputError as exc:
                raise _fail(str(exc)) from exc

    @clinical_app.command("status")
    def status(batch_id: Annotated[str, typer.Argument(help="Batch (= workflow) id.")]) -> None:
        """Live state of a batch (stage, partitions, counts so far)."""
        asyncio.run(_status(get_settings(), batch_id))

    @clinical_app.command("report")
    def report(batch_id: Annotated[str, typer.Argument(help="Batch (= workflow) id.")]) -> None:
        """The load report of a finished batch (waits if it is still running)."""
        asyncio.run(_report(get_settings(), batch_id))

    @quarantine_app.command("list")
    def quarantine_list(
        batch: Annotated[str | None, typer.Option(help="Only this batch.")] = None,
        status: Annotated[str, typer.Option(help="open | recovered | discarded")] = "open",
        limit: Annotated[int, typer.Option(help="Rows to show.")] = 50,
    ) -> None:
        """Quarantined records (context and reason; never the record itself)."""
        asyncio.run(_quarantine_list(get_settings(), batch, status, limit))

    @clinical_app.command("reconcile")
    def reconcile(
        batch: Annotated[str | None, typer.Option(help="Only this batch.")] = None,
        limit: Annotated[int, typer.Option(help="Records to re-check at most.")] = 10000,
    ) -> None:
        """Re-check quarantined records now (the Schedule does this off-peak)."""
        result = asyncio.run(_reconcile(get_settings(), batch, limit))
        console.print(
            f"examined {result.examined}, recovered {result.recovered} "
            f"{result.recovered_by_reason}, still quarantined {result.still_quarantined}"
        )

    @clinical_app.command("schedule")
    def schedule() -> None:
        """Create or update the off-peak reconciliation Schedule (idempotent)."""
        settings = get_settings()
        outcome = asyncio.run(_schedule(settings))
        console.print(
            f"schedule {SCHEDULE_ID} {outcome}: cron {settings.clinical_reconcile_cron!r} "
            f"on {settings.clinical_task_queue}"
        )


def _demo_group(root: typer.Typer) -> typer.Typer | None:
    """The root's ``demo`` sub-app (registered by ``starters.cli``), if there is one."""
    for group in root.registered_groups:
        if group.name == "demo" and group.typer_instance is not None:
            return group.typer_instance
    return None


DEMO_FHIR_SOURCE = "demo-ehr"
DEMO_HL7_SOURCE = "demo-lab"


async def run_demo(
    settings: Settings, wait_seconds: float = 600.0
) -> tuple[ClinicalBatchResult, ClinicalBatchResult]:
    """Generate the demo data under ``<home>/demo-data/clinical``, load it through Temporal
    (sources ``demo-ehr`` and ``demo-lab``) and print both load reports.

    Idempotent: the data is deterministic, so a second run joins the completed batches.
    """
    from clinflow.clinical.sample_data import generate_demo_export

    out = settings.home / "demo-data" / "clinical"
    demo = await asyncio.to_thread(generate_demo_export, out)
    results = []
    for kind, target, source in (
        ("fhir", demo.manifest, DEMO_FHIR_SOURCE),
        ("hl7", demo.hl7_dir, DEMO_HL7_SOURCE),
    ):
        console.rule(f"{kind.upper()} demo batch from {target.relative_to(settings.home)}")
        batch_kind: BatchKind = "fhir" if kind == "fhir" else "hl7"
        result = await _ingest(settings, batch_kind, str(target), source, False, True, wait_seconds)
        assert result is not None
        print_load_report(result)
        results.append(result)
    return results[0], results[1]


def print_load_report(result: ClinicalBatchResult) -> None:
    """The demo's summary: loaded, skipped as older, quarantined by reason (and HL7 ACKs)."""
    rep, counts = result.report, result.counts
    table = Table("outcome", "records", title=f"Load report: {result.kind} from "
                  f"{result.source_system} ({result.status})")  # fmt: skip
    table.add_row("records read", str(rep.records))
    table.add_row("loaded (inserted)", str(counts.inserted))
    table.add_row("loaded (updated)", str(counts.updated))
    table.add_row("skipped as older or equal", str(counts.skipped))
    table.add_row("discarded below watermark", str(counts.discarded_below_watermark))
    for reason, n in sorted(rep.quarantined.items()):
        table.add_row(f"quarantined: {reason}", str(n))
    if rep.hl7_messages:
        table.add_row("HL7 messages", str(rep.hl7_messages))
        for code, n in sorted(rep.hl7_acks.items()):
            table.add_row(f"ACK {code}", str(n))
    console.print(table)
    for ref in result.error_objects:
        console.print(f"error NDJSON: {ref}")
    for ref in result.ack_objects:
        console.print(f"ACKs: {ref}")


async def _client(settings: Settings) -> Client:
    from workers.client import connect_client

    return await connect_client(settings)


async def _status(settings: Settings, batch_id: str) -> None:
    client = await _client(settings)
    handle = client.get_workflow_handle_for(ClinicalBatchWorkflow.run, batch_id)
    desc = await handle.describe()
    console.print(f"{batch_id}: {desc.status.name if desc.status else 'unknown'}")
    if desc.status == WorkflowExecutionStatus.RUNNING:
        state = await handle.query(ClinicalBatchWorkflow.status)
        console.print(
            f"stage {state.stage}; file {state.file_index}/{state.files}; partitions done "
            f"{state.partitions_done}, in flight {state.in_flight}; run {state.runs}; "
            f"records {state.report.records}, quarantined {state.report.quarantined_total}"
        )


async def _report(settings: Settings, batch_id: str) -> None:
    client = await _client(settings)
    result = await client.get_workflow_handle_for(ClinicalBatchWorkflow.run, batch_id).result()
    print_result(result)


async def _quarantine_list(settings: Settings, batch: str | None, status: str, limit: int) -> None:
    from clinflow.db import create_pool

    pool = await create_pool(settings)
    try:
        rows = await pool.fetch(
            "SELECT quarantine_id, batch_id, source_uri, byte_offset, line_index, message_index, "
            "reason_code, attempt, status, message FROM quarantine "
            "WHERE status = $1 AND ($2::text IS NULL OR batch_id = $2) "
            "ORDER BY quarantine_id LIMIT $3",
            status,
            batch,
            limit,
        )
    finally:
        await pool.close()
    table = Table("id", "batch", "source", "byte", "line/msg", "reason", "attempt", "message")
    for r in rows:
        where = r["message_index"] if r["message_index"] is not None else r["line_index"]
        table.add_row(
            str(r["quarantine_id"]), r["batch_id"][-32:], PurePosixPath(r["source_uri"]).name,
            str(r["byte_offset"]), str(where), r["reason_code"], str(r["attempt"]),
            r["message"][:80],
        )  # fmt: skip
    console.print(table)


async def run_reconciliation(
    client: Client, settings: Settings, batch: str | None = None, limit: int = 10000
) -> ReconcileResult:
    """Run ReconciliationWorkflow once now and wait for its report."""
    return await client.execute_workflow(
        ReconciliationWorkflow.run,
        ReconcileInput(limit=limit, batch_id=batch),
        id=f"clinical-reconcile-now-{uuid.uuid4()}",
        task_queue=settings.clinical_task_queue,
    )


async def _reconcile(settings: Settings, batch: str | None, limit: int) -> ReconcileResult:
    return await run_reconciliation(await _client(settings), settings, batch, limit)


async def _schedule(settings: Settings) -> str:
    return await ensure_schedule(await _client(settings), settings)
