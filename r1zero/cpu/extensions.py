"""The C++ kernels under ``kernels/``, compiled on first use for this machine's CPU.

``build`` compiles one source (the ``fast`` engine's decode step ``decode_step.cpp``, the learner's
``fused_ops.cpp`` and ``attention_ops.cpp``); ``load_decode_step()`` builds the decode step with
``torch.utils.cpp_extension.load`` (a C++ compiler and ninja are needed; the first build takes about a
minute, later processes load the cached build) and returns the module, or None when it cannot be built
or is switched off (``R1ZERO_NATIVE=0``); the engine then runs its Python step. The build is for this
machine's CPU (``-march=native``): its directory is named after the CPU model and the extension's
source, so a cache shared between machines never loads another CPU's build, and after the source file's
path and torch's install directory: ninja rebuilds when the compile command changes, and it names both
(the source, torch's headers), so two checkouts, or two virtual environments with the same torch version
(the main one and ``.venv-bench`` or ``.venv-vllm``), sharing one directory would rebuild each other's
build in turn (~1-2 minutes each time).

Why: one decode step of a small model is mostly small ATen ops, not GEMMs (``bench/rollout.py``,
``bench/trl_step.py``); in C++ the step between its matmuls is plain loops with the GIL released.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
from pathlib import Path
from types import ModuleType

import torch

__all__ = ["ENV_SWITCH", "HEAD_DIMS", "KERNELS", "applies", "build", "build_name", "load_decode_step"]

log = logging.getLogger(__name__)

#: Set to 0 to keep the engine on its Python decode step.
ENV_SWITCH = "R1ZERO_NATIVE"
#: the C++ sources
KERNELS = Path(__file__).with_name("kernels")


#: Head dimensions the C++ step is compiled for (its attention keeps a head's output in registers).
HEAD_DIMS = (16, 32, 64, 128, 256)


def applies(device: torch.device, dtype: torch.dtype, head_dim: int) -> bool:
    """Whether the C++ step can run a model on ``device`` in ``dtype`` (CPU float32, ``HEAD_DIMS``).

    >>> applies(torch.device("cpu"), torch.float32, 64), applies(torch.device("cpu"), torch.bfloat16, 64)
    (True, False)
    """
    return torch.device(device).type == "cpu" and dtype == torch.float32 and head_dim in HEAD_DIMS


def load_decode_step() -> ModuleType | None:
    """The compiled decode step (built on first use), or None; the reason is logged once."""
    return build(
        KERNELS / "decode_step.cpp", "r1zero_decode", "the fast engine's C++ decode step", "the Python step"
    )


@functools.cache
def build(
    source: Path, prefix: str, what: str, fallback: str, flags: tuple[str, ...] = (), openmp: bool = False
) -> ModuleType | None:
    """Compile ``source`` for this CPU (cached under ``build_name``), or None when it cannot be built or
    ``R1ZERO_NATIVE=0``; ``what`` and ``fallback`` name it and its replacement in the log.

    ``openmp``: compile and link with ``-fopenmp`` on Linux, so that ``at::parallel_for`` splits work
    over torch's intra-op threads (without it the loop runs on the calling thread). The extension then
    needs ``libgomp.so.1``, which the torch wheel ships and has loaded already: one OpenMP runtime, one
    thread count (``torch.set_num_threads``)."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    try:
        from torch.utils import cpp_extension

        parallel = ["-fopenmp"] if openmp and platform.system() == "Linux" else []
        name = build_name(source, prefix, [*flags, *parallel])
        build_dir = Path(cpp_extension._get_build_directory(name, verbose=False))
        if not (build_dir / f"{name}.so").exists():
            log.info("r1zero: building %s (once per machine and checkout, ~1 minute)", what)
        native = ["-O3", "-march=native"] if platform.machine() in ("x86_64", "AMD64") else ["-O3"]
        return cpp_extension.load(
            name=name,
            sources=[str(source)],
            extra_cflags=[*native, *flags, *parallel],
            extra_ldflags=parallel,
            build_directory=str(build_dir),
            verbose=False,
        )
    except Exception as error:  # no compiler, no ninja, a failed build: the Python code serves
        log.warning("r1zero: %s unavailable (%s); using %s", what, error, fallback)
        return None


def build_name(source: Path, prefix: str, flags: list[str]) -> str:
    """The extension's name and build directory: ``prefix`` and a hash of the source's text and path, the
    CPU, the torch version and install directory, and the compiler ``flags`` (see the module docstring)."""
    places = (str(source.resolve()), str(Path(torch.__file__).resolve().parent))  # the compile command's
    parts = (
        source.read_bytes()
        + _cpu_model().encode()
        + torch.__version__.encode()
        + repr(flags).encode()
        + repr(places).encode()
    )
    return f"{prefix}_{hashlib.sha256(parts).hexdigest()[:12]}"


def _cpu_model() -> str:
    """The CPU's model line and flags from /proc/cpuinfo (the machine's name elsewhere)."""
    info = Path("/proc/cpuinfo")
    if info.exists():
        lines = info.read_text().splitlines()
        keep = [line for line in lines if line.split(":")[0].strip() in ("model name", "flags")]
        return "\n".join(dict.fromkeys(keep))
    return platform.processor() or platform.machine()
