"""r1zero.malloc: with glibc told to keep freed memory, a step-like allocation pattern stops page-faulting."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from r1zero import malloc

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

#: a step's pattern in small: 30 tensors of 1-24 MB (seeded sizes, new each round) alive together, all
#: freed, again; the page faults of rounds 3-10 are counted (the first rounds fault in any case)
STEPS = """
import random, resource, sys
import torch
from r1zero import malloc
if sys.argv[1] == "keep":
    assert malloc.keep_freed_memory()
rng = random.Random(0)
def step():
    kept = [torch.ones(rng.randrange(1 << 18, 6 << 20)) for _ in range(30)]
    return sum(float(t[0]) for t in kept)
step(), step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def test_freed_memory_is_reused_without_page_faults() -> None:
    default, kept = _faults("default"), _faults("keep")
    assert default > 30_000, default  # glibc 2.36: ~80k (~320 MB faulted in again over 8 rounds)
    assert kept < default / 5, (kept, default)  # ~4.4k


def test_keep_freed_memory_reports_success_and_can_repeat() -> None:
    assert malloc.keep_freed_memory() is True
    assert malloc.keep_freed_memory() is True
