"""Idempotency keys of the packet flow, as Temporal-safe id strings.

A document's key is ``sha256 + site_id + protocol_version`` (same bytes submitted for the same
site and protocol version are the same document); a packet's key is its site and protocol
version (one activation packet per site per protocol version, which later signals extend).
Keys use only ``[A-Za-z0-9._-]`` so they are valid workflow ids, S3 keys and SQL text alike.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024


def safe_token(value: str) -> str:
    """``value`` with every run of characters outside ``[A-Za-z0-9._-]`` replaced by ``_``."""
    token = _UNSAFE.sub("_", value.strip())
    if not token:
        raise ValueError("an identifier part is empty")
    return token


def document_key(sha256: str, site_id: str, protocol_version: str) -> str:
    """``doc-<sha256>-<site>-v<version>``: deterministic, so resubmission maps to one id.

    Raises ValueError when ``sha256`` is not 64 lowercase hex digits or a part is empty.
    """
    if not _SHA256.match(sha256):
        raise ValueError("sha256 must be 64 lowercase hex digits")
    return f"doc-{sha256}-{safe_token(site_id)}-v{safe_token(protocol_version)}"


def packet_key(site_id: str, protocol_number: str, protocol_version: str) -> str:
    """``packet-<site>-<protocol>-v<version>``: the packet workflow's id."""
    return (
        f"packet-{safe_token(site_id)}-{safe_token(protocol_number)}"
        f"-v{safe_token(protocol_version)}"
    )


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (bounded memory)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def packet_record_sha256(packet_id: str, documents: list[tuple[str, str]]) -> str:
    """The packet's record hash: SHA-256 over its id and every (file name, sha256), sorted.

    What a reviewer's electronic signature is bound to: the same documents give the same
    hash; adding, removing or changing one document changes it. Pure and deterministic (safe
    inside a workflow).
    """
    h = hashlib.sha256(b"clinflow-packet-record-v1\n" + packet_id.encode() + b"\n")
    for name, sha in sorted(documents):
        h.update(name.encode() + b"\x00" + sha.encode() + b"\n")
    return h.hexdigest()
