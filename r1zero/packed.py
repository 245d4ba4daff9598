"""Packed completions for the CPU learner: the linear layers see only real tokens, no padding.

The learner's shared-prompt pass (``r1zero.train.learner.completion_outputs``) runs each distinct prompt
once and then every row's completion over its prompt's keys/values. Padded to the longest row of the
micro-batch, a tenth of those completion tokens were padding, and rows were split into several
micro-batches to keep that padding low, each one more forward/backward call (~10 ms of fixed cost on the
benchmark's CPU model). Packed, the micro-batch's completion tokens are laid end to end as one sequence
``[1, N]``: every linear layer, norm and MLP runs on the ``N`` real tokens, in one call per micro-batch.

Only attention needs the rows apart. ``packed_attention`` (called by ``r1zero.gqa.folded_sdpa`` when the
forward carries a ``Packing``) gathers the rows into length buckets, pads each bucket to its longest row,
prepends each row's prompt keys/values, runs one SDPA call per bucket (query heads folded onto their KV
head, as ``r1zero.gqa``) and scatters the real positions back. The result is the padded computation's, up
to float rounding (``tests/test_packed.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

__all__ = ["KWARG", "Bucket", "Packing", "disable", "is_disabled", "packed_attention", "packing_for"]

#: the forward keyword that carries a ``Packing`` down to the attention function
KWARG = "r1zero_packing"


def disable(model: torch.nn.Module) -> None:
    """Run ``model``'s completions padded from now on (``model.packed=False``, or a model that drops the
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
class Packing:
    """How a packed micro-batch maps back to rows: its buckets and every layer's prompt keys/values.

    Attributes:
        buckets: the rows' buckets, in row order (concatenated, their real slots are the packed order).
        keys, values: per layer, the prompt keys/values ``[U, Hkv, P, Dh]`` (after RoPE) of the distinct prompts.
        layers_seen: the layers whose attention ran packed (a model that drops the keyword on its way
            down would attend across rows: the caller checks every layer saw it).
    """

    buckets: tuple[Bucket, ...]
    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    layers_seen: list[int] = field(default_factory=list)


def packing_for(
    lengths: Sequence[int],
    prompts: torch.Tensor,
    prompt_mask: torch.Tensor,
    keys: Sequence[torch.Tensor],
    values: Sequence[torch.Tensor],
    groups: int,
    overhead: int = 32,
) -> Packing:
    """The ``Packing`` of rows with ``lengths`` completion tokens each, laid end to end in row order.

    Args:
        lengths: per row, how many of its tokens are packed (ascending order keeps the buckets tight).
        prompts: ``[b]`` each row's distinct prompt; ``prompt_mask``: ``[U, P]`` those prompts' masks.
        keys, values: per layer ``[U, Hkv, P, Dh]``.
        groups: query heads per KV head.
        overhead: padded positions one more SDPA call is worth (the bucketing's trade-off).
    """
    from r1zero.train.learner import micro_batches

    device, dtype = prompt_mask.device, keys[0].dtype
    starts = [0, *itertools.accumulate(lengths)]
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
    prompt_keys, prompt_values = packing.keys[layer], packing.values[layer]  # [U, Hkv, P, Dh]
    _, heads, _, dh = query.shape
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
