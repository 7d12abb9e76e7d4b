"""Partition planning: line-aligned byte ranges of an NDJSON file.

A plan cuts a file into ranges of about ``target_bytes`` each. Every cut is moved forward to the
byte after the next newline, found by reading small windows at the cut (the file is never read
whole), so each range holds whole lines and the ranges cover the file exactly, without gaps or
overlaps. A gzip file cannot be cut without decompressing it and is one partition.

Plans are deterministic: the same file and target give the same partitions, which makes a
partition's index a stable part of a retry-safe activity id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from clinflow.clinical.models import InputFile, Partition

MiB = 1024 * 1024
DEFAULT_TARGET_BYTES = 48 * MiB
SCAN_WINDOW = 64 * 1024


def plan_ranges(
    size: int, target_bytes: int, find_newline: Callable[[int], int | None]
) -> list[tuple[int, int]]:
    """Ranges ``[start, end)`` covering ``[0, size)``, each ending just after a newline or at EOF.

    ``find_newline(pos)`` returns the offset of the first ``\\n`` at or after ``pos`` (None: none).
    """
    if target_bytes <= 0:
        raise ValueError("target_bytes must be positive")
    ranges: list[tuple[int, int]] = []
    pos = 0
    while pos < size:
        cut = pos + target_bytes
        if cut >= size:
            end = size
        else:
            newline = find_newline(cut - 1)
            end = size if newline is None else newline + 1
        ranges.append((pos, end))
        pos = end
    return ranges


def find_newline_in_file(path: Path, window: int = SCAN_WINDOW) -> Callable[[int], int | None]:
    """A ``find_newline`` that seeks and reads ``window`` bytes at a time."""

    def find(pos: int) -> int | None:
        with path.open("rb") as fh:
            fh.seek(pos)
            while True:
                block = fh.read(window)
                if not block:
                    return None
                idx = block.find(b"\n")
                if idx >= 0:
                    return pos + idx
                pos += len(block)

    return find


def plan_partitions(
    source: Path | InputFile, target_bytes: int = DEFAULT_TARGET_BYTES
) -> list[Partition]:
    """Partitions of a local file (plain NDJSON: line-aligned ranges; gzip: one partition).

    An empty file has no partitions. Raises ``OSError`` when the file cannot be read.
    """
    if isinstance(source, InputFile):
        info = source
    else:
        from clinflow.clinical.discovery import is_gzip

        info = InputFile(uri=str(source), size=source.stat().st_size, compressed=is_gzip(source))
    path = Path(info.uri)
    if info.compressed:
        ranges = [(0, info.size)] if info.size else []
    else:
        ranges = plan_ranges(info.size, target_bytes, find_newline_in_file(path))
    return _partitions(info, ranges)


async def aplan_partitions(
    info: InputFile,
    read_range: Callable[[int, int], Awaitable[bytes]],
    target_bytes: int = DEFAULT_TARGET_BYTES,
    window: int = SCAN_WINDOW,
) -> list[Partition]:
    """Like ``plan_partitions`` for a remote object: ``read_range(start, end)`` returns the bytes
    ``[start, end)`` (e.g. an S3 ranged GET). Only small windows at the cuts are fetched."""
    if info.compressed:
        return _partitions(info, [(0, info.size)] if info.size else [])
    ranges: list[tuple[int, int]] = []
    pos = 0
    while pos < info.size:
        cut = pos + target_bytes
        end = info.size
        if cut < info.size:
            scan = cut - 1
            while scan < info.size:
                block = await read_range(scan, min(scan + window, info.size))
                if not block:
                    break
                idx = block.find(b"\n")
                if idx >= 0:
                    end = scan + idx + 1
                    break
                scan += len(block)
        ranges.append((pos, end))
        pos = end
    return _partitions(info, ranges)


def _partitions(info: InputFile, ranges: list[tuple[int, int]]) -> list[Partition]:
    return [
        Partition(
            uri=info.uri,
            index=i,
            start=start,
            end=end,
            compressed=info.compressed,
            resource_type=info.resource_type,
        )
        for i, (start, end) in enumerate(ranges)
    ]
