"""``clinflow packets ...``: the reviewer's and operator's tools for site packets.

Every state change goes through Temporal (start, signal, update); reads use queries, the
visibility store (search attributes) and, for the DLQ listing, read-only SQL.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from activities.packets_models import (
    REVIEW_ROLE,
    AddDocumentsInput,
    BatchSummary,
    DocumentInput,
    PacketStatus,
    PacketStatusName,
    ReviewInput,
    ReviewOutcome,
)
from clinflow.esign import Decision as ESignDecision
from clinflow.esign import (
    ESignatureError,
    SignatureMeaning,
    load_private_key,
    sign_decision,
)
from clinflow.packets import data_files
from clinflow.settings import Settings, get_settings
from starters.packets_config_cli import register as _register_config

T = TypeVar("T")
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print only JSON on stdout (logs and messages: stderr).")
]

packets_app = typer.Typer(
    help="Site packets: submit, review, gaps, dead letters.", no_args_is_help=True
)
dlq_app = typer.Typer(help="The packet dead-letter queue.", no_args_is_help=True)
packets_app.add_typer(dlq_app, name="dlq")
_register_config(packets_app)
# Not a terminal (pipes, CI, scripts): rich would cut tables at 80 columns; print them wide,
# and every column folds long values instead of truncating them.
WIDE = 200
console = Console(width=None if sys.stdout.isatty() else WIDE)
err = Console(stderr=True, width=None if sys.stderr.isatty() else WIDE)

STATUS_COLOURS = {
    "VALIDATED": "green",
    "VALIDATED_WITH_WARNINGS": "green",
    "APPROVED": "green",
    "BLOCKED": "yellow",
    "ESCALATED": "red",
    "AWAITING_DOCUMENTS": "yellow",
    "INCOMPLETE": "magenta",
    "REJECTED": "red",
    "DEAD_LETTERED": "red",
    "PROCESSING": "cyan",
}


def _run(factory: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    settings = get_settings()
    data_files.configure(settings.packets_config_dir)  # the study configuration in use
    try:
        return asyncio.run(factory(settings))
    except typer.Exit:
        raise
    except Exception as exc:
        err.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc


def _paint(status: str) -> str:
    return f"[{STATUS_COLOURS.get(status, 'white')}]{status}[/]"


class _Session:
    """Client + object store (+ pool when asked) for one command."""

    def __init__(self, settings: Settings, *, pool: bool = False, store: bool = False) -> None:
        self.settings = settings
        self.want_pool = pool
        self.want_store = store

    async def __aenter__(self) -> _Session:
        from clinflow.keyring import Keyring
        from workers.client import connect_client

        self.keyring = Keyring.load(self.settings)
        self.client = await connect_client(self.settings, self.keyring)
        self.store: Any = None
        self.pool: Any = None
        if self.want_store:
            from clinflow.object_store import ObjectStore

            self.store = await ObjectStore(self.settings, self.keyring).__aenter__()
        if self.want_pool:
            from clinflow.db import create_pool

            self.pool = await create_pool(self.settings)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.store is not None:
            await self.store.__aexit__(None, None, None)
        if self.pool is not None:
            await self.pool.close()


# --------------------------------------------------------------------------- rendering
def _table(*headers: str, title: str | None = None) -> Table:
    """A table whose columns fold long values (never an ellipsis)."""
    table = Table(title=title)
    for h in headers:
        table.add_column(h, overflow="fold")
    return table


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout, alone (messages and logs go to stderr)."""
    typer.echo(json.dumps(data, indent=2))


def status_json(st: PacketStatus) -> dict[str, Any]:
    """The packet's status as JSON: documents (classification, signature, evidence, codes),
    findings with details, gaps, reviews (``model_dump(mode="json")`` plus ``has_gaps``)."""
    data = st.model_dump(mode="json")
    data["has_gaps"] = st.gaps is not None and st.gaps.has_gaps
    return data


def gaps_json(st: PacketStatus) -> dict[str, Any]:
    """The packet's gaps as JSON, with the documents' classification (why a type is missing)."""
    gaps = st.gaps
    return {
        "packet_id": st.packet_id,
        "status": st.status.value,
        "region": st.region,
        "checklist": gaps.checklist if gaps else None,
        "has_gaps": gaps is not None and gaps.has_gaps,
        "missing": [g.model_dump(mode="json") for g in gaps.missing] if gaps else [],
        "wrong_version": [g.model_dump(mode="json") for g in gaps.wrong_version] if gaps else [],
        "warnings": [f.model_dump(mode="json") for f in gaps.warnings] if gaps else [],
        "gap_deadline": st.gap_deadline.isoformat() if st.gap_deadline else None,
        "documents": [d.model_dump(mode="json") for d in st.documents],
    }


class PacketRow(BaseModel):
    """One line of ``packets list``: a packet workflow's search attributes."""

    packet_id: str
    status: str = ""
    region: str = ""
    site: str = ""
    protocol: str = ""
    error_category: str = ""
    started: datetime | None = None


def packet_row(wf: Any) -> PacketRow:
    """The row of a visibility listing entry (``WorkflowExecution``)."""
    get = {p.key.name: p.value for p in wf.typed_search_attributes}
    return PacketRow(
        packet_id=wf.id,
        status=str(get.get("ClinflowStatus", "")),
        region=str(get.get("ClinflowRegion", "")),
        site=str(get.get("ClinflowSite", "")),
        protocol=str(get.get("ClinflowProtocol", "")),
        error_category=str(get.get("ClinflowErrorCategory", "")),
        started=wf.start_time,
    )


def list_json(rows: list[PacketRow], query: str) -> dict[str, Any]:
    return {
        "query": query,
        "count": len(rows),
        "packets": [r.model_dump(mode="json") for r in rows],
    }


def print_list(rows: list[PacketRow], query: str) -> None:
    table = _table("packet", "status", "region", "site", "protocol", "error category", "started")
    for r in rows:
        table.add_row(
            r.packet_id,
            _paint(r.status),
            r.region,
            r.site,
            r.protocol,
            r.error_category,
            r.started.isoformat(timespec="seconds") if r.started else "",
        )
    console.print(table)
    console.print(f"{len(rows)} packet(s); query: {query}", soft_wrap=True)


def summary_json(summary: BatchSummary) -> dict[str, Any]:
    """A batch summary as JSON: counts per outcome/category/queue, one line per packet."""
    return summary.model_dump(mode="json")


def print_status(st: PacketStatus) -> None:
    head = _table("packet", "status", "region", "site", "protocol version", "reasons")
    head.add_row(
        st.packet_id,
        _paint(st.status.value),
        st.region,
        st.site_id,
        st.protocol_version,
        ", ".join(st.reasons) or "-",
    )
    console.print(head)
    if st.documents:
        docs = _table(
            "document",
            "type",
            "classified as",
            "signature",
            "pages",
            "state",
            "codes",
            title="documents",
        )
        for d in st.documents:
            read_as = ""
            if d.classified_as is not None:
                confidence = d.classification_confidence
                read_as = d.classified_as.value + (
                    f" ({confidence:.2f})" if confidence is not None else ""
                )
            docs.add_row(
                d.name,
                d.doc_type.value,
                read_as,
                d.signature or "",
                str(d.page_count),
                d.state,
                ", ".join(d.codes),
            )
        console.print(docs)
    if st.findings:
        findings = _table("code", "category", "document", "message", title="findings")
        for f in st.findings:
            findings.add_row(f.code, str(f.category), f.document or "(packet)", f.message)
        console.print(findings)
    if st.gaps is not None and st.gaps.has_gaps:
        print_gaps(st)
    if st.reviews:
        reviews = _table(
            "reviewer", "role", "decision", "accepted", "refusal", "at", title="reviews"
        )
        for r in st.reviews:
            reviews.add_row(
                r.reviewer_id,
                r.role,
                r.decision,
                "yes" if r.accepted else "no",
                r.code or "",
                r.at.isoformat(timespec="seconds"),
            )
        console.print(reviews)
    if st.dlq_ids:
        console.print("dead-letter entries: " + ", ".join(st.dlq_ids))
    if st.escalated:
        console.print("[red]escalated:[/] the review deadline passed without a decision")


def print_gaps(st: PacketStatus) -> None:
    gaps = st.gaps
    if gaps is None or not gaps.has_gaps:
        console.print(f"{st.packet_id}: no gaps")
        return
    table = _table(
        "code", "document type", "expected", "found", "message", title=f"gaps ({gaps.checklist})"
    )
    for g in gaps.items:
        table.add_row(g.code, g.doc_type.value, g.expected or "", g.found or "", g.message)
    console.print(table)
    if st.gap_deadline is not None:
        console.print(
            f"waiting for documents until {st.gap_deadline.isoformat(timespec='seconds')}"
        )


def print_summary(summary: BatchSummary) -> None:
    table = _table(
        "packet", "status", "queue", "reasons", "note", title=f"batch {summary.batch_id}"
    )
    for p in summary.packets:
        table.add_row(p.packet_id, _paint(str(p.status)), p.queue, ", ".join(p.reasons), p.note)
    console.print(table)
    counts = _table("outcome", "packets", title="per outcome")
    for k, v in sorted(summary.outcomes.items()):
        counts.add_row(_paint(k), str(v))
    console.print(counts)
    if summary.categories:
        cats = _table("error category", "findings", title="per error category")
        for k, v in sorted(summary.categories.items()):
            cats.add_row(k, str(v))
        console.print(cats)


async def follow_batch(handle: Any, total: int, out: Console | None = None) -> BatchSummary:
    """Show a progress bar (on ``out``, default stdout) from the batch's ``progress`` query
    until it returns."""
    from workflows.packets_batch import PacketBatchWorkflow

    result_task = asyncio.ensure_future(handle.result())
    with Progress(
        TextColumn("[bold]packets"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=out or console,
        transient=False,
    ) as progress:
        task = progress.add_task("batch", total=total, detail="")
        while not result_task.done():
            try:
                snap = await handle.query(PacketBatchWorkflow.progress)
            except Exception:
                snap = None
            if snap is not None:
                detail = " ".join(f"{k}={v}" for k, v in sorted(snap.outcomes.items()))
                progress.update(task, completed=snap.settled, detail=detail)
            await asyncio.wait({result_task}, timeout=0.5)
        summary: BatchSummary = result_task.result()
        progress.update(task, completed=summary.settled)
    return summary


# --------------------------------------------------------------------------- commands
@packets_app.command("submit")
def submit(
    path: Annotated[
        Path, typer.Argument(help="A packet folder or manifest; with --batch a folder of packets.")
    ],
    batch: Annotated[
        bool, typer.Option("--batch", help="Submit every packet folder under PATH as one batch.")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Wait for the packet (or batch) to settle.")] = True,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print only JSON on stdout: the batch summary, the packet's status, or "
            "(with --no-wait) what was started.",
        ),
    ] = False,
) -> None:
    """Stream the files to encrypted storage (hashing as they go) and start the workflow."""
    say = err if as_json else console

    async def go(settings: Settings) -> None:
        from starters.packets_submit import packet_folders, prepare_batch, start_batch, submit_path

        async with _Session(settings, store=True) as s:
            if batch:
                folders = packet_folders(path)
                if not folders:
                    raise typer.BadParameter(f"no packet folders under {path}")
                say.print(f"uploading {len(folders)} packets ...")
                inputs = await prepare_batch(settings, s.store, folders)
                batch_handle = await start_batch(s.client, settings, s.store, inputs)
                say.print(f"batch workflow: {batch_handle.id}")
                if not wait:
                    if as_json:
                        emit_json({"batch_workflow_id": batch_handle.id, "total": len(inputs)})
                    return
                summary = await follow_batch(batch_handle, len(inputs), out=say)
                if as_json:
                    emit_json(summary_json(summary))
                else:
                    print_summary(summary)
                return
            handle, sub = await submit_path(s.client, settings, s.store, path)
            note = "already submitted (existing workflow)" if sub.existing else "started"
            say.print(f"{sub.packet_id}: {note} on task queue {sub.queue}")
            if not wait:
                if as_json:
                    emit_json(dataclasses.asdict(sub))
                return
            st = await _wait_settled(handle)
            if as_json:
                emit_json(status_json(st))
            else:
                print_status(st)

    _run(go)


async def _wait_settled(handle: Any, limit: float = 600.0) -> PacketStatus:
    from workflows.packets import SitePacketWorkflow

    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        st: PacketStatus = await handle.query(SitePacketWorkflow.status)
        if st.status is not PacketStatusName.PROCESSING or loop.time() > deadline:
            return st
        await asyncio.sleep(0.5)


@packets_app.command("status")
def status(
    packet_id: Annotated[str, typer.Argument(help="Packet (workflow) id.")],
    as_json: JsonOpt = False,
) -> None:
    """The packet's live state (query ``status``)."""

    async def go(settings: Settings) -> None:
        from workflows.packets import SitePacketWorkflow

        async with _Session(settings) as s:
            st = await s.client.get_workflow_handle(packet_id).query(SitePacketWorkflow.status)
            if as_json:
                emit_json(status_json(st))
            else:
                print_status(st)

    _run(go)


@packets_app.command("list")
def list_packets(
    status_: Annotated[
        str | None, typer.Option("--status", help="e.g. BLOCKED, AWAITING_DOCUMENTS.")
    ] = None,
    region: Annotated[str | None, typer.Option(help="Only this region.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Packets by search attributes (Temporal visibility)."""

    async def go(settings: Settings) -> None:
        clauses = ["ClinflowKind = 'packet'"]
        if status_:
            clauses.append(f"ClinflowStatus = '{status_.upper()}'")
        if region:
            clauses.append(f"ClinflowRegion = '{region.lower()}'")
        query = " AND ".join(clauses)
        async with _Session(settings) as s:
            rows = [packet_row(wf) async for wf in s.client.list_workflows(query, limit=limit)]
        if as_json:
            emit_json(list_json(rows, query))
        else:
            print_list(rows, query)

    _run(go)


def _token_user(token: str) -> str | None:
    """The ``sub`` claim of a token, unverified (only to prefill the reviewer id)."""
    try:
        claims = token.split(".")[1]
        return str(json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["sub"])
    except (IndexError, KeyError, ValueError):
        return None


def signed_review(
    status: PacketStatus,
    decision: str,
    reason: str,
    token: str,
    key_file: Path,
    *,
    reviewer: str,
    printed_name: str,
    meaning_text: str | None = None,
    now: datetime | None = None,
) -> ReviewInput:
    """A review signed with the reviewer's Ed25519 private key over the packet's record hash.

    Raises ESignatureError(esign_bad_key) when ``key_file`` is not an Ed25519 private key.
    """
    approve = decision == "APPROVE"
    signed = sign_decision(
        load_private_key(key_file),
        ESignDecision(
            signer=reviewer,
            printed_name=printed_name,
            role=REVIEW_ROLE,
            meaning=SignatureMeaning.APPROVAL if approve else SignatureMeaning.REJECTION,
            signed_at=now or datetime.now(UTC),
            record_ref=status.packet_id,
            record_sha256=status.record_sha256,
            reason=reason,
        ),
    )
    return ReviewInput(
        reviewer_id=reviewer,
        reason=reason,
        token=token,
        decision="APPROVE" if approve else "REJECT",
        signature_meaning=meaning_text
        or (
            "I approve this packet for site activation"
            if approve
            else "I reject this packet for site activation"
        ),
        signed=signed,
    )


def _decide(
    packet_id: str,
    decision: str,
    reason: str,
    token: str | None,
    reviewer: str | None,
    meaning: str | None,
    key: Path,
    name: str | None,
) -> None:
    token = token or os.environ.get("CLINFLOW_TOKEN", "")
    if not token:
        raise typer.BadParameter("a bearer token is required (--token or CLINFLOW_TOKEN)")
    user = reviewer or _token_user(token) or "unknown"

    async def go(settings: Settings) -> None:
        async with _Session(settings) as s:
            handle = s.client.get_workflow_handle(packet_id)
            status = await handle.query("status", result_type=PacketStatus)
            try:
                review = signed_review(
                    status,
                    decision,
                    reason,
                    token,
                    key,
                    reviewer=user,
                    printed_name=name or user,
                    meaning_text=meaning,
                )
            except ESignatureError as exc:
                err.print(f"[red]cannot sign[/]: {exc.reason}")
                raise typer.Exit(2) from None
            outcome = await handle.execute_update("review", review, result_type=ReviewOutcome)
            if outcome.accepted:
                assert review.signed is not None
                console.print(
                    f"[green]{decision.lower()} accepted[/]: packet is now {outcome.status.value}"
                )
                console.print(f"signed: {review.signed.manifestation()}")
            else:
                err.print(
                    f"[red]decision refused[/] ({outcome.code}); it was audited. "
                    f"Packet stays {outcome.status.value}"
                )
                raise typer.Exit(3)

    _run(go)


_KEY_HELP = (
    "The reviewer's Ed25519 private key (clinflow auth keygen; registered with register-key)."
)
_NAME_HELP = "Printed name shown with the signature; default: the reviewer id."
# The options approve and reject share.
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (recorded and audited).")]
KeyOpt = Annotated[Path, typer.Option("--key", help=_KEY_HELP, exists=True, dir_okay=False)]
TokenOpt = Annotated[str | None, typer.Option("--token", help="Bearer token (or CLINFLOW_TOKEN).")]
NameOpt = Annotated[str | None, typer.Option("--name", help=_NAME_HELP)]
ReviewerOpt = Annotated[str | None, typer.Option(help="Reviewer id; default: the token's user.")]
MeaningOpt = Annotated[str | None, typer.Option(help="Signature meaning, in words.")]


@packets_app.command("approve")
def approve(
    packet_id: Annotated[str, typer.Argument()],
    reason: ReasonOpt,
    key: KeyOpt,
    token: TokenOpt = None,
    name: NameOpt = None,
    reviewer: ReviewerOpt = None,
    meaning: MeaningOpt = None,
) -> None:
    """Approve a BLOCKED packet with an e-signature (Regulatory Affairs; update ``review``)."""
    _decide(packet_id, "APPROVE", reason, token, reviewer, meaning, key, name)


@packets_app.command("reject")
def reject(
    packet_id: Annotated[str, typer.Argument()],
    reason: ReasonOpt,
    key: KeyOpt,
    token: TokenOpt = None,
    name: NameOpt = None,
    reviewer: ReviewerOpt = None,
    meaning: MeaningOpt = None,
) -> None:
    """Reject a BLOCKED packet with an e-signature (Regulatory Affairs): it ends REJECTED."""
    _decide(packet_id, "REJECT", reason, token, reviewer, meaning, key, name)


@packets_app.command("gaps")
def gaps(packet_id: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
    """The packet's missing and wrong-version documents against its region's checklist."""

    async def go(settings: Settings) -> None:
        from workflows.packets import SitePacketWorkflow

        async with _Session(settings) as s:
            st = await s.client.get_workflow_handle(packet_id).query(SitePacketWorkflow.status)
            if as_json:
                emit_json(gaps_json(st))
            else:
                print_gaps(st)

    _run(go)


@packets_app.command("add-documents")
def add_documents(
    packet_id: Annotated[str, typer.Argument()],
    files: Annotated[list[Path], typer.Argument(help="Files to add.")],
) -> None:
    """Upload files and hand them to a packet waiting for documents (signal ``add_documents``)."""

    async def go(settings: Settings) -> None:
        from starters.packets_submit import submitter, upload_path
        from workflows.packets import SitePacketWorkflow

        async with _Session(settings, store=True) as s:
            docs = []
            for f in files:
                if not f.is_file():
                    raise typer.BadParameter(f"no such file: {f}")
                ref = await upload_path(s.store, settings, f)
                docs.append(DocumentInput(name=f.name, ref=ref, received_at=datetime.now(UTC)))
            handle = s.client.get_workflow_handle(packet_id)
            await handle.signal(
                SitePacketWorkflow.add_documents,
                AddDocumentsInput(documents=docs, submitted_by=submitter()),
            )
            console.print(f"{len(docs)} document(s) sent to {packet_id}")

    _run(go)


@dlq_app.command("list")
def dlq_list(
    all_: Annotated[bool, typer.Option("--all", help="Include replayed entries.")] = False,
) -> None:
    """Open dead-letter entries with their error and attempt count."""

    async def go(settings: Settings) -> None:
        from starters.packets_dlq import list_dlq

        async with _Session(settings, pool=True) as s:
            entries = await list_dlq(s.pool, include_replayed=all_)
        table = _table(
            "dlq id", "packet", "category", "code", "attempts", "object", "created", "replayed"
        )
        for e in entries:
            table.add_row(
                e.dlq_id[:8],
                e.packet_id,
                e.category,
                e.code,
                str(len(e.attempts)),
                e.s3 or "",
                e.created_at.isoformat(timespec="seconds"),
                e.replayed_by or "",
            )
        console.print(table)

    _run(go)


@dlq_app.command("replay")
def dlq_replay(dlq_id: Annotated[str, typer.Argument(help="DLQ id (or a unique prefix).")]) -> None:
    """Start a new run of the entry's packet; the run marks the entry replayed (audited)."""

    async def go(settings: Settings) -> None:
        from starters.packets_dlq import replay_dlq

        async with _Session(settings, pool=True) as s:
            handle, entry = await replay_dlq(s.client, settings, s.pool, dlq_id)
            console.print(f"replaying {entry.dlq_id} ({entry.code}) as workflow {handle.id}")

    _run(go)


@packets_app.command("watch")
def watch(
    directory: Annotated[Path, typer.Argument(help="The drop folder (one sub-folder per packet).")],
    once: Annotated[bool, typer.Option(help="One pass (two polls), then exit.")] = False,
) -> None:
    """Pick up complete packet folders from a drop folder, once each."""

    async def go(settings: Settings) -> None:
        from starters.packets_watch import DropFolderWatcher

        async with _Session(settings, store=True) as s:
            watcher = DropFolderWatcher(directory, settings, s.client, s.store, echo=console.print)
            if once:
                await watcher.poll()
                await asyncio.sleep(settings.packets_watch_interval_seconds)
                await watcher.poll()
            else:
                await watcher.run()

    _run(go)


@packets_app.command("serve-upload")
def serve_upload(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
) -> None:
    """HTTP upload endpoint: streams each body to encrypted storage, then starts the packet."""

    async def go(settings: Settings) -> None:
        from starters.packets_upload import serve

        async with _Session(settings, store=True) as s:
            await serve(settings, s.client, s.store, host=host, port=port, echo=console.print)

    _run(go)


def demo_packets(
    out: Annotated[Path | None, typer.Option(help="Where to write the demo packets.")] = None,
) -> None:
    """Generate the demo packets, run them as one batch (us + eu), print outcome vs expected."""

    async def go(settings: Settings) -> None:
        from clinflow.packets.sample_data import generate_demo_packets
        from starters.packets_submit import prepare_batch, start_batch

        folder = out or settings.home / "demo-packets"
        expected = generate_demo_packets(folder)
        console.print(f"generated {len(expected)} demo packets in {folder}")
        async with _Session(settings, store=True) as s:
            inputs = await prepare_batch(settings, s.store, [Path(p.path) for p in expected])
            handle = await start_batch(s.client, settings, s.store, inputs)
            console.print(f"batch workflow: {handle.id}")
            summary = await follow_batch(handle, len(inputs))
            print_summary(summary)
            by_id = {p.packet_id: p for p in summary.packets}
            table = _table(
                "packet", "region", "queue", "expected", "actual", "ok", title="demo outcome"
            )
            matches = 0
            for exp, inp in zip(expected, inputs, strict=True):
                got = by_id.get(inp.packet_id)
                actual = str(got.status) if got else "?"
                accepted = {exp.expected_outcome.value}
                if exp.expected_outcome.value == "BLOCKED":
                    accepted |= {"ESCALATED"}
                if exp.expected_outcome.value == "INCOMPLETE":
                    accepted |= {"AWAITING_DOCUMENTS"}
                ok = actual in accepted
                matches += ok
                table.add_row(
                    exp.name,
                    exp.region,
                    got.queue if got else "",
                    exp.expected_outcome.value,
                    _paint(actual),
                    "[green]yes[/]" if ok else "[red]no[/]",
                )
            console.print(table)
            console.print(
                f"{matches}/{len(expected)} packets reached their expected outcome. "
                "Blocked packets wait for Regulatory Affairs "
                "(clinflow packets list --status BLOCKED); "
                "packets with gaps wait for documents until their deadline."
            )
            if matches != len(expected):
                raise typer.Exit(4)

    _run(go)


def register(root: typer.Typer) -> None:
    """Add ``clinflow packets ...`` and ``clinflow demo packets`` to the root app."""
    root.add_typer(packets_app, name="packets")
    packets_app.command("demo")(demo_packets)
    for group in root.registered_groups:
        if group.name == "demo" and group.typer_instance is not None:
            group.typer_instance.command("packets")(demo_packets)


__all__ = ["packets_app", "register"]
