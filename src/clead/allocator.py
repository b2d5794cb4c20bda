"""Keep freed memory in the process on Linux/glibc, so that large tensors do not page-fault on every use.

glibc's ``malloc`` serves every allocation above 32 MB (and, until it adapts, above 128 KB) with a fresh
``mmap`` and returns it with ``munmap`` when freed. An attack on a batch of 500 Fashion-MNIST images
allocates conv activations of ~43 MB many times per step, so every one of them is a fresh mapping whose
pages the kernel must fault in and zero: measured here, that was most of the CPU time of an AutoAttack run
(``benchmarks/allocator.py``). ``tune()`` tells glibc to serve everything from its heap and not to trim it,
so freed memory is reused. The resident set then stays at the peak the run needs, which is what a training
or evaluation process holds anyway. The CLI calls it at start-up; library users may call it themselves.
Set ``CLEAD_MALLOC_TUNING=0`` to leave malloc alone. Other platforms and allocators: no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4


def tune() -> bool:
    """Apply the settings; True if glibc accepted them."""
    if not sys.platform.startswith("linux") or os.environ.get("CLEAD_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_MAX, 0) == 1  # no mmap: every allocation from the (reused) heap
    ok &= mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1  # never give the heap's top back
    ok &= mallopt(_M_TOP_PAD, 256 << 20) == 1  # grow the heap in 256 MB steps
    return bool(ok)
