"""An opt-in fix for a CPU slowdown that is glibc's, not the op's.

With glibc's default malloc settings, a training step that frees a few megabytes at the top of the
heap hands the pages back to the kernel (trim), and the next step's allocations fault them in again,
zero-filled. For the fused op at (256, 3, 32, 32) that is about 1,000 page faults per step and a
large share of its time (docs/results/speed.md has the measured figures). Raising glibc's trim and mmap thresholds keeps
freed memory in the process instead; the environment variables MALLOC_TRIM_THRESHOLD_ and
MALLOC_MMAP_THRESHOLD_ do the same from outside. The price is memory: up to `trim_mb` of freed heap
stays with the process. Nothing here runs unless called.
"""
from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX_MB = 32  # glibc rejects larger values on 64-bit systems


def tune_cpu_allocator(trim_mb: int = 256, mmap_mb: int = _MMAP_THRESHOLD_MAX_MB) -> bool:
    """Sets glibc's trim threshold to trim_mb and its mmap threshold to mmap_mb (at most 32), for
    the whole process. Returns True if both settings were accepted, False where the C library is
    not glibc (nothing changes then)."""
    if not 0 < mmap_mb <= _MMAP_THRESHOLD_MAX_MB:
        raise ValueError(f"tune_cpu_allocator: mmap_mb must be in (0, {_MMAP_THRESHOLD_MAX_MB}], got {mmap_mb}")
    if trim_mb <= 0:
        raise ValueError(f"tune_cpu_allocator: trim_mb must be positive, got {trim_mb}")
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, int(mmap_mb) << 20)
    ok_trim = mallopt(_M_TRIM_THRESHOLD, int(trim_mb) << 20)
    return bool(ok_mmap and ok_trim)
