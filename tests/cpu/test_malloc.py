"""r1zero.cpu.malloc: with glibc told to keep freed memory, a step-like allocation pattern stops page-faulting."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from r1zero.cpu import malloc

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

#: a step's pattern in small, on glibc's malloc itself (torch's CPU allocator calls it; torch's own small
#: allocations between the large ones made the fault counts vary from run to run): 20 blocks of 8 MB alive
#: together, written, all freed, again; the page faults of rounds 3-7 are counted
STEPS = """
import ctypes, resource, sys
from r1zero.cpu import malloc
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "keep":
    assert malloc.keep_freed_memory()
SIZE = 8 << 20
def step():
    blocks = [libc.malloc(SIZE) for _ in range(20)]
    for block in blocks:
        ctypes.memset(block, 1, SIZE)
    for block in reversed(blocks):
        libc.free(block)
step(), step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def test_freed_memory_is_reused_without_page_faults() -> None:
    default, kept = _faults("default"), _faults("keep")
    # glibc 2.36: 204,640 (each round's 160 MB handed back and faulted in again) against 0
    assert default > 100_000, default
    assert kept < default / 100, (kept, default)


def test_keep_freed_memory_reports_success_and_can_repeat() -> None:
    assert malloc.keep_freed_memory() is True
    assert malloc.keep_freed_memory() is True
