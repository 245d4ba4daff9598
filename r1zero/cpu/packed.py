"""Packed completions for the CPU learner: the linear layers see only real tokens, no padding.

The learner's shared-prompt pass (``r1zero.train.forward.completion_outputs``) runs each distinct prompt
once and then every row's completion over its prompt's keys/values. Padded to the longest row of the
micro-batch, part of those completion tokens is padding, and keeping it low means splitting the rows
into more micro-batches, each one more forward/backward call with its own fixed cost. Packed, the
micro-batch's completion tokens are laid end to end as one sequence ``[1, N]``: every linear layer, norm
and MLP runs on the ``N`` real tokens, in one call per micro-batch (side ``r1zero-padded`` of
``bench/trl_step.py`` compares the two).

Only attention needs the rows apart. ``packed_attention`` (called by ``r1zero.cpu.attention.folded_sdpa``
when the forward carries a ``Packing``) gathers the rows into length buckets, pads each bucket to its
longest row, prepends each row's prompt keys/values, runs one SDPA call per bucket (query heads folded
onto their KV head, as ``r1zero.cpu.attention``) and scatters the real positions back. The result is the
padded computation's, up to float rounding (``tests/cpu/test_packed.py``).

On float32 CPU tensors of a model with fused kernels (``use_fused_attention``, which
``r1zero.cpu.prepare_model`` calls with the fused kernels) the rows need no buckets:
``attention_ops.cpp`` attends each row's tokens over its prompt's real keys and its own earlier tokens in
place, forward and backward, so no masked score is computed and no padded copy is made
(``tests/cpu/test_packed.py`` holds it to the bucket path and to the padded model).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F

from r1zero.algo.batch import micro_batches
from r1zero.cpu import extensions

__all__ = [
    "KWARG",
    "Bucket",
    "Packing",
    "RowIndex",
    "disable",
    "fused_packed_attention",
    "is_disabled",
    "kernel_applies",
    "load",
    "packed_attention",
    "packing_for",
    "use_fused_attention",
    "uses_fused_attention",
]

#: the forward keyword that carries a ``Packing`` down to the attention function
KWARG = "r1zero_packing"
SOURCE = extensions.KERNELS / "attention_ops.cpp"
#: head dimensions ``attention_ops.cpp`` is compiled for
KERNEL_HEAD_DIMS = (32, 64, 128)


def load() -> ModuleType | None:
    """The compiled packed-attention kernel, or None (no compiler, or ``R1ZERO_NATIVE=0``)."""
    return extensions.build(
        SOURCE, "r1zero_attention", "the learner's packed attention kernel", "SDPA over buckets", openmp=True
    )


def use_fused_attention(model: torch.nn.Module) -> bool:
    """Attend ``model``'s packed rows with ``attention_ops.cpp`` where it applies; False if it cannot be built."""
    if load() is None:
        return False
    model._r1zero_fused_attention = True  # type: ignore[assignment]
    return True


def uses_fused_attention(model: torch.nn.Module) -> bool:
    """Whether ``use_fused_attention(model)`` was called."""
    return bool(getattr(model, "_r1zero_fused_attention", False))


def disable(model: torch.nn.Module) -> None:
    """Run ``model``'s completions padded from now on (``cpu.packed=False``, or a model that drops the
    packing on its way to the attention)."""
    model._r1zero_unpacked = True  # type: ignore[assignment]


def is_disabled(model: torch.nn.Module) -> bool:
    """Whether ``disable(model)`` was called."""
    return bool(getattr(model, "_r1zero_unpacked", False))


@dataclass(frozen=True)
class Bucket:
    """Rows of a packed micro-batch, padded to ``length`` completion positions.

    Attributes:
        tokens: the packed positions of its rows' tokens (consecutive: rows are packed in order).
        slots: ``[tokens]`` where each of those tokens goes in the padded ``[rows * length]`` layout.
        prompts: ``[rows]`` each row's distinct prompt (an index into the prompt keys/values).
        bias: ``[rows, 1, G * length, P + length]`` 0 where a query may attend, -inf where not (prompt padding,
            the causal order); ``G`` query heads per KV head, folded along the query axis. Additive, so
            SDPA does not convert a boolean mask in every layer.
    """

    tokens: slice
    slots: torch.Tensor
    prompts: torch.Tensor
    bias: torch.Tensor
    rows: int
    length: int


@dataclass(frozen=True)
class RowIndex:
    """Where each packed row lives, for ``attention_ops.cpp`` (int64 CPU vectors).

    Attributes:
        start, length: ``[b]`` each row's first packed token and its token count.
        prompt: ``[b]`` each row's distinct prompt.
        prompt_length: ``[U]`` each prompt's real tokens (the last columns of its left-padded keys/values).
    """

    start: torch.Tensor
    length: torch.Tensor
    prompt: torch.Tensor
    prompt_length: torch.Tensor

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The four vectors in the order ``attention_ops.cpp`` takes them."""
        return self.start, self.length, self.prompt, self.prompt_length


@dataclass(frozen=True)
class Packing:
    """How a packed micro-batch maps back to rows: its buckets and every layer's prompt keys/values.

    Attributes:
        buckets: the rows' buckets, in row order (concatenated, their real slots are the packed order);
            empty when ``rows`` is set.
        keys, values: per layer, the prompt keys/values ``[U, Hkv, P, Dh]`` (after RoPE) of the distinct prompts.
        rows: the rows for the fused kernel (``attention_ops.cpp``), or None (SDPA over ``buckets``).
        layers_seen: the layers whose attention ran packed (a model that drops the keyword on its way
            down would attend across rows: the caller checks every layer saw it).
    """

    buckets: tuple[Bucket, ...]
    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    layers_seen: list[int] = field(default_factory=list)
    rows: RowIndex | None = None


def packing_for(
    lengths: Sequence[int],
    prompts: torch.Tensor,
    prompt_mask: torch.Tensor,
    keys: Sequence[torch.Tensor],
    values: Sequence[torch.Tensor],
    groups: int,
    overhead: int = 32,
    fused: bool = False,
) -> Packing:
    """The ``Packing`` of rows with ``lengths`` completion tokens each, laid end to end in row order.

    Args:
        lengths: per row, how many of its tokens are packed (ascending order keeps the buckets tight).
        prompts: ``[b]`` each row's distinct prompt; ``prompt_mask``: ``[U, P]`` those prompts' masks.
        keys, values: per layer ``[U, Hkv, P, Dh]``.
        groups: query heads per KV head.
        overhead: padded positions one more SDPA call is worth (the bucketing's trade-off).
        fused: use ``attention_ops.cpp`` where ``kernel_applies`` (else the buckets).
    """
    device, dtype = prompt_mask.device, keys[0].dtype
    starts = [0, *itertools.accumulate(lengths)]
    if fused and kernel_applies(prompt_mask, keys[0]):
        rows = RowIndex(
            torch.tensor(starts[:-1], dtype=torch.long),
            torch.tensor(list(lengths), dtype=torch.long),
            prompts.to(torch.long).contiguous(),
            prompt_mask.sum(dim=1).to(torch.long).contiguous(),
        )
        return Packing((), tuple(keys), tuple(values), rows=rows)
    buckets = []
    for rows in micro_batches(list(lengths), cap=max(len(lengths), 1), overhead=overhead):
        width = max(max(lengths[rows]), 1)
        slot = torch.arange(width, device=device)
        real = slot[None] < torch.tensor(lengths[rows], device=device)[:, None]  # [b, width]
        index = prompts[rows]
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()  # [width, width]
        allowed = torch.cat(
            [
                prompt_mask[index].bool()[:, None, :].expand(-1, width, -1),
                causal[None].expand(len(index), -1, -1),
            ],
            dim=2,
        )  # [b, width, P + width]
        mask = allowed[:, None].repeat(1, 1, groups, 1)  # [b, 1, G width, P + width]
        bias = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill_(~mask, float("-inf"))
        tokens = slice(starts[rows.start], starts[rows.stop])
        buckets.append(Bucket(tokens, real.flatten().nonzero().flatten(), index, bias, len(index), width))
    return Packing(tuple(buckets), tuple(keys), tuple(values))


def kernel_applies(prompt_mask: torch.Tensor, keys: torch.Tensor) -> bool:
    """Whether ``attention_ops.cpp`` can attend over prompts of ``prompt_mask`` and ``keys [U, Hkv, P, Dh]``:
    float32 CPU, a compiled head dimension, prompts left-padded (each one's real tokens last), the
    kernel built."""
    if not (
        keys.device.type == prompt_mask.device.type == "cpu"
        and keys.dtype == torch.float32
        and keys.shape[-1] in KERNEL_HEAD_DIMS
    ):
        return False
    width = prompt_mask.shape[1]
    real = prompt_mask.sum(dim=1, keepdim=True)
    return torch.equal(prompt_mask.bool(), torch.arange(width) >= width - real) and load() is not None


class _PackedAttention(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        prompt_k: torch.Tensor,
        prompt_v: torch.Tensor,
        rows: RowIndex,
        scale: float,
    ) -> torch.Tensor:
        out, lse = load().forward(q, k, v, prompt_k, prompt_v, *rows.tensors(), scale)
        ctx.save_for_backward(q, k, v, prompt_k, prompt_v, out, lse)
        ctx.rows, ctx.scale = rows, scale
        return out

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, k, v, prompt_k, prompt_v, out, lse = ctx.saved_tensors
        rows: RowIndex = ctx.rows
        dq, dk, dv, dpk, dpv = load().backward(
            dout.contiguous(), q, k, v, prompt_k, prompt_v, out, lse, *rows.tensors(), ctx.scale
        )
        return dq, dk, dv, dpk, dpv, None, None


def fused_packed_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, packing: Packing, layer: int, scale: float
) -> torch.Tensor:
    """``packed_attention`` on ``attention_ops.cpp``: ``query [1, H, N, Dh]`` -> ``[1, N, H, Dh]``."""
    q, k, v = (t[0].transpose(0, 1).contiguous() for t in (query, key, value))  # [N, heads, Dh]
    prompt_k, prompt_v = (t[layer].contiguous() for t in (packing.keys, packing.values))
    return _PackedAttention.apply(q, k, v, prompt_k, prompt_v, packing.rows, scale)[None]


def packed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    packing: Packing,
    scaling: float | None,
) -> torch.Tensor:
    """Attention of packed rows over their prompts and themselves.

    ``query [1, H, N, Dh]``, ``key``/``value [1, Hkv, N, Dh]`` (packed, after RoPE); returns
    ``[1, N, H, Dh]`` as Hugging Face's attention functions do.
    """
    layer = module.layer_idx
    packing.layers_seen.append(layer)
    _, heads, _, dh = query.shape
    if packing.rows is not None:
        return fused_packed_attention(query, key, value, packing, layer, scaling or dh**-0.5)
    prompt_keys, prompt_values = packing.keys[layer], packing.values[layer]  # [U, Hkv, P, Dh]
    kv_heads = key.shape[1]
    # squeeze and split, not t[0] and t[b.tokens]: their backward is a view and one cat, where
    # indexing's writes each bucket's gradient into a zeroed copy of the whole tensor and sums them
    sizes = [b.tokens.stop - b.tokens.start for b in packing.buckets]
    split = [t.squeeze(0).transpose(0, 1).split(sizes) for t in (query, key, value)]  # [n, heads, Dh]
    outs = []
    for b, *rows in zip(packing.buckets, *split, strict=True):
        qb, kb, vb = (_pad(t, b) for t in rows)  # [b, heads, len, Dh]
        keys = torch.cat([prompt_keys.index_select(0, b.prompts), kb], dim=2)  # [b, Hkv, P + len, Dh]
        values = torch.cat([prompt_values.index_select(0, b.prompts), vb], dim=2)
        folded = qb.reshape(b.rows, kv_heads, heads // kv_heads * b.length, dh)  # head h = kv * G + g
        out = F.scaled_dot_product_attention(folded, keys, values, attn_mask=b.bias, scale=scaling)
        out = out.view(b.rows, heads, b.length, dh).transpose(1, 2).reshape(b.rows * b.length, heads, dh)
        outs.append(out.index_select(0, b.slots))  # [real tokens, H, Dh]
    return torch.cat(outs)[None]  # [1, N, H, Dh]


def _pad(packed_rows: torch.Tensor, bucket: Bucket) -> torch.Tensor:
    """``[tokens, heads, Dh]`` of a bucket's rows -> ``[rows, heads, length, Dh]``, zeros past each row's end.

    ``index_copy`` forward, ``index_select`` backward: no accumulating scatter (each slot is written once).
    """
    heads, dh = packed_rows.shape[1:]
    padded = packed_rows.new_zeros(bucket.rows * bucket.length, heads, dh).index_copy(
        0, bucket.slots, packed_rows
    )
    return padded.view(bucket.rows, bucket.length, heads, dh).transpose(1, 2)
