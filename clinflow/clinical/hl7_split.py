"""Splitting an HL7 v2 file into messages, before any parsing.

Handles single messages, files of many messages, and FHS/BHS/BTS/FTS batch envelopes; segment
separators ``\\r``, ``\\n`` or ``\\r\\n`` (mixed too); a UTF-8 byte-order mark; non-default
encoding characters (the field separator is read from each MSH, byte 4). Every ``MSH`` starts a
message; envelope segments are counted, not returned as messages; lines that are not segments
(comments, blank lines, garbage) are skipped and counted.

Works on bytes, so a message's byte offset in the file is exact and decoding is decided per
message (``hl7_message``). Deterministic; never raises for content.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

_SEGMENT_BREAK = re.compile(rb"\r\n|\r|\n")
_SEGMENT_ID = re.compile(rb"^[A-Z][A-Z0-9]{2}")
_BOM = b"\xef\xbb\xbf"
ENVELOPE_SEGMENTS = frozenset({b"FHS", b"BHS", b"BTS", b"FTS"})


class HL7RawMessage(BaseModel):
    """One message's segments joined with ``\\r``; ``offset`` is its MSH's byte offset."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0, description="0-based position of the message in the file.")
    offset: int = Field(ge=0)
    data: bytes


class HL7Split(BaseModel):
    messages: list[HL7RawMessage]
    envelope_segments: dict[str, int] = Field(default_factory=dict)
    skipped_lines: int = 0


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    for match in _SEGMENT_BREAK.finditer(data):
        yield pos, data[pos : match.start()]
        pos = match.end()
    if pos < len(data):
        yield pos, data[pos:]


def split_hl7_messages(data: bytes) -> HL7Split:
    """The messages of an HL7 v2 file (see module docstring)."""
    messages: list[HL7RawMessage] = []
    envelopes: dict[str, int] = {}
    skipped = 0
    current: list[bytes] = []
    current_offset = 0
    field_sep = b"|"

    def close() -> None:
        if current:
            messages.append(
                HL7RawMessage(index=len(messages), offset=current_offset, data=b"\r".join(current))
            )
            current.clear()

    for offset, line in _lines(data):
        if line.startswith(_BOM):
            line = line[len(_BOM) :]
            offset += len(_BOM)
        seg_id = line[:3]
        if seg_id == b"MSH" and len(line) > 3:
            close()
            current_offset = offset
            field_sep = line[3:4]
            current.append(line)
        elif seg_id in ENVELOPE_SEGMENTS and (len(line) == 3 or len(line) > 3):
            close()
            key = seg_id.decode()
            envelopes[key] = envelopes.get(key, 0) + 1
        elif current and _SEGMENT_ID.match(line) and (len(line) == 3 or line[3:4] == field_sep):
            current.append(line)
        else:
            skipped += bool(line.strip())
    close()
    return HL7Split(messages=messages, envelope_segments=envelopes, skipped_lines=skipped)
