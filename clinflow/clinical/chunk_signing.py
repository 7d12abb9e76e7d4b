"""HMAC signatures over record chunks: tamper detection between pipeline stages.

A partition moves its records through stages that do not share memory (the reading activity,
a validating process in a pool, the loading activity). Each hand-over is signed by the stage
that produces it and verified by the stage that consumes it:

1. ingestion signs the raw chunk (every line's byte offset and bytes) — ``sign_raw``;
2. the transformer verifies that signature before it reads a record (``verify_raw``), then signs
   what it produced: rows (key, version, body) and quarantine records (``sign_output``);
3. the loader verifies the output signature right before COPY (``verify_output``).

A chunk altered in between (a bit flip, a swapped row, a dropped record) raises
``ChunkTampered``, a COMPLIANCE_BLOCK: never retried, never loaded.

The key is derived (HKDF-SHA256, info ``clinflow/chunk-signing/v1``) from the keyring's
``audit`` key, so chunk signatures and the audit chain never share a key while the keyring keeps
its four purposes; the signature names the audit key id, so rotation keeps old chunks
verifiable. Signatures are ``<key id>:<hex HMAC-SHA256>``. Pure functions, safe in a process pool.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from hashlib import sha256

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from clinflow.clinical.models import FhirRow, QuarantineRecord
from clinflow.errors import ComplianceBlock
from clinflow.keyring import Keyring

HKDF_INFO = b"clinflow/chunk-signing/v1"
_RAW_TAG = b"raw-chunk/v1"
_OUT_TAG = b"output-chunk/v1"
_COPY_TAG = b"copy-chunk/v1"
_U64 = struct.Struct(">Q")


class ChunkTampered(ComplianceBlock):
    """A chunk's signature does not match its content (code ``chunk_tampered``).

    ``details``: the stage that detected it, the partition reference and the key id.
    """


@dataclass(frozen=True)
class ChunkKey:
    """A derived signing key and the id of the audit key it comes from."""

    key_id: str
    key: bytes

    def __repr__(self) -> str:  # never print key bytes
        return f"ChunkKey(key_id={self.key_id!r})"


def chunk_key(ring: Keyring, key_id: str | None = None) -> ChunkKey:
    """The signing key derived from the active (or the named) audit key."""
    if key_id is None:
        key_id, base = ring.active("audit")
    else:
        base = ring.get("audit", key_id)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(base)
    return ChunkKey(key_id, derived)


def _field(mac: hmac.HMAC, value: bytes | str | None) -> None:
    if value is None:
        mac.update(b"\xff" * 8)
        return
    data = value.encode() if isinstance(value, str) else value
    mac.update(_U64.pack(len(data)))
    mac.update(data)


def _finish(key: ChunkKey, mac: hmac.HMAC) -> str:
    return f"{key.key_id}:{mac.hexdigest()}"


def _new(key: ChunkKey, tag: bytes, context: str) -> hmac.HMAC:
    mac = hmac.new(key.key, digestmod=sha256)
    _field(mac, tag)
    _field(mac, context)
    return mac


def sign_raw(key: ChunkKey, context: str, lines: Iterable[tuple[int, bytes]]) -> str:
    """Signature of a raw chunk: ``(byte offset, line bytes)`` pairs, in order.

    ``context`` binds the chunk to where it came from (e.g. the partition id).
    """
    mac = _new(key, _RAW_TAG, context)
    for offset, data in lines:
        mac.update(_U64.pack(offset))
        _field(mac, data)
    return _finish(key, mac)


def sign_output(
    key: ChunkKey,
    context: str,
    rows: Sequence[FhirRow],
    records: Sequence[QuarantineRecord],
    extras: Sequence[bytes] = (),
) -> str:
    """Signature of a transformed chunk: rows, quarantine records and extra blobs (e.g. ACKs)."""
    mac = _new(key, _OUT_TAG, context)
    mac.update(_U64.pack(len(rows)))
    for row in rows:
        _field(mac, row.resource_type)
        _field(mac, row.id)
        _field(mac, row.version_id)
        _field(mac, row.last_updated.isoformat())
        _field(mac, b"1" if row.last_updated_from_meta else b"0")
        _field(mac, row.body)
        _field(mac, row.content_sha256)
    _records(mac, records)
    mac.update(_U64.pack(len(extras)))
    for blob in extras:
        _field(mac, blob)
    return _finish(key, mac)


def sign_copy_output(
    key: ChunkKey,
    context: str,
    copy_data: bytes,
    summary: str,
    records: Sequence[QuarantineRecord],
) -> str:
    """Signature of a transformed chunk whose rows are binary COPY tuples (``copy_rows.CopyRows``):
    the COPY bytes, the counts summary and the quarantine records."""
    mac = _new(key, _COPY_TAG, context)
    _field(mac, copy_data)
    _field(mac, summary)
    _records(mac, records)
    return _finish(key, mac)


def verify_copy_output(
    key: ChunkKey,
    context: str,
    copy_data: bytes,
    summary: str,
    records: Sequence[QuarantineRecord],
    signature: str,
) -> None:
    """Raise ``ChunkTampered`` unless ``signature`` is ``sign_copy_output`` of this output."""
    expected = sign_copy_output(key, context, copy_data, summary, records)
    _check(key, signature, expected, "load", context)


def _records(mac: hmac.HMAC, records: Sequence[QuarantineRecord]) -> None:
    mac.update(_U64.pack(len(records)))
    for rec in records:
        _field(mac, rec.source_uri)
        _field(mac, str(rec.line_index) if rec.line_index is not None else None)
        _field(mac, str(rec.message_index) if rec.message_index is not None else None)
        mac.update(_U64.pack(rec.byte_offset))
        _field(mac, rec.raw)
        _field(mac, b"1" if rec.raw_truncated else b"0")
        _field(mac, str(rec.reason))
        _field(mac, rec.message)


def _check(key: ChunkKey, signature: str, expected: str, stage: str, context: str) -> None:
    kid = signature.split(":", 1)[0]
    if kid != key.key_id or not hmac.compare_digest(signature, expected):
        raise ChunkTampered(
            "chunk_tampered",
            f"chunk signature mismatch detected at {stage}",
            subject=context,
            details={"stage": stage, "key_id": kid},
        )


def verify_raw(
    key: ChunkKey, context: str, lines: Iterable[tuple[int, bytes]], signature: str
) -> None:
    """Raise ``ChunkTampered`` unless ``signature`` is ``sign_raw`` of exactly these lines."""
    _check(key, signature, sign_raw(key, context, lines), "transform", context)


def verify_output(
    key: ChunkKey,
    context: str,
    rows: Sequence[FhirRow],
    records: Sequence[QuarantineRecord],
    signature: str,
    extras: Sequence[bytes] = (),
) -> None:
    """Raise ``ChunkTampered`` unless ``signature`` is ``sign_output`` of exactly this output."""
    _check(key, signature, sign_output(key, context, rows, records, extras), "load", context)
