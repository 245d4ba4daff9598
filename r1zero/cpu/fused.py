"""Fused RMSNorm, SwiGLU and RoPE for the CPU learner (float32): one pass forward, one backward, in C++.

``use_fused_kernels(model)`` swaps the forward of every Llama/Qwen2-style ``*RMSNorm`` module and of
every gated MLP (``gate_proj``, ``up_proj``, ``down_proj``, SiLU) for autograd Functions over the kernels
in ``fused_ops.cpp`` (compiled on first use like the ``fast`` engine's decode step,
``r1zero.cpu.extensions``). Same maths as transformers' modules; results agree to float32 rounding
(the norm's mean of squares is summed in another order), gradients included (``tests/cpu/test_fused.py``).

Why: the eager modules are ~27 elementwise ATen ops per layer forward and backward, each a pass over the
activations, a large share of a small model's CPU update (side ``r1zero-unfused`` of
``bench/trl_step.py``; docs/performance.md).

RoPE is not a module: Qwen2/Llama attention calls its modeling module's ``apply_rotary_pos_emb``
(``q * cos + rotate_half(q) * sin``: a slice, ``neg``, ``cat``, two ``mul`` and an ``add`` per tensor,
and a backward that writes each slice's gradient into a zeroed copy of the whole tensor). So
``use_fused_rope()`` replaces that function in transformers' ``modeling_qwen2`` and ``modeling_llama``
for the whole process, with one that runs the fused kernel for float32 CPU tensors and calls the
original for anything else (other devices, dtypes or layouts): the same maths either way.

It applies only where the kernels do: CPU, float32, the extension built (else the model is untouched).

    >>> from transformers import Qwen2Config, Qwen2ForCausalLM
    >>> m = Qwen2ForCausalLM(Qwen2Config(vocab_size=32, hidden_size=16, intermediate_size=32,
    ...                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))
    >>> use_fused_kernels(m) in (0, 4)  # 3 norms and 1 MLP, or 0 without a compiler
    True
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch

from r1zero.cpu import extensions

__all__ = ["SOURCE", "load", "rmsnorm", "rope", "swiglu", "use_fused_kernels", "use_fused_rope"]

SOURCE = extensions.KERNELS / "fused_ops.cpp"


def load() -> ModuleType | None:
    """The compiled kernels, or None (no compiler, or ``R1ZERO_NATIVE=0``)."""
    return extensions.build(
        SOURCE, "r1zero_fused", "the learner's fused CPU kernels", "PyTorch's ops", openmp=True
    )


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        ops = load()
        flat = x.reshape(-1, x.shape[-1]).contiguous()  # [N, H]
        y, rstd = ops.rmsnorm_forward(flat, weight.contiguous(), eps)
        ctx.save_for_backward(flat, weight, rstd)
        return y.view(x.shape)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        flat, weight, rstd = ctx.saved_tensors
        dx, dw = load().rmsnorm_backward(dy.reshape(flat.shape).contiguous(), flat, weight.contiguous(), rstd)
        return dx.view(dy.shape), dw, None


class _SwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        gate, up = gate.contiguous(), up.contiguous()
        ctx.save_for_backward(gate, up)
        return load().swiglu_forward(gate, up)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate, up = ctx.saved_tensors
        return tuple(load().swiglu_backward(dy.contiguous(), gate, up))


class _RoPE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, h, t, d = x.shape
        rows = x.transpose(1, 2).reshape(b * t, h, d).contiguous()  # a view for q/k from view().transpose()
        cos, sin = (c.expand(b, t, d).reshape(b * t, d).contiguous() for c in (cos, sin))  # [b t, d]
        ctx.save_for_backward(cos, sin)
        return load().rope(rows, cos, sin, False).view(b, t, h, d).transpose(1, 2)  # [b, h, t, d]

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        b, h, t, d = dy.shape
        rows = dy.transpose(1, 2).reshape(b * t, h, d).contiguous()
        return load().rope(rows, cos, sin, True).view(b, t, h, d).transpose(1, 2), None, None


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x * cos + rotate_half(x) * sin`` for ``x [B, H, T, D]``, ``cos``/``sin [B or 1, T, D]`` (float32 CPU).

    The result is laid out ``[B, T, H, D]`` in memory (a transposed view), as the projections' outputs are.
    """
    return _RoPE.apply(x, cos, sin)


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``weight * x / sqrt(mean(x^2, -1) + eps)`` over the last dimension (float32 CPU)."""
    return _RMSNorm.apply(x, weight, eps)


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` (float32 CPU)."""
    return _SwiGLU.apply(gate, up)


def _rope_applies(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> bool:
    return (
        all(t.device.type == "cpu" and t.dtype == torch.float32 for t in (q, k, cos, sin))
        and q.dim() == k.dim() == 4
        and cos.dim() == sin.dim() == 3
        and q.shape[-1] % 2 == 0
        and q.shape[-1] == k.shape[-1] == cos.shape[-1] == sin.shape[-1]
        and not (cos.requires_grad or sin.requires_grad)
        and load() is not None
    )


def _fused_apply_rotary_pos_emb(original: Callable) -> Callable:
    def apply_rotary_pos_emb(q, k, cos, sin, *args, **kwargs):  # type: ignore[no-untyped-def]
        if args or kwargs.get("unsqueeze_dim", 1) != 1 or not _rope_applies(q, k, cos, sin):
            return original(q, k, cos, sin, *args, **kwargs)
        return rope(q, cos, sin), rope(k, cos, sin)

    apply_rotary_pos_emb.r1zero_original = original  # type: ignore[attr-defined]
    return apply_rotary_pos_emb


#: the transformers modules whose ``apply_rotary_pos_emb`` ``use_fused_rope`` replaces
ROPE_MODULES = ("transformers.models.qwen2.modeling_qwen2", "transformers.models.llama.modeling_llama")


def use_fused_rope() -> int:
    """Replace ``apply_rotary_pos_emb`` in ``ROPE_MODULES`` (once per process); how many were replaced now."""
    if load() is None:
        return 0
    replaced = 0
    for name in ROPE_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        current = getattr(module, "apply_rotary_pos_emb", None)
        if current is not None and not hasattr(current, "r1zero_original"):
            module.apply_rotary_pos_emb = _fused_apply_rotary_pos_emb(current)
            replaced += 1
    return replaced


def _norm_forward(self: torch.nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    return rmsnorm(hidden_states, self.weight, self.variance_epsilon)


def _mlp_forward(self: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return self.down_proj(swiglu(self.gate_proj(x), self.up_proj(x)))


def _is_norm(module: torch.nn.Module) -> bool:
    name = type(module).__name__
    return name.endswith("RMSNorm") and not name.startswith("Fused") and hasattr(module, "variance_epsilon")


def _is_mlp(module: torch.nn.Module) -> bool:
    parts = all(
        isinstance(getattr(module, n, None), torch.nn.Module) for n in ("gate_proj", "up_proj", "down_proj")
    )
    fused = type(module).__name__.startswith("Fused")
    silu = type(getattr(module, "act_fn", None)).__name__ in (
        "SiLU",
        "SiLUActivation",
    )  # torch's, transformers'
    return parts and not fused and silu


@functools.cache
def _fused_class(cls: type, forward: Any) -> type:
    """A subclass of ``cls`` whose forward is ``forward`` (one per class, like ``onednn.Linear``)."""
    return type(f"Fused{cls.__name__}", (cls,), {"forward": forward, "__module__": __name__})


def use_fused_kernels(model: torch.nn.Module) -> int:
    """Run ``model``'s RMSNorms and SwiGLU MLPs on the fused kernels, and Qwen2/Llama RoPE too
    (``use_fused_rope``); returns how many modules changed (0 when the model is not float32 on CPU or the
    kernels cannot be built).

    Each module changes class to a subclass with the fused forward (parameters, state dict and
    ``isinstance`` unchanged); an instance attribute would not do, as transformers' ``train()`` may
    reset instance forwards (with the ``kernels`` package installed, it "kernelizes" the model).
    """
    weight = next(model.parameters(), None)
    if weight is None or weight.device.type != "cpu" or weight.dtype != torch.float32 or load() is None:
        return 0
    changed = 0
    for module in model.modules():
        if _is_norm(module) and module.weight.dtype == torch.float32:
            module.__class__ = _fused_class(type(module), _norm_forward)
            changed += 1
        elif _is_mlp(module):
            module.__class__ = _fused_class(type(module), _mlp_forward)
            changed += 1
    if changed:
        use_fused_rope()
    return changed
