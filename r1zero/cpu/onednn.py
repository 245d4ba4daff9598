"""float32 linear layers through oneDNN on CPU: the same maths as ``F.linear``, on a faster GEMM.

PyTorch's x86 CPU build sends a float32 ``F.linear`` / ``addmm`` to MKL's SGEMM. MKL picks its code
path by CPU vendor: on non-Intel x86 CPUs it takes a generic AVX2 path, AVX-512 cores included, while
oneDNN, which PyTorch also ships, generates its kernels for the instruction set the core reports, so
its float32 GEMMs run faster there (``bench/onednn.py`` measures both; docs/performance.md). It is
still float32 arithmetic (no reduced-precision mode is involved); results differ from MKL's by rounding
(summation order) only.

``linear`` is ``F.linear`` with oneDNN underneath (autograd included: the backward pass's input
gradient goes through oneDNN too, the weight gradient through ``torch.mm``, which needs no transposed
copies) for float32 CPU tensors, and ``F.linear`` itself for anything else.
``use_onednn(model)`` makes a model's ``nn.Linear`` layers call it (Hugging Face models need no other
change). ``pack(weight)`` stores a weight that is read many times without a gradient (the decode
loop's) in oneDNN's own blocked layout, so that its GEMMs do not re-lay it out on every call. The
layers are swapped rather than ``F.linear`` routed through a ``TorchFunctionMode``, which would put a
Python call in front of every torch op of the block and cost the decode loop more than the GEMM saves.

``preferred()`` says where it pays: on x86 CPUs that are not Intel's. On Intel CPUs MKL runs its own
AVX-512 kernels and is as fast as oneDNN or faster (``bench/onednn.py``; sides ``r1zero-mkl`` and
``r1zero-onednn`` of ``bench/trl_step.py``). ``cpu.onednn`` left at None follows it.
"""

from __future__ import annotations

import functools
import os
import platform

import torch
import torch.nn.functional as F

__all__ = [
    "Linear",
    "add_linear",
    "available",
    "cpu_vendor",
    "linear",
    "pack",
    "preferred",
    "resolve",
    "use_onednn",
]


#: Entries kept by oneDNN's primitive cache and by PyTorch's oneDNN (ideep) cache. Both keep one entry
#: per GEMM shape, and a training step meets new shapes all the time (each micro-batch's token count,
#: each decode batch size): at their default 1024 entries a run's peak RSS grows by hundreds of MB, at 16
#: it stays close to MKL's (peak RSS in ``bench/trl_step.py``).
CACHE_CAPACITY = 16

#: The row count a packed weight's layout is chosen for: one layout serves every decode batch size, as
#: weights packed for 64 rows beat the plain layout from 8 to 64 rows (``bench/onednn.py``, decode_step).
PACK_ROWS = 64
_CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")


@functools.cache
def available() -> bool:
    """Whether this torch build has oneDNN's dense float32 linear op (without it, ``F.linear`` runs).

    The first call also bounds oneDNN's shape caches (``CACHE_CAPACITY``, unless the environment
    already sets them): both libraries read the variables at their first oneDNN call in the process.
    """
    for name in _CACHE_VARIABLES:
        os.environ.setdefault(name, str(CACHE_CAPACITY))
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        probe = torch.ones(2, 3)
        out = torch.ops.mkldnn._linear_pointwise(probe, torch.ones(4, 3), None, "none", [], "")
    except (AttributeError, RuntimeError):
        return False
    return bool(out.shape == (2, 4) and torch.all(out == 3))


@functools.cache
def cpu_vendor() -> str:
    """The CPU's ``vendor_id`` from ``/proc/cpuinfo`` ("GenuineIntel", "AuthenticAMD"); "" where unknown."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def preferred() -> bool:
    """Whether oneDNN's GEMM should replace PyTorch's default here: an x86 CPU of a known vendor other than
    Intel (MKL's AVX-512 kernels are Intel-only), with oneDNN's op available."""
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return x86 and cpu_vendor() not in ("", "GenuineIntel") and available()


def resolve(enabled: bool | None) -> bool:
    """``cpu.onednn``'s value: None (the default) follows ``preferred()``, True/False force it."""
    return preferred() if enabled is None else enabled


def _gemm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ weight.T + bias`` by oneDNN (``x [..., k]``, ``weight [n, k]``, any strides)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class _Linear(torch.autograd.Function):
    """``F.linear`` whose forward and input-gradient GEMMs run in oneDNN.

    The weight gradient ``grad.T @ x`` is ``torch.mm``: both of its operands are transposed views,
    which PyTorch's GEMM reads in place, while oneDNN's op copies each of them to a contiguous
    ``[features, tokens]`` matrix first (``bench/onednn.py``, forward+backward: ``onednn-wgrad``).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _gemm(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _gemm(grad, weight.t(), None)  # [..., n] x [n, k]
        rows = grad.reshape(-1, grad.size(-1))  # [M, n]
        if ctx.needs_input_grad[1]:
            grad_w = torch.mm(rows.t(), x.reshape(-1, x.size(-1)))  # [n, M] x [M, k], no copies
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = rows.sum(0)
        return grad_x, grad_w, grad_b


def pack(weight: torch.Tensor, rows: int = PACK_ROWS) -> torch.Tensor:
    """``weight [n, k]`` in oneDNN's blocked layout for GEMMs of about ``rows`` rows, for ``linear`` and
    ``add_linear`` without autograd; a weight oneDNN does not take (not float32 CPU) comes back as is.

    The packed tensor (layout ``torch._mkldnn``) holds the same values: the GEMMs give the plain
    weight's results up to float32 rounding (often bit for bit; oneDNN may pick other kernels by CPU,
    and for a single plain row; ``tests/cpu/test_onednn.py``).

    >>> w = torch.randn(5, 4)
    >>> x = torch.randn(3, 4)
    >>> torch.allclose(linear(x, pack(w)), linear(x, w), rtol=1e-5, atol=1e-6)
    True
    """
    if not _applies(weight, weight):  # the weight alone decides
        return weight
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), rows)


def _applies(x: torch.Tensor, weight: torch.Tensor, *others: torch.Tensor | None) -> bool:
    """oneDNN takes ``x @ weight.T`` (plus ``others``: a bias, a residual): dense float32 on CPU."""
    tensors = [x, weight, *(t for t in others if t is not None)]
    return (
        available()
        and all(
            t.device.type == "cpu" and t.dtype == torch.float32 and t.layout == torch.strided for t in tensors
        )
        and x.dim() >= 1
        and x.numel() > 0
        and weight.dim() == 2
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through oneDNN for float32 CPU tensors (see the module docstring).

    >>> x, w = torch.randn(3, 4), torch.randn(5, 4)
    >>> bool(torch.allclose(linear(x, w), F.linear(x, w), atol=1e-5))
    True
    """
    if weight.is_mkldnn:  # packed by ``pack``: only oneDNN reads it
        return _gemm(x, weight, bias)
    if not _applies(x, weight, bias):
        return F.linear(x, weight, bias)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
        return _Linear.apply(x, weight, bias)
    return _gemm(x, weight, bias)


def add_linear(x: torch.Tensor, h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x + F.linear(h, weight)`` in one call, without autograd (``x [M, n]``, ``h [M, k]``, ``weight [n, k]``).

    The decode loop's residual update: oneDNN's GEMM with the sum fused where it applies, else one
    ``addmm``.

    >>> x, h, w = torch.randn(3, 5), torch.randn(3, 4), torch.randn(5, 4)
    >>> bool(torch.allclose(add_linear(x, h, w), x + h @ w.T, atol=1e-5))
    True
    """
    if weight.is_mkldnn or _applies(h, weight, x):
        return torch.ops.mkldnn._linear_pointwise.binary(h, x, weight, None, "add")
    return torch.addmm(x, h, weight.t())


class Linear(torch.nn.Linear):
    """``nn.Linear`` whose forward is ``linear`` (oneDNN for float32 CPU tensors, else ``F.linear``)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return linear(input, self.weight, self.bias)


def use_onednn(model: torch.nn.Module) -> int:
    """Run every plain ``nn.Linear`` of ``model`` through ``linear``, in place; returns how many.

    The modules change class to ``Linear`` (a subclass: parameters, state dict, ``isinstance`` checks
    and saving are unchanged), as ``torch.nn.utils.parametrize`` does; no other op of the model is
    touched, and nothing is intercepted at run time.

    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> use_onednn(model), type(model[0]).__name__, isinstance(model[2], torch.nn.Linear)
    (2, 'Linear', True)
    """
    swapped = 0
    for module in model.modules():
        if type(module) is torch.nn.Linear:
            module.__class__ = Linear
            swapped += 1
    return swapped
