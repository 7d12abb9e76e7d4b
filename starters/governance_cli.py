"""Governance commands: access tokens, reviewer signing keys, signature audits, codec server.

``clinflow auth issue|whoami|keygen|register-key``, ``clinflow audit verify-signatures``
and ``clinflow codec-server``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from clinflow.keyring import Keyring, KeyringError
from clinflow.settings import Settings, get_settings

auth_app = typer.Typer(help="Access tokens and reviewer signing keys.", no_args_is_help=True)

console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _keyring(settings: Settings) -> Keyring:
    """The keyring; the local file gains any purpose it lacks (e.g. ``auth``)."""
    try:
        if settings.keyring_json is None and settings.keyring_path.exists():
            return Keyring.load_or_create(settings.keyring_path)
        return Keyring.load(settings)
    except KeyringError as exc:
        raise _fail(str(exc)) from exc


# --------------------------------------------------------------------------- tokens
@auth_app.command("issue")
def auth_issue(
    user: Annotated[str, typer.Option("--user", "-u", help="User id (not a person's name).")],
    role: Annotated[str, typer.Option("--role", "-r", help="Business role the token carries.")],
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 15m, 8h, 2d.")] = "8h",
) -> None:
    """Print a signed, time-bound access token for USER acting as ROLE."""
    from clinflow.auth import issue_token, parse_ttl

    settings = get_settings()
    try:
        token = issue_token(_keyring(settings), user, role, parse_ttl(ttl), settings=settings)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    print(token)


@auth_app.command("whoami")
def auth_whoami(
    token: Annotated[str, typer.Argument(help="A token from 'clinflow auth issue' or OIDC.")],
) -> None:
    """Verify TOKEN and show its user, role and expiry (exit 3 when it is not valid)."""
    from clinflow.auth import AuthError, verify_token

    settings = get_settings()
    try:
        principal = verify_token(_keyring(settings), token, settings=settings)
    except AuthError as exc:
        raise _fail(f"{exc.code}: {exc.message}", code=3) from exc
    console.print_json(principal.model_dump_json())


# --------------------------------------------------------------------------- reviewer keys
@auth_app.command("keygen")
def auth_keygen(
    user: Annotated[str, typer.Option("--user", "-u", help="Reviewer's user id.")],
    out: Annotated[
        Path | None,
        typer.Option(help="Private key file (default: <home>/reviewer-keys/<user>.pem)."),
    ] = None,
    register: Annotated[
        bool, typer.Option(help="Also register the public key in the database.")
    ] = False,
) -> None:
    """Create an Ed25519 signing key pair: private key file (mode 0600) and <file>.pub."""
    from clinflow.esign import generate_private_key, key_id, write_key_pair

    settings = get_settings()
    path = out or settings.home / "reviewer-keys" / f"{user}.pem"
    if path.exists():
        raise _fail(f"{path} already exists; choose another --out or remove it")
    private = generate_private_key()
    pub_path = write_key_pair(private, path)
    console.print(f"private key: {path} (mode 0600; keep it to yourself)")
    console.print(f"public key:  {pub_path}")
    console.print(f"key id:      {key_id(private.public_key())}")
    if register:
        _register(settings, user, pub_path)


@auth_app.command("register-key")
def auth_register_key(
    user: Annotated[str, typer.Option("--user", "-u", help="Reviewer's user id.")],
    public_key: Annotated[Path, typer.Option("--public-key", help="PEM public key file.")],
) -> None:
    """Register a reviewer's Ed25519 public key (idempotent; audited)."""
    if not public_key.is_file():
        raise _fail(f"no such file: {public_key}")
    _register(get_settings(), user, public_key)


def _register(settings: Settings, user: str, path: Path) -> None:
    from clinflow.esign import ESignatureError, load_public_key

    try:
        key = load_public_key(path.read_bytes())
        record = asyncio.run(_register_async(settings, user, key))
    except ESignatureError as exc:
        raise _fail(exc.reason) from exc
    state = "registered" if record.created else "already registered"
    console.print(f"{state}: key {record.key_id} for {record.user_id}")


async def _register_async(settings: Settings, user: str, key: Any) -> Any:
    from clinflow.audit_chain import AuditChain
    from clinflow.db import create_pool
    from clinflow.esign import register_reviewer_key

    pool = await create_pool(settings)
    try:
        audit = AuditChain(pool, _keyring(settings))
        return await register_reviewer_key(pool, user, key, registered_by="cli", audit=audit)
    finally:
        await pool.close()


# --------------------------------------------------------------------------- audit
def audit_verify_signatures(
    chain: Annotated[str, typer.Option(help="Which chain.")] = "main",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Re-verify every signed review decision in the audit chain (exit 2 on any failure)."""
    report = asyncio.run(_verify_signatures(get_settings(), chain))
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        table = Table("seq", "action", "signer", "meaning", "signed at (UTC)", "key", "result")
        for item in report.items:
            table.add_row(
                str(item.seq),
                item.action,
                item.signer or "",
                item.meaning or "",
                item.signed_at or "",
                item.key_id or "",
                "[green]valid[/]" if item.ok else f"[red]{item.problem}[/]",
            )
        console.print(table)
    if not report.ok:
        raise _fail(
            f"{report.failed} of {report.checked} signed decisions in chain {chain!r} "
            "failed verification",
            code=2,
        )
    if not as_json:
        console.print(f"[green]{report.checked} signed decisions in chain {chain!r} verified[/]")


async def _verify_signatures(settings: Settings, chain: str) -> Any:
    from clinflow.db import create_pool
    from clinflow.esign import verify_audit_signatures

    pool = await create_pool(settings)
    try:
        return await verify_audit_signatures(pool, chain=chain)
    finally:
        await pool.close()


# --------------------------------------------------------------------------- codec server
def codec_server(
    port: Annotated[int | None, typer.Option(help="Port (default: codec_server_port).")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
) -> None:
    """Serve Temporal's remote codec protocol (/encode, /decode) for the UI, in the foreground."""
    from workers.codec_server import serve

    settings = get_settings()
    try:
        asyncio.run(serve(settings, host=host, port=port))
    except KeyboardInterrupt:
        sys.exit(0)


# --------------------------------------------------------------------------- documents
def documents_fetch(
    document_key: Annotated[str, typer.Argument(help="doc-<sha256>-<site>-v<version>")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the plaintext.")],
    reason: Annotated[str, typer.Option(help="Why you need the raw document (audited).")],
    token: Annotated[
        str | None, typer.Option(envvar="CLINFLOW_TOKEN", help="Bearer token (or CLINFLOW_TOKEN).")
    ] = None,
) -> None:
    """Decrypt one stored packet document to a file (authorised roles only; audited)."""
    from clinflow.auth import AuthError
    from clinflow.document_access import DocumentNotFound, fetch_document

    settings = get_settings()

    async def run() -> Any:
        from clinflow.db import create_pool

        pool = await create_pool(settings)
        try:
            return await fetch_document(
                settings, Keyring.load(settings), pool, document_key, token, out, reason=reason
            )
        finally:
            await pool.close()

    try:
        copy = asyncio.run(run())
    except AuthError as exc:
        raise _fail(f"{exc.code}: {exc} (the attempt was audited)", code=3) from exc
    except DocumentNotFound as exc:
        raise _fail(exc.reason) from exc
    console.print(
        f"wrote {copy.size} bytes to {copy.path} (sha256 {copy.sha256[:16]}…, "
        f"audit entry #{copy.audit_seq})"
    )


def _subgroup(root: typer.Typer, name: str) -> typer.Typer | None:
    for group in root.registered_groups:
        if group.name == name and group.typer_instance is not None:
            return group.typer_instance
    return None


def register(root: typer.Typer) -> None:
    """Add ``auth``, ``codec-server`` and ``audit verify-signatures`` to the root CLI."""
    root.add_typer(auth_app, name="auth")
    root.command("codec-server")(codec_server)
    audit = _subgroup(root, "audit")
    if audit is None:
        audit = typer.Typer(help="The audit chain.", no_args_is_help=True)
        root.add_typer(audit, name="audit")
    audit.command("verify-signatures")(audit_verify_signatures)
    documents = typer.Typer(help="Stored packet documents.", no_args_is_help=True)
    documents.command("fetch")(documents_fetch)
    root.add_typer(documents, name="documents")
