"""Fused RMSNorm and SwiGLU for the CPU learner (float32): one pass forward, one backward, in C++.

``use_fused_kernels(model)`` swaps the forward of every Llama/Qwen2-style ``*RMSNorm`` module and of
every gated MLP (``gate_proj``, ``up_proj``, ``down_proj``, SiLU) for autograd Functions over the kernels
in ``fused_ops.cpp`` (compiled on first use like the ``fast`` engine's decode step,
``r1zero.rollout.native``). Same maths as transformers' modules; results agree to float32 rounding
(the norm's mean of squares is summed in another order), gradients included (``tests/test_fused.py``).

Why: the eager modules are ~27 elementwise ATen ops per layer forward and backward, each a pass over the
activations; on the benchmark's CPU learner they took about a fifth of the update (docs/benchmarks.md).

It applies only where the kernels do: CPU, float32, the extension built (else the model is untouched).

    >>> from transformers import Qwen2Config, Qwen2ForCausalLM
    >>> m = Qwen2ForCausalLM(Qwen2Config(vocab_size=32, hidden_size=16, intermediate_size=32,
    ...                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))
    >>> use_fused_kernels(m) in (0, 4)  # 3 norms and 1 MLP, or 0 without a compiler
    True
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from r1zero.rollout import native

__all__ = ["SOURCE", "load", "rmsnorm", "swiglu", "use_fused_kernels"]

SOURCE = Path(__file__).with_name("fused_ops.cpp")


def load() -> ModuleType | None:
    """The compiled kernels, or None (no compiler, or ``R1ZERO_NATIVE=0``)."""
    return native.build(
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


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``weight * x / sqrt(mean(x^2, -1) + eps)`` over the last dimension (float32 CPU)."""
    return _RMSNorm.apply(x, weight, eps)


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` (float32 CPU)."""
    return _SwiGLU.apply(gate, up)


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
    """Run ``model``'s RMSNorms and SwiGLU MLPs on the fused kernels; returns how many modules changed
    (0 when the model is not float32 on CPU or the kernels cannot be built).

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
    return changed
