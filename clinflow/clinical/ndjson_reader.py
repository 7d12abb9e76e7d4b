"""Streaming NDJSON reader: the lines of a byte range, from any sync or async byte stream.

The stream is a sequence of byte chunks that starts at absolute offset ``start`` (a seeked local
file, an S3 ranged GET body, a gunzip stream). Lines are yielded as ``RawLine`` with their
absolute byte offset, so a consumer can heartbeat "everything before offset X is committed" and
resume with ``resume_from=X`` after a retry.

Memory is bounded by ``max_line_bytes`` plus one chunk: a line longer than that is not buffered,
it is skipped to the next newline and yielded once with ``too_long=True``, its total length and
only its first ``keep_prefix`` bytes (for the quarantine record).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024
DEFAULT_MAX_LINE_BYTES = 16 * MiB
DEFAULT_KEEP_PREFIX = 64 * 1024
READ_CHUNK = 1 * MiB


@dataclass(frozen=True, slots=True)
class RawLine:
    """One line without its ``\\n`` (and without a trailing ``\\r``).

    ``offset`` is the absolute byte offset of the line's first byte; ``index`` counts lines from
    the start of the stream (0-based); ``length`` is the full length in bytes including the
    newline; for a ``too_long`` line ``data`` is only a prefix.
    """

    offset: int
    index: int
    data: bytes
    length: int
    too_long: bool = False

    @property
    def is_blank(self) -> bool:
        return is_blank_line(self.data, self.too_long)

    @property
    def next_offset(self) -> int:
        """Where the following line starts: the resume point once this line is committed."""
        return self.offset + self.length


def is_blank_line(data: bytes, too_long: bool = False) -> bool:
    """True for a line of only whitespace (counted, never parsed); an over-long line is not."""
    return not too_long and not data.strip()


# A line as plain fields: (offset, index, data, length, too_long), the fields of ``RawLine``.
# The transform's hot loop reads these tuples instead of building one object per line.
LineFields = tuple[int, int, bytes, int, bool]


class LineSplitter:
    """Incremental splitter behind both readers; feed chunks, then call ``finish``."""

    def __init__(
        self,
        start: int,
        *,
        end: int | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        keep_prefix: int = DEFAULT_KEEP_PREFIX,
        resume_from: int | None = None,
        first_index: int = 0,
    ) -> None:
        if keep_prefix > max_line_bytes:
            raise ValueError("keep_prefix must not exceed max_line_bytes")
        self._buf = bytearray()
        self._buf_offset = start  # absolute offset of _buf[0]
        self._fed = start  # absolute offset after the last byte fed
        self._end = end
        self._max = max_line_bytes
        self._keep = keep_prefix
        self._resume = resume_from or 0
        self._index = first_index
        self._skipping = False  # inside an over-long line
        self._skip_prefix = b""
        self._skip_start = 0

    @property
    def done(self) -> bool:
        return self._end is not None and self._fed >= self._end

    def feed(self, chunk: bytes) -> list[RawLine]:
        if self._end is not None:
            room = self._end - self._fed
            if room <= 0:
                return []
            chunk = chunk[:room]
        self._fed += len(chunk)
        out: list[RawLine] = []
        if self._skipping:
            idx = chunk.find(b"\n")
            if idx < 0:
                self._buf_offset += len(chunk)
                return out
            self._buf_offset += idx + 1
            self._emit_long(self._buf_offset, out)
            chunk = chunk[idx + 1 :]
        self._buf += chunk
        self._drain(out)
        return out

    def finish(self) -> list[RawLine]:
        """Emit a last line that has no trailing newline (or an unfinished over-long line)."""
        out: list[RawLine] = []
        if self._skipping:
            self._emit_long(self._buf_offset, out)
        elif self._buf:
            data = bytes(self._buf)
            self._emit(self._buf_offset, data, len(data), out)
            self._buf_offset += len(data)
            self._buf.clear()
        return out

    def _drain(self, out: list[RawLine]) -> None:
        buf = self._buf
        pos = 0
        while True:
            idx = buf.find(b"\n", pos)
            if idx < 0:
                break
            if idx - pos > self._max:
                self._skip_start = self._buf_offset + pos
                self._skip_prefix = bytes(buf[pos : pos + self._keep])
                self._emit_long(self._buf_offset + idx + 1, out)
            else:
                self._emit(self._buf_offset + pos, bytes(buf[pos:idx]), idx + 1 - pos, out)
            pos = idx + 1
        rest = len(buf) - pos
        if rest > self._max:
            self._skipping = True
            self._skip_start = self._buf_offset + pos
            self._skip_prefix = bytes(buf[pos : pos + self._keep])
            self._buf_offset += len(buf)
            buf.clear()
            return
        if pos:
            del buf[:pos]
            self._buf_offset += pos

    def _emit_long(self, next_offset: int, out: list[RawLine]) -> None:
        self._skipping = False
        length = next_offset - self._skip_start
        if self._skip_start >= self._resume:
            out.append(RawLine(self._skip_start, self._index, self._skip_prefix, length, True))
        self._index += 1
        self._skip_prefix = b""

    def _emit(self, offset: int, data: bytes, length: int, out: list[RawLine]) -> None:
        if data.endswith(b"\r"):
            data = data[:-1]
        if offset >= self._resume:
            out.append(RawLine(offset, self._index, data, length))
        self._index += 1


def iter_ndjson_range(
    chunks: Iterable[bytes],
    start: int = 0,
    end: int | None = None,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    keep_prefix: int = DEFAULT_KEEP_PREFIX,
    resume_from: int | None = None,
) -> Iterator[RawLine]:
    """Lines of a sync chunk stream beginning at absolute offset ``start``; stops at ``end``.

    Lines starting before ``resume_from`` are read but not yielded (their indexes still count).
    """
    splitter = LineSplitter(
        start, end=end, max_line_bytes=max_line_bytes, keep_prefix=keep_prefix,
        resume_from=resume_from,
    )  # fmt: skip
    for chunk in chunks:
        yield from splitter.feed(chunk)
        if splitter.done:
            break
    yield from splitter.finish()


async def aiter_ndjson_range(
    chunks: AsyncIterable[bytes],
    start: int = 0,
    end: int | None = None,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    keep_prefix: int = DEFAULT_KEEP_PREFIX,
    resume_from: int | None = None,
) -> AsyncIterator[RawLine]:
    """The async twin of ``iter_ndjson_range`` (e.g. over an S3 ranged GET body)."""
    splitter = LineSplitter(
        start, end=end, max_line_bytes=max_line_bytes, keep_prefix=keep_prefix,
        resume_from=resume_from,
    )  # fmt: skip
    async for chunk in chunks:
        for line in splitter.feed(chunk):
            yield line
        if splitter.done:
            break
    for line in splitter.finish():
        yield line


def read_file_range(
    path: Path, start: int = 0, end: int | None = None, chunk_size: int = READ_CHUNK
) -> Iterator[bytes]:
    """Chunks of ``path`` from ``start`` to ``end`` (EOF when None), ``chunk_size`` at a time."""
    with path.open("rb") as fh:
        fh.seek(start)
        remaining = None if end is None else end - start
        while remaining is None or remaining > 0:
            size = chunk_size if remaining is None else min(chunk_size, remaining)
            block = fh.read(size)
            if not block:
                return
            if remaining is not None:
                remaining -= len(block)
            yield block


class _Gunzip:
    """Incremental gzip decoding (concatenated members too), shared by both chunk readers."""

    def __init__(self) -> None:
        self._decomp = zlib.decompressobj(wbits=47)

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        while chunk:
            out = self._decomp.decompress(chunk, READ_CHUNK)
            if out:
                yield out
            chunk = self._decomp.unconsumed_tail
            if self._decomp.eof:
                chunk = self._decomp.unused_data + chunk
                self._decomp = zlib.decompressobj(wbits=47)

    def flush(self) -> bytes:
        return self._decomp.flush()


def gunzip_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress a gzip stream (concatenated members too) chunk by chunk."""
    gz = _Gunzip()
    for chunk in chunks:
        yield from gz.feed(chunk)
    tail = gz.flush()
    if tail:
        yield tail


async def agunzip_chunks(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The async twin of ``gunzip_chunks``."""
    gz = _Gunzip()
    async for chunk in chunks:
        for out in gz.feed(chunk):
            yield out
    tail = gz.flush()
    if tail:
        yield tail
