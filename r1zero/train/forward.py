"""The learner's forward pass over a step's rows: each distinct prompt once, then every row's completion.

``completion_outputs`` gives a model's per-position output (logits, or a critic's values) at the
positions that predict each completion token. Rows of a GRPO group share their prompt: it runs once
(``prompt_prefix``) and its keys/values feed every row, as the ``fast`` engine decodes. On CPU the
completions may run packed end to end (``r1zero.cpu.packed_outputs``); anywhere else they run padded
over a KV cache. ``sequence_logprobs`` turns them into the per-token log-probs the loss needs: from the
full logits when they are small, else from the final hidden states with the LM head run over chunks of
positions (``r1zero.train.logprobs``), so a 152k vocabulary never materialises ``[b, T, V]`` logits.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import torch

from r1zero import cpu
from r1zero.algo.batch import PackedBatch, PromptPrefix, prefix_rows
from r1zero.train import logprobs
from r1zero.train.sharding import is_sharded

__all__ = [
    "cache_keyword",
    "completion_outputs",
    "drops_cache",
    "frozen_logprobs",
    "frozen_per_token",
    "prompt_prefix",
    "sequence_logprobs",
]

#: the output key the chunked log-probs ask for: the final hidden states (after the last norm)
_HIDDEN = "hidden"


def cache_keyword(model: torch.nn.Module) -> str | None:
    """The name of ``model.forward``'s KV-cache argument, or None when it takes none.

    ``transformers`` 5.24 renamed ``past_key_values`` to ``cache`` (the old name is a deprecated alias).

    >>> class Old(torch.nn.Module):
    ...     def forward(self, input_ids, past_key_values=None): ...
    >>> cache_keyword(Old()), cache_keyword(torch.nn.Linear(1, 1))
    ('past_key_values', None)
    """
    parameters = _forward_parameters(model)
    return next((name for name in ("cache", "past_key_values") if name in parameters), None)


def _forward_parameters(model: torch.nn.Module) -> Mapping[str, inspect.Parameter]:
    """The parameters of ``model``'s forward, seen through a PEFT wrapper (whose forward takes
    ``**kwargs`` and hands them to the wrapped model's)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inspect.signature(base.forward).parameters


def drops_cache(model: torch.nn.Module) -> bool:
    """Whether ``model``'s forward would discard a KV cache: a layer has activation checkpointing on
    (transformers' ``gradient_checkpointing`` flag, also under LoRA wrappers), the model is in training
    mode and gradients are enabled.

    >>> drops_cache(torch.nn.Linear(1, 1))
    False
    """
    checkpointing = any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())
    return checkpointing and model.training and torch.is_grad_enabled()


def _forward(model: torch.nn.Module, key: str, last_logits: bool = False, **inputs: object) -> torch.Tensor:
    """``model(**inputs)``'s output ``key``; ``_HIDDEN`` gives the final hidden states.

    ``last_logits`` (implied by ``_HIDDEN``) computes the logits of the last position only, where the
    forward takes ``logits_to_keep``. The hidden states come out of the model's own forward (not its
    decoder called apart), so a wrapper around the whole model (FSDP, LoRA) sees an ordinary call.
    """
    if (last_logits or key == _HIDDEN) and "logits_to_keep" in _forward_parameters(model):
        inputs["logits_to_keep"] = 1
    if key == _HIDDEN:
        return model(**inputs, output_hidden_states=True).hidden_states[-1]  # [b, t, H]
    return model(**inputs)[key]


def prompt_prefix(
    model: torch.nn.Module, batch: PackedBatch, key: str = "logits", detach: bool = False
) -> PromptPrefix | None:
    """Run ``batch``'s distinct prompts once; None when no prompt repeats or ``model`` cannot share them.

    ``detach=True`` makes leaves that accumulate the gradient of several micro-batches (call
    ``PromptPrefix.backward`` after the last one), so a step's prompts run forward and backward once
    however the rows are split. Under activation checkpointing (training mode, gradients on) transformers'
    layers drop any KV cache, so every row runs its own prompt instead (None). So it does for a sharded
    (FSDP2) model: its ranks must make the same calls, and whether a rank's prompts repeat is its own.
    """
    cache_arg = cache_keyword(model)
    if cache_arg is None or drops_cache(model) or is_sharded(model):
        return None
    from transformers import DynamicCache

    p = batch.prompt_width
    prompts = torch.cat([batch.input_ids[:, :p], batch.attention_mask[:, :p]], dim=1)  # [b, 2P]
    unique, inverse = torch.unique(prompts, dim=0, return_inverse=True)  # [U, 2P], [b]
    if unique.shape[0] == prompts.shape[0]:
        return None
    ids, mask = unique[:, :p], unique[:, p:]  # [U, P]
    config = getattr(model, "config", None)
    cache = DynamicCache(config=config)
    out = _forward(
        model,
        key,
        last_logits=True,
        input_ids=ids,
        attention_mask=mask,
        position_ids=(mask.cumsum(dim=1) - 1).clamp(min=0),
        use_cache=True,
        **{cache_arg: cache},
    )
    graph = (out[:, -1], *(t for layer in cache.layers for t in (layer.keys, layer.values)))
    leaves = tuple(t.detach().requires_grad_(t.requires_grad) for t in graph) if detach else graph
    return PromptPrefix(mask, inverse, graph, leaves, config, cache_arg)


def completion_outputs(
    model: torch.nn.Module, batch: PackedBatch, key: str, prefix: PromptPrefix | None = None
) -> torch.Tensor:
    """``model``'s per-position output ``key`` at the positions that predict each completion token.

    Position ``P - 1 + t`` sees the prompt and the first ``t`` completion tokens: its logits predict token
    ``t`` and, for a critic, its value is ``V(s_t)``. Positions count real tokens only (left padding does
    not shift RoPE positions), so values match what the rollout engine computed for the same weights.
    When rows share a prompt (a GRPO group), each distinct prompt runs once (``prompt_prefix``, or the
    given ``prefix`` of the whole batch) and its keys/values feed every row of the group, as the ``fast``
    engine decodes: a step of ``n`` prompts x ``G`` rows computes ``n`` prompts instead of ``n G``. The
    result is the same up to float rounding. Returns ``[b, T, ...]``.
    """
    prefix = prefix if prefix is not None else prompt_prefix(model, batch, key)
    if prefix is not None and (out := cpu.packed_outputs(model, batch, key, prefix)) is not None:
        return out
    if prefix is None:
        return _padded_outputs(model, batch, key)
    first = prefix.leaves[0][prefix.index]  # [b, ...] predicts completion token 0
    if batch.input_ids.shape[1] == batch.prompt_width + 1:  # one completion column: nothing more to run
        return first[:, None]
    return torch.cat([first[:, None], _cached_outputs(model, batch, key, prefix)], dim=1)  # [b, T, ...]


def _padded_outputs(model: torch.nn.Module, batch: PackedBatch, key: str) -> torch.Tensor:
    """Output ``key`` at the completion positions ``[b, T, ...]``, every row its own prompt (no prefix)."""
    positions = (batch.attention_mask.cumsum(dim=1) - 1).clamp(min=0)  # [b, P+T]
    out = _forward(
        model, key, input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=positions
    )  # [b, P+T, ...]
    return out[:, batch.prompt_width - 1 : -1]  # [b, T, ...]


def _cached_outputs(
    model: torch.nn.Module, batch: PackedBatch, key: str, prefix: PromptPrefix
) -> torch.Tensor:
    """Output ``key`` at completion positions ``1..T-1`` ``[b, T-1, ...]``, padded rows over the prompts'
    keys/values in ``prefix`` (position 0 is the prefix's own output)."""
    from transformers import DynamicCache

    rows, p = prefix.index, batch.prompt_width
    cache = DynamicCache(config=prefix.config)
    keys, values = prefix.leaves[1::2], prefix.leaves[2::2]
    for layer, (k, v) in enumerate(zip(keys, values, strict=True)):
        cache.update(k[rows], v[rows], layer)  # [b, Hkv, P, Dh]: each row's prompt
    mask = torch.cat([prefix.mask[rows], batch.attention_mask[:, p:-1]], dim=1)  # [b, P_prefix + T-1]
    positions = (mask.cumsum(dim=1) - 1)[:, prefix.mask.shape[1] :]  # [b, T-1]
    return _forward(
        model,
        key,
        input_ids=batch.input_ids[:, p:-1],
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        **{prefix.cache_arg: cache},
    )  # [b, T-1, ...]


def sequence_logprobs(
    model: torch.nn.Module,
    batch: PackedBatch,
    temperature: float = 1.0,
    with_entropy: logprobs.EntropyMode = False,
    prefix: PromptPrefix | None = None,
    *,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs ``[b, T]`` (and entropies: no grad, or with it for ``with_entropy="grad"``) of the
    completion tokens under ``model``.

    Full logits up to ``logprobs.FULL_LOGITS_MAX_BYTES`` (float32) are computed in one piece; larger ones
    never exist: the model returns its final hidden states and the LM head and log-softmax run over
    chunks of positions, recomputed in the backward (``logprobs.chunked_logprobs``). Same values and
    gradients up to float rounding. With shared prompts, the position predicting token 0 reads
    ``prefix``'s logits (one position per row); the CPU packed path (``r1zero.cpu.packed_outputs``)
    serves only the full logits.

    Args:
        chunk_size: positions per LM-head chunk; None chooses (``logprobs.chunk_positions``).
    """
    targets = batch.input_ids[:, batch.prompt_width :]  # [b, T]
    head = _chunkable_head(model)
    if chunk_size is None and head is not None:
        chunk_size = logprobs.chunk_positions(*targets.shape, head.weight.shape[0])
    if chunk_size is None:
        logits = completion_outputs(model, batch, "logits", prefix)  # [b, T, V]
        return logprobs.token_logprobs(logits, targets, temperature, with_entropy)
    if head is None:
        raise ValueError(
            f"chunk_size={chunk_size} needs a model whose get_output_embeddings() alone gives its logits; "
            f"{type(model).__name__} has none: use chunk_size=None"
        )
    prefix = prefix if prefix is not None else prompt_prefix(model, batch)
    if prefix is None:
        hidden = _padded_outputs(model, batch, _HIDDEN)  # [b, T, H]
        return logprobs.chunked_logprobs(hidden, head, targets, temperature, chunk_size, with_entropy)
    first = prefix.leaves[0][prefix.index][:, None]  # [b, 1, V] the prompt's logits predict token 0
    logp, entropy = logprobs.token_logprobs(first, targets[:, :1], temperature, with_entropy)  # [b, 1]
    if targets.shape[1] == 1:
        return logp, entropy
    hidden = _cached_outputs(model, batch, _HIDDEN, prefix)  # [b, T-1, H]
    rest, rest_entropy = logprobs.chunked_logprobs(
        hidden, head, targets[:, 1:], temperature, chunk_size, with_entropy
    )  # [b, T-1]
    entropy = torch.cat([entropy, rest_entropy], dim=1) if with_entropy else None  # [b, T]
    return torch.cat([logp, rest], dim=1), entropy  # [b, T]


def _chunkable_head(model: torch.nn.Module) -> torch.nn.Module | None:
    """``model``'s LM head when it alone maps the final hidden states to the logits, else None (no
    ``get_output_embeddings``, or a config that rescales or soft-caps the logits after it, as Gemma 2's
    ``final_logit_softcapping``, Cohere's ``logit_scale`` or Granite's ``logits_scaling`` do)."""
    config = getattr(model, "config", None)
    if any(
        getattr(config, name, None) for name in ("final_logit_softcapping", "logit_scale", "logits_scaling")
    ):
        return None
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    return head if isinstance(getattr(head, "weight", None), torch.Tensor) else None


@torch.no_grad()
def frozen_per_token(
    model: torch.nn.Module,
    batch: PackedBatch,
    micro_batch_size: int,
    per_token: Callable[[torch.nn.Module, PackedBatch, PromptPrefix | None], torch.Tensor],
) -> torch.Tensor:
    """``per_token(model, micro_batch, prefix)`` (``[b, t]``) over the whole batch without grad: ``[B, T]``.

    The step's distinct prompts run once (``prompt_prefix``) and serve every micro-batch.
    """
    width = batch.loss_mask.shape[1]
    prefix = prompt_prefix(model, batch)
    parts = []
    for i in range(0, batch.input_ids.shape[0], micro_batch_size):
        rows = slice(i, i + micro_batch_size)
        parts.append(per_token(model, batch.rows(rows), prefix_rows(prefix, rows)))
    return torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1])) for p in parts])  # [B, T]


def frozen_logprobs(
    model: torch.nn.Module, batch: PackedBatch, micro_batch_size: int, temperature: float
) -> torch.Tensor:
    """Log-probs ``[B, T]`` without grad (old policy for mu > 1, or the reference policy)."""
    return frozen_per_token(
        model,
        batch,
        micro_batch_size,
        lambda m, b, prefix: sequence_logprobs(m, b, temperature, prefix=prefix)[0],
    )
