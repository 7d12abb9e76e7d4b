"""``clinflow``: the command line for operators, reviewers and starter scripts.

State changes go through Temporal (start, signal, update, query); the CLI never
writes workflow state to the database behind the workflows' backs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from clinflow.keyring import PURPOSES, Keyring
from clinflow.settings import Settings, get_settings
from clinflow.stack import LocalStack, StackError

app = typer.Typer(
    help="clinflow: durable clinical workflows on Temporal.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold keys or PHI
)
stack_app = typer.Typer(help="The local stack of real servers.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
storage_app = typer.Typer(help="Object storage.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit chain.", no_args_is_help=True)
keys_app = typer.Typer(help="Key material.", no_args_is_help=True)
demo_app = typer.Typer(help="Demonstrations on the local stack.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")
app.add_typer(storage_app, name="storage")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(demo_app, name="demo")

console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


# --------------------------------------------------------------------------- stack
@stack_app.command("up")
def stack_up() -> None:
    """Start (or reuse) Temporal, SeaweedFS and PostgreSQL on loopback; apply migrations."""
    settings = get_settings()
    stack = LocalStack(settings, echo=lambda m: console.print(f"  {m}"))
    try:
        statuses = stack.up()
    except StackError as exc:
        raise fail(str(exc)) from exc
    _print_status(statuses)
    console.print(
        f"Temporal UI: http://127.0.0.1:{settings.temporal_ui_port}/namespaces/"
        f"{settings.temporal_namespace}/workflows"
    )


@stack_app.command("down")
def stack_down() -> None:
    """Stop exactly the processes `stack up` started (by recorded pid)."""
    stopped = LocalStack(get_settings()).down()
    console.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@stack_app.command("status")
def stack_status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show each component's state, pid, port and log."""
    statuses = LocalStack(get_settings()).status()
    if as_json:
        console.print_json(json.dumps([s.__dict__ for s in statuses]))
        return
    _print_status(statuses)


@stack_app.command("logs")
def stack_logs(
    component: Annotated[str, typer.Argument(help="temporal | s3 | postgres | worker")],
    lines: Annotated[int, typer.Option("-n", help="How many lines from the end.")] = 40,
) -> None:
    """Print the end of a component's log."""
    try:
        path = LocalStack(get_settings()).log_path(component)
    except StackError as exc:
        raise fail(str(exc)) from exc
    if not path.exists():
        raise fail(f"no log yet at {path}")
    for line in path.read_text(errors="replace").splitlines()[-lines:]:
        print(line)


def _print_status(statuses: list[Any]) -> None:
    table = Table("component", "state", "pid", "port", "log")
    for s in statuses:
        colour = {"running": "green", "stopped": "yellow", "stale": "red"}.get(s.state, "white")
        table.add_row(
            s.component, f"[{colour}]{s.state}[/]", str(s.pid or ""), str(s.port), s.log or s.detail
        )
    console.print(table)


# --------------------------------------------------------------------------- worker
@app.command("worker")
def worker(
    queue: Annotated[
        list[str] | None, typer.Option("--queue", "-q", help="Task queue(s); default: all.")
    ] = None,
    detach: Annotated[
        bool, typer.Option(help="Run in the background, recorded in the local stack's state.")
    ] = False,
    restart: Annotated[
        bool,
        typer.Option(help="With --detach: drain and replace a running background worker."),
    ] = False,
) -> None:
    """Run a worker process (until SIGTERM/SIGINT, then drain in-flight activities)."""
    settings = get_settings()
    if detach:
        stack = LocalStack(settings)
        if restart and stack.stop("worker"):
            console.print("previous worker drained and stopped")
        rec = stack.running("worker")
        if rec is None:
            argv = [sys.executable, "-m", "workers.main"]
            rec = stack.spawn("worker", argv, Path.cwd(), env={**os.environ, **settings.to_env()})
        console.print(f"worker running (pid {rec.pid}); log: {rec.log}")
        return
    from workers.main import serve

    asyncio.run(serve(settings, queue))


# --------------------------------------------------------------------------- db / audit / keys
@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations (idempotent)."""
    from clinflow.db import apply_migrations

    applied = asyncio.run(apply_migrations(get_settings().admin_dsn()))
    console.print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))


@storage_app.command("init")
def storage_init() -> None:
    """Create the project's buckets (idempotent)."""
    from clinflow.object_store import ObjectStore

    async def ensure(settings: Settings) -> list[str]:
        async with ObjectStore(settings, Keyring.load(settings)) as store:
            return await store.ensure_buckets()

    created = asyncio.run(ensure(get_settings()))
    console.print("created: " + (", ".join(created) if created else "nothing (all present)"))


@audit_app.command("verify")
def audit_verify(
    chain: Annotated[str, typer.Option(help="Which chain.")] = "main",
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key", help="PEM of the archive public keys to trust (default: keyring's)."
        ),
    ] = None,
) -> None:
    """Recompute the audit chain, check it against the archive's latest signed checkpoint,
    and re-verify its e-signatures.

    Names the first entry altered, removed or reordered, a truncated or rewritten tail or
    a reset head (with the last trusted entry and the missing range), any refused (forged)
    checkpoint, or counts the signed decisions that no longer verify; exits 2 on any.
    """
    from starters.archive_cli import describe_anchored, verify_anchored

    settings = get_settings()
    notes, errors = describe_anchored(verify_anchored(settings, chain, public_key))
    for line in notes:
        console.print(line, soft_wrap=True)
    if errors:
        for line in errors:
            err.print(f"[bold red]error:[/] {line}", soft_wrap=True)
        raise typer.Exit(2)
    signatures = asyncio.run(_audit_signatures(settings, chain))
    if not signatures.ok:
        raise fail(
            f"{signatures.failed} of {signatures.checked} signed decisions in chain {chain!r} "
            "failed verification (see 'clinflow audit verify-signatures')",
            code=2,
        )
    console.print(f"[green]{signatures.checked} signed decisions verified[/]")


async def _audit_signatures(settings: Settings, chain: str) -> Any:
    """The report of the e-signatures the chain carries."""
    from clinflow.db import create_pool
    from clinflow.esign import verify_audit_signatures

    pool = await create_pool(settings)
    try:
        return await verify_audit_signatures(pool, chain=chain)
    finally:
        await pool.close()


@keys_app.command("rotate")
def keys_rotate(
    purpose: Annotated[str, typer.Argument(help=f"One of: {', '.join(PURPOSES)}")],
) -> None:
    """Add a new active key for PURPOSE to the keyring file; old keys keep decrypting."""
    if purpose not in PURPOSES:
        raise fail(f"unknown purpose {purpose!r}; choose one of {', '.join(PURPOSES)}")
    settings = get_settings()
    ring = Keyring.load_or_create(settings.keyring_path)
    kid = ring.rotate(purpose)
    ring.save(settings.keyring_path)
    console.print(f"{purpose}: new active key {kid}; restart workers to pick it up")


# --------------------------------------------------------------------------- demo
def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@demo_app.command("intake")
def demo_intake(
    path: Annotated[Path, typer.Argument(help="The file to hash, store and audit.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the result.")] = 120.0,
) -> None:
    """Run IntakeWorkflow on one file: hash, store encrypted, verify, audit."""
    if not path.is_file():
        raise fail(f"no such file: {path}")
    settings = get_settings()
    result, wf_id = asyncio.run(_run_intake(settings, path.resolve(), timeout))
    table = Table("workflow id", "stored as", "sha256", "bytes", "audit entry")
    table.add_row(
        wf_id,
        f"s3://{result.bucket}/{result.key}",
        result.sha256[:16] + "…",
        str(result.size),
        f"#{result.audit_seq}",
    )
    console.print(table)
    console.print(
        f"Temporal UI: http://127.0.0.1:{settings.temporal_ui_port}/namespaces/"
        f"{settings.temporal_namespace}/workflows/{wf_id}"
    )
    console.print(
        f"CLI: temporal workflow list --address {settings.temporal_address} "
        f"--namespace {settings.temporal_namespace}"
    )


async def _run_intake(settings: Settings, path: Path, wait_seconds: float) -> tuple[Any, str]:
    from temporalio.common import (
        SearchAttributePair,
        TypedSearchAttributes,
        WorkflowIDConflictPolicy,
        WorkflowIDReusePolicy,
    )
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from workers.client import connect_client
    from workflows import search_attributes
    from workflows.intake import IntakeInput, IntakeWorkflow

    sha, size = sha256_file(path)
    wf_id = f"intake-{sha}"
    client = await connect_client(settings)
    started = time.monotonic()
    try:
        handle = await client.start_workflow(
            IntakeWorkflow.run,
            IntakeInput(
                path=str(path),
                sha256=sha,
                size=size,
                submitted_by=os.environ.get("USER", "cli"),
                bucket=settings.s3_bucket_documents,
            ),
            id=wf_id,
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(search_attributes.KIND, "intake")]
            ),
        )
    except WorkflowAlreadyStartedError:
        # The same file was taken in before: its workflow id is its idempotency key.
        console.print(f"already processed: {wf_id} (returning the existing result)")
        handle = client.get_workflow_handle_for(IntakeWorkflow.run, wf_id)
    result = await asyncio.wait_for(handle.result(), timeout=wait_seconds)
    console.print(f"completed in {time.monotonic() - started:.2f}s")
    return result, wf_id


# --------------------------------------------------------------------------- capability CLIs
# Each capability module adds its commands to the root app here (one line each).
# >>> capability commands
from starters.governance_cli import register as _register_governance  # noqa: E402

_register_governance(app)
from starters.clinical_cli import register as _register_clinical  # noqa: E402

_register_clinical(app)
from starters.packets_cli import register as _register_packets  # noqa: E402

_register_packets(app)
from starters.archive_cli import register as _register_archive  # noqa: E402

_register_archive(app)
# <<< capability commands


def main() -> None:
    app()


if __name__ == "__main__":
    main()
