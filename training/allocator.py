"""glibc's malloc between training steps: keep the memory a step frees for the next step.

A step allocates and frees the same activations and gradients again and again. glibc serves a block
over its mmap threshold (dynamic, at most 32 MB by default) with a fresh ``mmap`` and returns it on
free, and gives back the top of its heap once more than its trim threshold is free there: each
step then faults its memory in anew, page by page (a tiny model at batch 32 on CPU: ~3,000 page
faults a step, 5-13 % of its time; benchmarks/README.md "Training's host memory"). Fixed
thresholds above a step's largest block and free top keep that memory in the process instead: its
resident size stays at the step's peak, which it reaches every step anyway.

Other allocators (jemalloc or tcmalloc preloaded, musl, macOS) are left as they are, and so is a
process whose ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` is set: its owner chose.
"""

from __future__ import annotations

import ctypes
import os
import platform

MMAP_THRESHOLD = 256 << 20
"""Blocks under this come from the heap (a BERT-base embedding's gradient is 92 MB)."""
TRIM_THRESHOLD = 1 << 30
"""Free memory at the heap's top kept up to this, rather than handed back between steps."""

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_step_memory() -> bool:
    """Set this process's glibc malloc to keep freed memory for the next step (see the module);
    True if it did. Process-wide and for the process's life: call it where a process trains."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or any(k in os.environ for k in _ENV):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # the mmap threshold first: setting either fixes both, and a trim threshold alone would leave
    # the mmap threshold at its 128 kB start, every larger block mapped anew (15x the page faults)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
