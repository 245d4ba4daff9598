"""Grouped-query attention for the learner on CPU: each KV head's query heads folded onto it.

Hugging Face's ``sdpa`` attention passes a padding mask to ``scaled_dot_product_attention`` and, with
a mask, first copies every key and value head once per query head that reads it (``repeat_kv``), forward
and backward. Here the ``G`` query heads of a KV head are stacked along the query axis instead
(``[B, H, T, Dh]`` -> ``[B, Hkv, G T, Dh]``, the mask repeated ``G`` times along its query axis), so
each key/value head is read in place: the same attention, one SDPA call, no copies of K/V, so less
memory traffic forward and backward (``bench/trl_step.py`` measures the step; docs/performance.md).

``use_folded_gqa(model)`` switches a Hugging Face model to it (the attention implementation
``"r1zero_sdpa"``, masks as ``sdpa``'s). Anything it does not fold (no mask, one query, one query head per
KV head, per-head masks, position biases, soft-capping) goes to Hugging Face's ``sdpa`` unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from r1zero.cpu import packed

__all__ = ["NAME", "folded_sdpa", "use_folded_gqa"]

NAME = "r1zero_sdpa"


def folded_sdpa(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """An ``AttentionInterface`` function: ``query [B, H, T, Dh]``, ``key``/``value [B, Hkv, S, Dh]``.

    Returns ``([B, T, H, Dh], None)``, as Hugging Face's ``sdpa_attention_forward``.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if (packing := kwargs.get(packed.KWARG)) is not None:  # the learner's packed completions
        return packed.packed_attention(module, query, key, value, packing, scaling), None
    batch, heads, length, dh = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    plain = (
        groups == 1
        or attention_mask is None
        or attention_mask.dim() != 4
        or attention_mask.shape[1] != 1
        or length == 1
        or kwargs.get("position_bias") is not None
        or kwargs.get("softcap") is not None
    )
    if plain:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs
        )
    q = query.reshape(batch, kv_heads, groups * length, dh)  # head h = kv * G + g, as repeat_kv orders them
    mask = attention_mask.repeat(1, 1, groups, 1)  # [B, 1, G T, S]: query g T + t is query t's row
    out = F.scaled_dot_product_attention(q, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling)
    return out.view(batch, heads, length, dh).transpose(1, 2).contiguous(), None


def use_folded_gqa(model: torch.nn.Module) -> bool:
    """Switch ``model`` (a Hugging Face ``PreTrainedModel`` on ``sdpa``) to ``folded_sdpa``; False if not.

    Models on another attention, and ``transformers`` versions without attention/mask registries or
    ``set_attn_implementation``, keep what they have.
    """
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    except ImportError:
        return False
    config = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    if not hasattr(model, "set_attn_implementation"):
        return False
    AttentionInterface.register(NAME, folded_sdpa)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    return True
