"""Cutting an NDJSON byte stream into line-aligned blocks, without touching single lines.

The reading side of a partition only needs to know where chunks of records begin and end; the
per-line work (splitting, parsing, validating) happens in the transform process. So this cutter
finds at most ``max_lines`` newlines (or ``max_bytes`` bytes) per block with ``bytes.find`` and
hands out whole byte blocks: one object per chunk instead of one per line.

A line longer than ``max_line_bytes`` that does not fit in memory is not buffered: the current
block is closed, the line is skipped to its newline and handed out alone as a ``RawLine`` with
``too_long=True`` and its first ``keep_prefix`` bytes, exactly as ``ndjson_reader`` does. Lines
inside a block keep the same absolute offsets and stream indexes ``ndjson_reader`` gives them
(``LineSplitter(block.offset, first_index=block.index)`` over ``block.data`` yields them).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass

from clinflow.clinical.ndjson_reader import (
    DEFAULT_KEEP_PREFIX,
    DEFAULT_MAX_LINE_BYTES,
    LineFields,
    RawLine,
)


@dataclass(frozen=True, slots=True)
class RawBlock:
    """Whole lines of a stream: ``data`` starts at absolute ``offset`` with line ``index``.

    ``lines`` counts the lines in ``data`` (the last one may lack its newline at end of
    stream). Contains PHI: never log it.
    """

    offset: int
    index: int
    data: bytes
    lines: int

    @property
    def next_offset(self) -> int:
        return self.offset + len(self.data)


def block_line_fields(
    block: RawBlock,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    keep_prefix: int = DEFAULT_KEEP_PREFIX,
    resume_from: int = 0,
) -> Iterator[LineFields]:
    """The lines of ``block`` as ``LineFields``: what ``LineSplitter(block.offset,
    first_index=block.index, ...)`` yields over ``block.data``, without a ``RawLine`` each.

    A trailing ``\\r`` is dropped; a line longer than ``max_line_bytes`` comes out
    ``too_long`` with its first ``keep_prefix`` bytes; lines starting before ``resume_from``
    are skipped but still counted in the indexes; the last line may lack its newline.
    """
    data = block.data
    offset, index = block.offset, block.index
    pos = 0
    end = len(data)
    while pos < end:
        nl = data.find(b"\n", pos)
        stop = end if nl < 0 else nl
        length = stop - pos + (0 if nl < 0 else 1)
        if offset + pos >= resume_from:
            if stop - pos > max_line_bytes:
                yield offset + pos, index, data[pos : pos + keep_prefix], length, True
            else:
                if stop > pos and data[stop - 1] == 13:  # "\r"
                    yield offset + pos, index, data[pos : stop - 1], length, False
                else:
                    yield offset + pos, index, data[pos:stop], length, False
        index += 1
        pos += length


class BlockCutter:
    """Incremental cutter; ``feed`` chunks, then ``finish``. Yields ``RawBlock`` or over-long
    ``RawLine`` items in stream order; lines starting before ``resume_from`` are dropped only
    where a whole item lies before it (the transform drops the rest, see ``LineSplitter``)."""

    def __init__(
        self,
        start: int,
        *,
        end: int | None = None,
        max_lines: int = 2000,
        max_bytes: int = 16 * 1024 * 1024,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        keep_prefix: int = DEFAULT_KEEP_PREFIX,
        resume_from: int | None = None,
    ) -> None:
        if max_lines < 1 or max_bytes < 1:
            raise ValueError("max_lines and max_bytes must be positive")
        self._buf = bytearray()
        self._buf_offset = start
        self._fed = start
        self._end = end
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._max_line = max_line_bytes
        self._keep = keep_prefix
        self._resume = resume_from or 0
        self._index = 0  # stream index of the first line not yet in a block
        self._cur = bytearray()
        self._cur_offset = start
        self._cur_index = 0
        self._cur_lines = 0
        self._skipping = False
        self._skip_start = 0
        self._skip_prefix = b""

    @property
    def done(self) -> bool:
        return self._end is not None and self._fed >= self._end

    def feed(self, chunk: bytes) -> list[RawBlock | RawLine]:
        if self._end is not None:
            room = self._end - self._fed
            if room <= 0:
                return []
            chunk = chunk[:room]
        self._fed += len(chunk)
        out: list[RawBlock | RawLine] = []
        if self._skipping:
            idx = chunk.find(b"\n")
            if idx < 0:
                self._buf_offset += len(chunk)
                return out
            self._buf_offset += idx + 1
            self._emit_long(out)
            chunk = chunk[idx + 1 :]
        self._buf += chunk
        self._cut(out)
        return out

    def finish(self) -> list[RawBlock | RawLine]:
        out: list[RawBlock | RawLine] = []
        if self._skipping:
            self._emit_long(out)
        elif self._buf:
            self._append(0, len(self._buf), 1)
            self._buf_offset += len(self._buf)
            self._buf.clear()
        self._flush(out)
        return out

    def _cut(self, out: list[RawBlock | RawLine]) -> None:
        buf = self._buf
        pos = 0
        while True:
            want = self._max_lines - self._cur_lines
            room = self._max_bytes - len(self._cur)
            end, n = pos, 0
            while n < want and end - pos < room:
                idx = buf.find(b"\n", end)
                if idx < 0:
                    break
                end, n = idx + 1, n + 1
            if n:
                self._append(pos, end, n)
                pos = end
            if self._cur_lines >= self._max_lines or len(self._cur) >= self._max_bytes:
                self._flush(out)
                continue
            break
        if pos:
            del buf[:pos]
            self._buf_offset += pos
        if len(buf) > self._max_line:
            # An unfinished line already longer than allowed: skip it to its newline.
            self._flush(out)
            self._skipping = True
            self._skip_start = self._buf_offset
            self._skip_prefix = bytes(buf[: self._keep])
            self._buf_offset += len(buf)
            buf.clear()

    def _append(self, start: int, end: int, lines: int) -> None:
        if not self._cur:
            self._cur_offset = self._buf_offset + start
            self._cur_index = self._index
        self._cur += self._buf[start:end]
        self._cur_lines += lines
        self._index += lines

    def _flush(self, out: list[RawBlock | RawLine]) -> None:
        if not self._cur:
            return
        data = bytes(self._cur)
        if self._cur_offset + len(data) > self._resume:
            out.append(RawBlock(self._cur_offset, self._cur_index, data, self._cur_lines))
        self._cur.clear()
        self._cur_lines = 0

    def _emit_long(self, out: list[RawBlock | RawLine]) -> None:
        self._skipping = False
        length = self._buf_offset - self._skip_start
        if self._skip_start >= self._resume:
            out.append(RawLine(self._skip_start, self._index, self._skip_prefix, length, True))
        self._index += 1
        self._skip_prefix = b""


async def aiter_ndjson_blocks(
    chunks: AsyncIterable[bytes], start: int = 0, end: int | None = None, **opts: int | None
) -> AsyncIterator[RawBlock | RawLine]:
    """Blocks (and over-long lines) of an async chunk stream; ``opts`` as for ``BlockCutter``."""
    cutter = BlockCutter(start, end=end, **opts)  # type: ignore[arg-type]
    async for chunk in chunks:
        for item in cutter.feed(chunk):
            yield item
        if cutter.done:
            break
    for item in cutter.finish():
        yield item
