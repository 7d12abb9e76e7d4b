"""Keep a loader process's resident memory flat while it handles multi-megabyte chunks.

glibc raises its mmap threshold each time a large block is freed, after which chunk-sized
buffers (a few MB of NDJSON or COPY data, allocated and freed thousands of times per batch) come
from the heap and fragment it, so RSS creeps up over a long load. Fixing the threshold at 1 MiB
keeps such buffers in their own mappings, returned to the system when freed. A no-op where the
C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 1024 * 1024


def fix_mmap_threshold(threshold: int = THRESHOLD_BYTES) -> bool:
    """Set glibc's mmap threshold for this process; True when applied. Idempotent."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
