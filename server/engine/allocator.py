"""Keep freed activation buffers in the process instead of returning them to the OS.

glibc serves large allocations (over 128 KiB, raised dynamically up to 32 MiB)
with ``mmap`` and unmaps them on free, so every decode step page-faults its
activation buffers afresh; torch's CPU allocator has no cache of its own.
Raising the mmap threshold to its maximum and not trimming the heap made a
12 s sentence's CPU synthesis about 12% faster here. Process-wide, like torch's
thread count, so the engine sets it once when it is built for the CPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MAX_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling on 64-bit
_TRIM_THRESHOLD = 1024 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for large reused buffers; returns False where it is not glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, _MAX_MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
    if not ok:
        log.warning("mallopt refused the allocator settings; large buffers will be re-mapped per step")
    return ok
