"""FHIR rows in PostgreSQL's binary COPY format, built where the rows are made (the transform
process).

``CopyRows`` is what a transform hands to the loader instead of row objects: the staging rows
already encoded as binary COPY tuples (one bytes object per chunk, so handing it between
processes costs one copy of the bytes, not one pickle per record) plus what the loader must
count without re-reading them: rows received, rows dropped below the watermark, the newest
``meta.lastUpdated``. ``CopyRowsBuilder.add`` applies the same watermark rule as
``loader.load_chunk``, so both paths load and count the same rows. Pure; safe in a process pool.

Tuples have the columns of ``fhir_resources`` (``COPY_COLUMNS``, source system and batch id
included), so the loader can COPY a chunk straight into the table when none of its keys is
stored yet, and otherwise into a staging table of the same shape for the merge.

Why binary: a JSON body goes in as its bytes, with no escaping on our side and no unescaping on
the server's (text format doubles every backslash of a JSON escape). A tuple is a 16-bit field
count, then per field a 32-bit length (-1 for NULL) and the value: text as UTF-8 bytes,
``timestamptz`` as signed 64-bit microseconds since 2000-01-01 UTC, ``jsonb`` as a version byte
(1) and the JSON text. ``BINARY_HEADER`` and ``BINARY_TRAILER`` frame the tuples of one COPY.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Protocol

from clinflow.clinical.models import WatermarkPolicy

COPY_COLUMNS = (
    "resource_type",
    "id",
    "version_id",
    "last_updated",
    "source_system",
    "batch_id",
    "body",
    "content_sha256",
)

# Signature, flags (no OIDs), header extension length.
BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
BINARY_TRAILER = struct.pack("!h", -1)

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_I32 = struct.Struct("!i")
_TUPLE_START = struct.Struct("!hi")  # field count, length of the first field
_NULL = _I32.pack(-1)
_STAMP = struct.Struct("!iq")  # 8, microseconds
_JSONB_VERSION = b"\x01"


@lru_cache(maxsize=4096)  # exports repeat a few version times
def pg_micros(when: datetime) -> int:
    """``when`` as microseconds since 2000-01-01 UTC (a naive value is taken as UTC)."""
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return (aware - _PG_EPOCH) // _MICROSECOND


class VersionedRow(Protocol):
    """What the watermark rule reads of a row (``FhirRow``, or the transform's ``Accepted``)."""

    @property
    def last_updated(self) -> datetime: ...

    @property
    def last_updated_from_meta(self) -> bool: ...


def below_watermark(row: VersionedRow, watermark: datetime | None) -> bool:
    """True when ``row`` is older than ``watermark`` by its own meta.lastUpdated."""
    return watermark is not None and row.last_updated_from_meta and row.last_updated < watermark


class StagingRow(Protocol):
    """The fields of a staging row: ``FhirRow``, or the transform's ``fhir_record.Accepted``."""

    @property
    def resource_type(self) -> str: ...

    @property
    def id(self) -> str: ...

    @property
    def version_id(self) -> str | None: ...

    @property
    def last_updated(self) -> datetime: ...

    @property
    def last_updated_from_meta(self) -> bool: ...

    @property
    def body(self) -> bytes: ...

    @property
    def content_sha256(self) -> str: ...


def copy_tuple(row: StagingRow, parts: list[bytes], source_batch: bytes) -> None:
    """Append one row (``COPY_COLUMNS``) as a binary COPY tuple to ``parts``;
    ``source_batch`` is the encoded source system and batch id fields (``CopyRowsBuilder``).

    The body is appended as its own part, so joining the parts copies it once.
    """
    rtype = row.resource_type.encode()
    rid = row.id.encode()
    version = _NULL if row.version_id is None else _len_prefixed(row.version_id.encode())
    body = row.body
    sha = row.content_sha256.encode()
    parts.append(
        b"".join(
            (
                _TUPLE_START.pack(len(COPY_COLUMNS), len(rtype)),
                rtype,
                _I32.pack(len(rid)),
                rid,
                version,
                _STAMP.pack(8, pg_micros(row.last_updated)),
                source_batch,
                _I32.pack(len(body) + 1),
                _JSONB_VERSION,
            )
        )
    )
    parts.append(body)
    parts.append(_len_prefixed(sha))


def _len_prefixed(value: bytes) -> bytes:
    return _I32.pack(len(value)) + value


@dataclass
class CopyRows:
    """A chunk's staging rows (binary COPY tuples, no header or trailer) and the counts the
    merge cannot see."""

    data: bytes = b""
    kept: int = 0
    received: int = 0
    discarded_below_watermark: int = 0
    max_last_updated: datetime | None = None
    unique_keys: bool = True  # no (resource type, id) twice among the kept rows

    def summary(self) -> str:
        """Canonical text of the counts (signed together with ``data``)."""
        newest = self.max_last_updated.isoformat() if self.max_last_updated else "-"
        return f"{self.kept}|{self.received}|{self.discarded_below_watermark}|{newest}"


@dataclass
class CopyRowsBuilder:
    """Accumulates rows of one source system and batch; ``build`` returns the ``CopyRows``."""

    watermark: datetime | None = None
    policy: WatermarkPolicy = "discard"
    source_system: str = ""
    batch_id: str = ""
    _parts: list[bytes] = field(default_factory=list)
    _keys: set[tuple[str, str]] = field(default_factory=set)
    _out: CopyRows = field(default_factory=CopyRows)
    _source_batch: bytes = b""

    def __post_init__(self) -> None:
        self._source_batch = _len_prefixed(self.source_system.encode()) + _len_prefixed(
            self.batch_id.encode()
        )

    def add(self, row: StagingRow) -> None:
        out = self._out
        out.received += 1
        if row.last_updated_from_meta and (
            out.max_last_updated is None or row.last_updated > out.max_last_updated
        ):
            out.max_last_updated = row.last_updated
        if self.policy == "discard" and below_watermark(row, self.watermark):
            out.discarded_below_watermark += 1
            return
        out.kept += 1
        keys = self._keys
        key = (row.resource_type, row.id)
        if key in keys:
            out.unique_keys = False
        keys.add(key)
        copy_tuple(row, self._parts, self._source_batch)

    def build(self) -> CopyRows:
        self._out.data = b"".join(self._parts)
        self._parts = []
        self._keys = set()
        return self._out
