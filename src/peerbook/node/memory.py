"""Handing the memory the C allocator holds free back to the system.

A peer frees a great deal as it runs: each log compaction drops the entries before the
snapshot, and the audit trail lets closed orders and old trades leave memory. Python hands
what it frees in larger blocks (over 512 bytes) back to the C allocator, and glibc's malloc
keeps freed chunks inside its heap for reuse, returning pages to the system only from the
heap's top. A chunk still in use near the top keeps every free page below it resident, so
resident memory followed the heap's high-water marks and never came back down: measured
with ``benchmarks/stress.py`` (three peers, 150 orders/s), a peer's malloc heap grew about
1 MiB a minute while the objects Python held did not, and at minute 16 glibc held 25.7 MB
in its main heap of which 13.7 MB was in use (``malloc_stats``).

`release` asks glibc to return every free page of its heaps (``malloc_trim(0)``, which
since glibc 2.8 also releases pages in the middle of the heap); the peer calls it every
`RELEASE_EVERY_S`. With a C library that lacks it (musl, macOS) it does nothing.
"""

import ctypes
from collections.abc import Callable

__all__ = ["RELEASE_EVERY_S", "release"]

RELEASE_EVERY_S = 30.0


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` from the running process's symbols, or None."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release() -> bool:
    """Return the allocator's free pages to the system; whether it could (glibc only)."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
