"""One way into the object store: only the S3 gateway, with its credentials.

A compliance-locked archive version is written the way the audit archive writes it; then every
other door of SeaweedFS is tried without credentials: the filer's, the master's and the volume
server's HTTP APIs (read, overwrite, delete, delete the whole collection) and the gRPC ports.
Each refuses, and the version still reads back intact through S3.
"""

from __future__ import annotations

import re
import socket
import ssl
import stat
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from clinflow.audit_archive import AuditArchive, SealedSegment
from clinflow.audit_chain import AuditChain, AuditEntry
from clinflow.keyring import Keyring
from clinflow.object_store import ObjectStore
from clinflow.settings import Settings
from clinflow.stack import find_binary, weed_ports

pytestmark = pytest.mark.stack

# The HTTP/2 connection preface and an empty SETTINGS frame: what a gRPC client sends first.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
H2_SETTINGS = 0x04


@pytest.fixture
async def store(stack: Settings, keyring: Keyring) -> AsyncIterator[ObjectStore]:
    async with ObjectStore(stack, keyring) as s:
        yield s


@pytest.fixture
async def sealed(
    stack: Settings, app_pool: Any, keyring: Keyring, store: ObjectStore
) -> SealedSegment:
    """One compliance-locked archive segment, written by the audit archive itself."""
    name = f"lockdown-{uuid.uuid4().hex[:10]}"
    chain = AuditChain(app_pool, keyring, name)
    for i in range(2):
        await chain.append(AuditEntry(actor="tester", action="test.event", subject_ref=f"d{i}"))
    result = await AuditArchive(stack, app_pool, keyring, store, name).seal()
    segment = result.segments[0]
    assert segment.lock_mode == "object-lock" and segment.version_id
    return segment


def _weed_home(stack: Settings) -> Path:
    return stack.home.resolve() / "s3"


def _weed_shell(stack: Settings, commands: str) -> str:
    """Run ``weed shell`` as the stack's owner does: with its security.toml (cwd)."""
    ports = weed_ports(stack)
    res = subprocess.run(
        [
            str(find_binary("weed")),
            "shell",
            f"-master=127.0.0.1:{ports['master.port']}.{ports['master.port.grpc']}",
            f"-filer=127.0.0.1:{ports['filer.port']}.{ports['filer.port.grpc']}",
        ],
        input=commands,
        cwd=_weed_home(stack),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return res.stdout + res.stderr


def _file_id(stack: Settings, segment: SealedSegment) -> str:
    """The volume file id holding the segment's version (looked up with the stack's keys)."""
    path = f"/buckets/{segment.bucket}/{segment.object_key}.versions/v_{segment.version_id}"
    out = _weed_shell(stack, f"fs.meta.cat {path}\n")
    found = re.search(r'"fileId":\s*"([0-9]+,[0-9a-f]+)"', out)
    assert found, f"no chunk found for {path}:\n{out[-2000:]}"
    return found.group(1)


def _http(method: str, url: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, method=method, data=body)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _h2_answer(port: int, tls: ssl.SSLContext | None) -> bytes | str:
    """Send a gRPC client's first bytes; the server's first answer, or why there was none."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            conn: socket.socket = tls.wrap_socket(raw) if tls else raw
            conn.sendall(H2_PREFACE)
            return conn.recv(64)
    except (OSError, ssl.SSLError) as exc:
        return repr(exc)


def _tls(stack: Settings, *, client_cert: bool) -> ssl.SSLContext:
    tls_dir = _weed_home(stack) / "security"
    ctx = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
    ctx.check_hostname = False
    ctx.set_alpn_protocols(["h2"])
    if client_cert:
        ctx.load_cert_chain(tls_dir / "node.crt", tls_dir / "node.key")
    return ctx


async def _read_version(store: ObjectStore, segment: SealedSegment) -> bytes:
    resp = await store.client.get_object(
        Bucket=segment.bucket, Key=segment.object_key, VersionId=segment.version_id
    )
    async with resp["Body"] as body:
        data: bytes = await body.read()
    return data


async def test_only_the_s3_gateway_reaches_the_data(
    stack: Settings, store: ObjectStore, sealed: SealedSegment
) -> None:
    original = await _read_version(store, sealed)
    fid = _file_id(stack, sealed)  # the data really is there, for whoever holds the keys
    ports = weed_ports(stack)
    filer = f"http://127.0.0.1:{ports['filer.port']}"
    master = f"http://127.0.0.1:{ports['master.port']}"
    volume = f"http://127.0.0.1:{ports['volume.port']}"
    entry = f"/buckets/{sealed.bucket}/{sealed.object_key}"
    version = f"{entry}.versions/v_{sealed.version_id}"
    collection = sealed.bucket  # SeaweedFS stores each bucket in a collection of its name

    # Filer and master: no HTTP API at all (-disableHttp), so 404 for every path.
    attempts = [
        ("GET", filer + version),
        ("GET", filer + entry),
        ("GET", filer + f"/buckets/{sealed.bucket}/?pretty=y"),
        ("DELETE", filer + version),
        ("DELETE", filer + entry),
        ("DELETE", filer + f"/buckets/{sealed.bucket}?recursive=true"),
        ("PUT", filer + version),
        ("POST", filer + entry),
        ("GET", master + f"/col/delete?collection={collection}"),
        ("GET", master + "/dir/assign"),
        ("GET", master + f"/dir/lookup?fileId={fid}"),
        ("GET", master + f"/vol/vacuum?garbageThreshold=0&collection={collection}"),
    ]
    for method, url in attempts:
        status = _http(method, url, b"overwritten" if method in ("PUT", "POST") else None)
        assert status in (401, 403, 404), f"{method} {url} answered {status} without credentials"
    # Volume server: the chunk's real file id, refused without SeaweedFS's JWT.
    for method in ("GET", "HEAD", "DELETE", "PUT", "POST"):
        body = b"overwritten" if method in ("PUT", "POST") else None
        status = _http(method, f"{volume}/{fid}", body)
        assert status == 401, f"{method} {volume}/{fid} answered {status} without a JWT"

    # gRPC: nothing in plain text, no TLS session without the stack's client certificate.
    for flag in ("master.port.grpc", "volume.port.grpc", "filer.port.grpc", "s3.port.grpc"):
        port = ports[flag]
        plain = _h2_answer(port, None)
        assert not (isinstance(plain, bytes) and plain[3:4] == bytes([H2_SETTINGS])), flag
        anonymous = _h2_answer(port, _tls(stack, client_cert=False))
        assert isinstance(anonymous, str) and "CERTIFICATE_REQUIRED" in anonymous, (
            flag,
            anonymous,
        )
        # The control: the same port speaks gRPC to a client holding the certificate.
        trusted = _h2_answer(port, _tls(stack, client_cert=True))
        assert isinstance(trusted, bytes) and trusted[3:4] == bytes([H2_SETTINGS]), (flag, trusted)

    # The version is intact, and S3 itself still refuses to delete it (Object Lock).
    assert await _read_version(store, sealed) == original
    assert _file_id(stack, sealed) == fid
    with pytest.raises(ClientError) as refused:
        await store.client.delete_object(
            Bucket=sealed.bucket, Key=sealed.object_key, VersionId=sealed.version_id
        )
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert await _read_version(store, sealed) == original


def test_keys_are_private_to_the_stack_owner(stack: Settings) -> None:
    home = _weed_home(stack)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    secrets = [home / "security.toml", home / "s3.json", *(home / "security").iterdir()]
    assert {p.name for p in secrets} >= {"security.toml", "ca.crt", "node.crt", "node.key"}
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    text = (home / "security.toml").read_text()
    for section in ("jwt.signing", "jwt.signing.read", "jwt.filer_signing"):
        key = re.search(rf'^\[{re.escape(section)}\]\nkey = "([^"]+)"', text, re.M)
        assert key and len(key.group(1)) >= 32, section
    assert not (home / "security" / "ca.key").exists(), "the CA's key is never kept"
