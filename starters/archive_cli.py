"""CLI for the audit archive, retention and PDF signatures.

``clinflow audit seal [--schedule]``, ``clinflow audit checkpoint``,
``clinflow audit verify-archive``, ``clinflow audit archive-key``,
``clinflow retention plan|run|schedule`` and ``clinflow pdf verify-signature FILE``;
and the archive half of ``clinflow audit verify`` (:func:`verify_anchored`,
:func:`describe_anchored`). Sealing, checkpointing and purging are state changes,
so they run as workflows (a worker must serve ``archive_task_queue``); planning
and verifying only read.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import WorkflowIDConflictPolicy

from clinflow.keyring import Keyring
from clinflow.settings import Settings, get_settings

console = Console()
err = Console(stderr=True)

SEAL_SCHEDULE_ID = "clinflow-audit-seal"
CHECKPOINT_SCHEDULE_ID = "clinflow-audit-checkpoint"
RETENTION_SCHEDULE_ID = "clinflow-retention"

retention_app = typer.Typer(help="Retention policies and purge.", no_args_is_help=True)
pdf_app = typer.Typer(help="PDF documents.", no_args_is_help=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


# --------------------------------------------------------------------------- schedules
def _schedules(settings: Settings) -> dict[str, Schedule]:
    from clinflow.audit_archive import CHECKPOINT_INTERVAL
    from workflows.governance import (
        AuditSealInput,
        AuditSealWorkflow,
        RetentionInput,
        RetentionWorkflow,
    )

    skip = SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP)
    return {
        SEAL_SCHEDULE_ID: Schedule(
            action=ScheduleActionStartWorkflow(
                AuditSealWorkflow.run,
                AuditSealInput(),
                id="audit-seal",
                task_queue=settings.archive_task_queue,
            ),
            spec=ScheduleSpec(
                intervals=[
                    ScheduleIntervalSpec(
                        every=timedelta(minutes=settings.archive_seal_interval_minutes)
                    )
                ]
            ),
            policy=skip,
        ),
        CHECKPOINT_SCHEDULE_ID: Schedule(
            action=ScheduleActionStartWorkflow(
                AuditSealWorkflow.run,
                AuditSealInput(seal=False, verify=False, actor="schedule:audit-checkpoint"),
                id="audit-checkpoint",
                task_queue=settings.archive_task_queue,
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=CHECKPOINT_INTERVAL)]),
            policy=skip,
        ),
        RETENTION_SCHEDULE_ID: Schedule(
            action=ScheduleActionStartWorkflow(
                RetentionWorkflow.run,
                RetentionInput(),
                id="retention",
                task_queue=settings.archive_task_queue,
            ),
            spec=ScheduleSpec(cron_expressions=[settings.retention_schedule_cron]),
            policy=skip,
        ),
    }


async def ensure_schedules(client: Client, settings: Settings) -> dict[str, str]:
    """Create (or bring up to date) the seal, checkpoint and retention schedules; idempotent.

    Returns schedule id -> "created" | "updated".
    """
    out: dict[str, str] = {}
    for schedule_id, schedule in _schedules(settings).items():
        try:
            await client.create_schedule(schedule_id, schedule)
            out[schedule_id] = "created"
        except ScheduleAlreadyRunningError:

            def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=new)

            await client.get_schedule_handle(schedule_id).update(replace)
            out[schedule_id] = "updated"
    return out


async def _client(settings: Settings) -> Client:
    from workers.client import connect_client

    return await connect_client(settings, Keyring.load(settings))


def _schedule_cmd() -> None:
    settings = get_settings()

    async def go() -> dict[str, str]:
        return await ensure_schedules(await _client(settings), settings)

    for schedule_id, what in asyncio.run(go()).items():
        console.print(f"schedule {schedule_id}: {what} (task queue {settings.archive_task_queue})")


# --------------------------------------------------------------------------- audit
def audit_seal(
    chain: Annotated[str, typer.Option(help="Which chain.")] = "main",
    schedule: Annotated[
        bool,
        typer.Option(
            "--schedule", help="Create/update the seal, checkpoint and retention schedules."
        ),
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the seal.")] = 300.0,
) -> None:
    """Seal new audit entries into write-once storage now (runs AuditSealWorkflow)."""
    if schedule:
        _schedule_cmd()
        return
    from workflows.governance import AuditSealInput, AuditSealWorkflow

    settings = get_settings()

    async def go() -> Any:
        client = await _client(settings)
        return await asyncio.wait_for(
            client.execute_workflow(
                AuditSealWorkflow.run,
                AuditSealInput(chain=chain, actor="cli:audit-seal"),
                id=f"audit-seal-{chain}-on-demand",
                task_queue=settings.archive_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            ),
            timeout,
        )

    result = asyncio.run(go())
    seal = result.seal
    if seal.segments == 0:
        console.print(f"audit chain {chain!r}: nothing new to seal (head {seal.head_seq})")
    else:
        console.print(
            f"audit chain {chain!r}: sealed entries {seal.first_seq}..{seal.last_seq} "
            f"in {seal.segments} segment(s); archive verified ({result.verified_segments} segments)"
        )
    if seal.checkpoint_seq is not None:
        console.print(f"head checkpointed at entry {seal.checkpoint_seq}")


def audit_checkpoint(
    chain: Annotated[str, typer.Option(help="Which chain.")] = "main",
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 120.0,
) -> None:
    """Sign the chain's head into the archive now (the checkpoint schedule does it every
    minute); refused when the chain no longer extends the latest checkpoint."""
    from workflows.governance import AuditSealInput, AuditSealWorkflow

    settings = get_settings()

    async def go() -> Any:
        client = await _client(settings)
        return await asyncio.wait_for(
            client.execute_workflow(
                AuditSealWorkflow.run,
                AuditSealInput(chain=chain, seal=False, verify=False, actor="cli:audit-checkpoint"),
                id=f"audit-checkpoint-{chain}-on-demand",
                task_queue=settings.archive_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            ),
            timeout,
        )

    seal = asyncio.run(go()).seal
    if seal.checkpoint_seq is None:
        console.print(f"audit chain {chain!r}: empty, nothing to checkpoint")
        return
    what = "checkpointed" if seal.checkpoint_written else "already checkpointed"
    console.print(f"audit chain {chain!r}: head {what} at entry {seal.checkpoint_seq}")


def audit_archive_key(
    out: Annotated[Path | None, typer.Option(help="Write the PEM here instead.")] = None,
) -> None:
    """Print the archive's Ed25519 public keys (PEM): all a verifier needs to check seals
    and checkpoints (pass them to verify-archive/verify with --public-key)."""
    from clinflow.audit_archive import ArchiveKeys

    keys = ArchiveKeys.from_keyring(Keyring.load(get_settings()))
    if not keys.keys:
        raise _fail("the keyring has no archive key: run 'clinflow keys rotate archive'")
    pem = keys.to_pem()
    if out is None:
        print(pem, end="")
        return
    out.write_text(pem)
    err.print(f"wrote {len(keys.keys)} key(s) ({', '.join(keys.keys)}) to {out}")


PublicKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="PEM file of the archive public keys to trust (default: the keyring's).",
    ),
]


def _trusted_keys(public_key: Path | None) -> Any:
    from clinflow.audit_archive import ArchiveError, ArchiveKeys

    if public_key is None:
        return None
    try:
        return ArchiveKeys.from_pem(public_key.read_text())
    except (OSError, ArchiveError) as exc:
        raise _fail(f"cannot read archive public keys from {public_key}: {exc}") from exc


def audit_verify_archive(
    chain: Annotated[str, typer.Option(help="Which chain.")] = "main",
    public_key: PublicKeyOption = None,
) -> None:
    """Check every sealed segment against the database; name the first discrepancy."""
    settings = get_settings()
    report = asyncio.run(_verify_archive(settings, chain, _trusted_keys(public_key)))
    if report.ok:
        console.print(
            f"[green]audit archive {chain!r} verified[/]: {report.segments} segments, "
            f"{report.entries} entries, sealed through entry {report.sealed_through_seq}"
        )
        return
    d = report.first_discrepancy
    raise _fail(f"audit archive {chain!r}: segment {d.segment_no}: {d.problem}", code=2)


async def _verify_archive(settings: Settings, chain: str, keys: Any = None) -> Any:
    from clinflow.audit_archive import AuditArchive
    from clinflow.db import create_pool
    from clinflow.object_store import ObjectStore

    keyring = Keyring.load(settings)
    pool = await create_pool(settings)
    try:
        async with ObjectStore(settings, keyring) as store:
            archive = AuditArchive(settings, pool, keyring, store, chain, trusted_keys=keys)
            return await archive.verify_archive()
    finally:
        await pool.close()


def verify_anchored(settings: Settings, chain: str, public_key: Path | None = None) -> Any:
    """``audit verify``'s chain check: the database against the latest signed checkpoint
    (an AnchoredVerifyReport). Exits 1 when the archive cannot be read: a chain checked
    without its checkpoint cannot show a truncated tail."""
    from botocore.exceptions import BotoCoreError, ClientError

    from clinflow.audit_archive import AuditArchive
    from clinflow.db import create_pool
    from clinflow.errors import ClinflowError
    from clinflow.object_store import ObjectStore

    keys = _trusted_keys(public_key)

    async def go() -> Any:
        keyring = Keyring.load(settings)
        pool = await create_pool(settings)
        try:
            async with ObjectStore(settings, keyring) as store:
                archive = AuditArchive(settings, pool, keyring, store, chain, trusted_keys=keys)
                return await archive.verify_chain()
        finally:
            await pool.close()

    try:
        return asyncio.run(go())
    except (ClinflowError, BotoCoreError, ClientError) as exc:
        raise _fail(f"cannot read the audit archive's checkpoints: {exc}") from exc


def describe_anchored(report: Any) -> tuple[list[str], list[str]]:
    """(notes, errors) to print for an AnchoredVerifyReport; any error means exit 2."""
    chain = report.chain
    notes: list[str] = []
    errors: list[str] = []
    r = report.report
    cp = report.checkpoint.checkpoint if report.checkpoint else None
    if r.ok:
        notes.append(f"[green]audit chain {chain!r} verified[/]: {r.entries} entries intact")
    else:
        brk = r.first_break
        where = {
            "truncated": "is truncated",
            "diverged": "was rewritten",
            "head_reset": "has a reset head",
            "head_missing": "has a reset head",
        }.get(brk.kind, f"is broken at entry {brk.seq}")
        label = "replaced range" if brk.kind == "diverged" else "missing range"
        missing = f", {label} {brk.missing_range}" if brk.missing_range else ""
        errors.append(
            f"audit chain {chain!r} {where}: last trusted entry {brk.last_trusted}{missing}. "
            f"{brk.problem[0].upper()}{brk.problem[1:]}"
        )
    if cp is not None:
        when = cp.checkpointed_at.isoformat(timespec="seconds")
        lead = "anchored by the signed checkpoint" if r.ok else "latest signed checkpoint"
        notes.append(
            f"{lead} of {when} at entry {cp.seq} "
            f"(entry id {cp.entry_id}, key {cp.signing_key_id[:16]}): "
            f"{report.checkpoint.uri}"
        )
        if r.ok and report.unanchored_entries:
            stale = " [yellow](stale: is the checkpoint schedule running?)[/]"
            notes.append(
                f"{report.unanchored_entries} newer entr"
                f"{'y is' if report.unanchored_entries == 1 else 'ies are'} not yet checkpointed"
                + (stale if report.stale else "")
            )
    elif r.ok and r.entries:
        notes.append(
            f"[yellow]warning:[/] no signed checkpoint of chain {chain!r} in the archive yet: "
            "a truncated tail cannot be detected ('clinflow audit seal --schedule')"
        )
    for obj in report.refused:
        errors.append(f"refused checkpoint {obj.uri}: {obj.problem}")
    return notes, errors


# --------------------------------------------------------------------------- retention
def _parse_now(now: str | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    value = datetime.fromisoformat(now)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@retention_app.command("plan")
def retention_plan(
    now: Annotated[str | None, typer.Option(help="Plan as of this ISO time (UTC).")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many items.")] = None,
) -> None:
    """List what the retention policies would purge (nothing is changed)."""
    settings = get_settings()
    plan = asyncio.run(_plan(settings, _parse_now(now), limit))
    table = Table("policy", "what", "last changed")
    for item in plan.items:
        table.add_row(item.policy, item.ref, item.aged_from.isoformat(timespec="seconds"))
    console.print(table)
    more = " (more is due: limit reached)" if plan.truncated else ""
    console.print(f"{len(plan.items)} item(s) due at {plan.now.isoformat()}{more}")


async def _plan(settings: Settings, now: datetime, limit: int | None) -> Any:
    from clinflow.audit_chain import AuditChain
    from clinflow.db import create_pool
    from clinflow.key_escrow import KeyEscrow
    from clinflow.object_store import ObjectStore
    from clinflow.retention import Retention

    keyring = Keyring.load(settings)
    pool = await create_pool(settings)
    try:
        async with ObjectStore(settings, keyring) as store:
            retention = Retention(
                settings, pool, store, KeyEscrow(pool, keyring), AuditChain(pool, keyring)
            )
            return await retention.plan(now, limit=limit)
    finally:
        await pool.close()


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count only; purge nothing.")] = False,
    limit: Annotated[int | None, typer.Option(help="At most this many items.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 1800.0,
) -> None:
    """Apply the retention policies now (runs RetentionWorkflow)."""
    from workflows.governance import RetentionInput, RetentionWorkflow

    settings = get_settings()

    async def go() -> Any:
        client = await _client(settings)
        return await asyncio.wait_for(
            client.execute_workflow(
                RetentionWorkflow.run,
                RetentionInput(dry_run=dry_run, limit=limit, actor="cli:retention-run"),
                id="retention-on-demand",
                task_queue=settings.archive_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            ),
            timeout,
        )

    summary = asyncio.run(go())
    verb = "would purge" if summary.dry_run else "purged"
    console.print(
        f"retention at {summary.now.isoformat()}: {summary.due} due, {verb} "
        f"{summary.due if summary.dry_run else summary.purged} "
        f"({summary.crypto_shredded} crypto-shredded); per policy: {summary.per_policy}"
    )


@retention_app.command("schedule")
def retention_schedule() -> None:
    """Create/update the retention and audit-seal schedules (idempotent)."""
    _schedule_cmd()


# --------------------------------------------------------------------------- pdf
@pdf_app.command("verify-signature")
def pdf_verify_signature(
    file: Annotated[Path, typer.Argument(help="The PDF to check.")],
    trust: Annotated[
        Path | None, typer.Option(help="PEM file or directory of approved CAs.")
    ] = None,
    required: Annotated[
        bool, typer.Option("--required", help="Fail when the PDF is unsigned.")
    ] = False,
) -> None:
    """Validate every digital signature in FILE against the approved CAs (exit 2 if not ok)."""
    from clinflow.pdf_signatures import PdfSignatureError, TrustBundle, validate_pdf_signatures

    if not file.is_file():
        raise _fail(f"no such file: {file}")
    settings = get_settings()
    try:
        bundle = TrustBundle.load(trust) if trust else TrustBundle.from_settings(settings)
        report = validate_pdf_signatures(
            file, bundle, max_modification=settings.pdfsig_max_modification
        )
    except PdfSignatureError as exc:
        raise _fail(str(exc)) from exc
    if not report.signed:
        console.print(f"{file.name}: no digital signature")
        if required:
            raise typer.Exit(2)
        return
    table = Table("field", "status", "signed at", "modification", "certificate sha256", "reason")
    for sig in report.signatures:
        colour = "green" if sig.ok else "red"
        table.add_row(
            sig.field,
            f"[{colour}]{sig.status}[/]",
            (sig.signing_time.isoformat(timespec="seconds") if sig.signing_time else "-")
            + f" ({sig.signing_time_source})",
            sig.modification_level or "-",
            (sig.signer_fingerprint_sha256 or "")[:16],
            sig.reason,
        )
    console.print(table)
    if not report.ok:
        raise typer.Exit(2)


# --------------------------------------------------------------------------- registration
def _audit_group(root: typer.Typer) -> typer.Typer:
    for group in root.registered_groups:
        if group.name == "audit" and group.typer_instance is not None:
            return group.typer_instance
    audit = typer.Typer(help="The audit chain.", no_args_is_help=True)
    root.add_typer(audit, name="audit")
    return audit


def register(root: typer.Typer) -> None:
    """Add ``audit seal|checkpoint|verify-archive|archive-key``, ``retention ...``, ``pdf ...``."""
    audit = _audit_group(root)
    audit.command("seal")(audit_seal)
    audit.command("checkpoint")(audit_checkpoint)
    audit.command("verify-archive")(audit_verify_archive)
    audit.command("archive-key")(audit_archive_key)
    root.add_typer(retention_app, name="retention")
    root.add_typer(pdf_app, name="pdf")
