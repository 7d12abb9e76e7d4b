"""FHIR rows as PostgreSQL COPY text, built where the rows are made (the transform process).

``CopyRows`` is what a transform hands to the loader instead of row objects: the staging rows
already in COPY text format (one bytes object per chunk, so handing it between processes costs
one copy of the bytes, not one pickle per record) plus what the loader must count without
re-reading them: rows received, rows dropped below the watermark, the newest
``meta.lastUpdated``. ``CopyRowsBuilder.add`` applies the same watermark rule as
``loader.load_chunk``, so both paths load and count the same rows. Pure; safe in a process pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from clinflow.clinical.loader import below_watermark
from clinflow.clinical.models import WatermarkPolicy

STAGING_COLUMNS = ("resource_type", "id", "version_id", "last_updated", "body", "content_sha256")


_STAMPS: dict[datetime, bytes] = {}  # isoformat of recent version times (exports repeat them)


def copy_text(value: bytes) -> bytes:
    """Escape one value for COPY text format (backslash, newline, carriage return, tab)."""
    # Four byte scans (memchr) are cheaper than one regex search over a JSON body, and most
    # bodies hold none of these bytes, or only backslashes (JSON escapes).
    if b"\\" in value:
        value = value.replace(b"\\", b"\\\\")
    if b"\n" in value:
        value = value.replace(b"\n", b"\\n")
    if b"\r" in value:
        value = value.replace(b"\r", b"\\r")
    if b"\t" in value:
        value = value.replace(b"\t", b"\\t")
    return value


def _stamp(when: datetime) -> bytes:
    text = _STAMPS.get(when)
    if text is None:
        iso = when.isoformat()
        text = (iso if when.tzinfo is not None else iso + "+00:00").encode()
        if len(_STAMPS) > 4096:
            _STAMPS.clear()
        _STAMPS[when] = text
    return text


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


def copy_line(row: StagingRow) -> bytes:
    """One staging row (``STAGING_COLUMNS``) in COPY text format, newline included."""
    version = b"\\N" if row.version_id is None else copy_text(row.version_id.encode())
    # The newline rides on the short last field: appending it to the joined line would copy
    # the whole body once more.
    return b"\t".join(
        (
            copy_text(row.resource_type.encode()),
            copy_text(row.id.encode()),
            version,
            _stamp(row.last_updated),
            copy_text(row.body),
            row.content_sha256.encode() + b"\n",
        )
    )


@dataclass
class CopyRows:
    """A chunk's staging rows (COPY text) and the counts the merge cannot see."""

    data: bytes = b""
    kept: int = 0
    received: int = 0
    discarded_below_watermark: int = 0
    max_last_updated: datetime | None = None

    def summary(self) -> str:
        """Canonical text of the counts (signed together with ``data``)."""
        newest = self.max_last_updated.isoformat() if self.max_last_updated else "-"
        return f"{self.kept}|{self.received}|{self.discarded_below_watermark}|{newest}"


@dataclass
class CopyRowsBuilder:
    """Accumulates rows; ``build`` returns the ``CopyRows``."""

    watermark: datetime | None = None
    policy: WatermarkPolicy = "discard"
    _parts: list[bytes] = field(default_factory=list)
    _out: CopyRows = field(default_factory=CopyRows)

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
        self._parts.append(copy_line(row))

    def build(self) -> CopyRows:
        self._out.data = b"".join(self._parts)
        self._parts = []
        return self._out
