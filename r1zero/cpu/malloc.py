"""glibc's malloc, told to keep freed memory: a CPU training step stops page-faulting its activations.

A CPU learner's step allocates and frees hundreds of MB of large tensors (activations, gradients,
attention buffers). glibc serves a large allocation either from a fresh ``mmap`` (above its mmap
threshold) or from the heap, and gives a heap's free top back to the system once it exceeds its trim
threshold; both thresholds start small (128 KiB) and only the mmap one adapts. So every step's large
tensors come back as new pages that the kernel zero-fills on first touch: tens of thousands of page
faults per update, a few percent of its time (side ``r1zero-malloc`` of ``bench/trl_step.py``).
PyTorch's CPU tuning guide points at jemalloc or tcmalloc through ``LD_PRELOAD`` for this; setting
glibc's two thresholds with ``mallopt`` in the process itself does the same for these sizes and needs
nothing installed or preloaded.

The cost: memory freed after a step's peak stays in the process (its peak RSS is unchanged; its RSS
stays near that peak between steps). Only glibc (Linux) is touched; elsewhere this is a no-op.
"""

from __future__ import annotations

import ctypes
import logging
import platform

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

log = logging.getLogger(__name__)

#: ``mallopt``'s parameter numbers (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: allocations up to this size come from the heap, not from their own ``mmap`` (glibc's upper limit on
#: 64-bit: larger values are refused)
MMAP_THRESHOLD = 32 << 20
#: free heap memory kept before any is given back to the system
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process; False where there is no glibc.

    Safe to call more than once. Affects allocations from then on.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    done = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    done = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and done
    if not done:
        log.warning("glibc refused mallopt: freed memory still goes back to the system")
    return done
