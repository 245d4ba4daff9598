"""Everything that only makes float32 on CPU faster, behind one switch (the ``cpu`` config section).

Each feature gives the same results as plain PyTorch/transformers up to float32 rounding, applies only
where it can (CPU, float32, a model it knows) and leaves anything else untouched, so GPU runs never
reach it. The rest of r1zero uses only the functions below:

- ``prepare_process`` and ``prepare_model``: the training session, once per process and once for every
  model it builds (policy, reference, critic, reward model);
- ``packed_outputs`` and ``runs_packed``: the learner's forward (``r1zero.train.forward``);
- ``decode_kernel`` and ``onednn``: the ``fast`` rollout engine.

Modules: ``attention`` (grouped-query attention folded onto the KV heads), ``packed`` and ``forward``
(a micro-batch's completions laid end to end, no padding), ``fused`` (RMSNorm, SwiGLU, RoPE kernels),
``onednn`` (linear layers on oneDNN's GEMM), ``malloc`` (glibc keeps freed memory), ``extensions``
(builds the C++ sources in ``kernels/`` on first use).

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Off:
    ...     enabled: bool = False
    >>> prepare_model(torch.nn.Linear(2, 2), Off())
    ()
"""

from __future__ import annotations

from types import ModuleType
from typing import Protocol

import torch

from r1zero.cpu import attention, extensions, fused, malloc, onednn, packed
from r1zero.cpu.forward import packed_outputs, runs_packed

__all__ = [
    "CpuSettings",
    "decode_kernel",
    "onednn",
    "packed_outputs",
    "prepare_model",
    "prepare_process",
    "runs_packed",
]


class CpuSettings(Protocol):
    """The switches ``prepare_model`` reads (``r1zero.train.config.CpuConfig`` documents each one)."""

    enabled: bool
    onednn: bool | None
    folded_attention: bool
    packed: bool
    fused_kernels: bool
    native_decode: bool
    keep_freed_memory: bool


def prepare_process(settings: CpuSettings) -> bool:
    """Process-wide settings (glibc keeps freed heap memory); whether anything was applied."""
    return settings.enabled and settings.keep_freed_memory and malloc.keep_freed_memory()


def prepare_model(model: torch.nn.Module, settings: CpuSettings) -> tuple[str, ...]:
    """Switch ``model`` to every enabled feature that applies to it; returns the features applied.

    The one call site for any model a run builds, so the policy, the reference, the critic and a
    learned reward model run the same code. A model on another device or dtype gets what applies
    (nothing on a GPU); ``settings.enabled=False`` leaves the model as transformers built it.
    """
    weight = next(model.parameters(), None)
    if not getattr(settings, "enabled", False) or weight is None or weight.device.type != "cpu":
        packed.disable(model)
        return ()
    applied = []
    if weight.dtype == torch.float32 and onednn.resolve(settings.onednn) and onednn.use_onednn(model):
        applied.append("onednn")
    if settings.folded_attention and attention.use_folded_gqa(model):
        applied.append("folded_attention")
    if settings.fused_kernels and fused.use_fused_kernels(model):
        applied.append("fused_kernels")
        if settings.packed and packed.use_fused_attention(model):
            applied.append("fused_attention")
    if not settings.packed:
        packed.disable(model)
    elif runs_packed(model):
        applied.append("packed")
    return tuple(applied)


def decode_kernel(device: torch.device, dtype: torch.dtype, head_dim: int) -> ModuleType | None:
    """The ``fast`` engine's C++ decode step for a model on ``device`` in ``dtype``, or None (not float32
    CPU, a head dimension it is not compiled for, no compiler, or ``R1ZERO_NATIVE=0``)."""
    return extensions.load_decode_step() if extensions.applies(device, dtype, head_dim) else None
