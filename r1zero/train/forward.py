"""The learner's forward pass over a step's rows: each distinct prompt once, then every row's completion.

``completion_outputs`` gives a model's per-position output (logits, or a critic's values) at the
positions that predict each completion token. Rows of a GRPO group share their prompt: it runs once
(``prompt_prefix``) and its keys/values feed every row, as the ``fast`` engine decodes. On CPU the
completions may run packed end to end (``r1zero.cpu.packed_outputs``); anywhere else they run padded
over a KV cache. ``sequence_logprobs`` turns logits into the per-token log-probs the loss needs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import torch

from r1zero import cpu
from r1zero.algo.batch import PackedBatch, PromptPrefix, prefix_rows
from r1zero.algo.grpo import entropy_from_logp

__all__ = [
    "cache_keyword",
    "completion_outputs",
    "drops_cache",
    "frozen_logprobs",
    "frozen_per_token",
    "prompt_prefix",
    "sequence_logprobs",
]


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


def prompt_prefix(
    model: torch.nn.Module, batch: PackedBatch, key: str = "logits", detach: bool = False
) -> PromptPrefix | None:
    """Run ``batch``'s distinct prompts once; None when no prompt repeats or ``model`` cannot share them.

    ``detach=True`` makes leaves that accumulate the gradient of several micro-batches (call
    ``PromptPrefix.backward`` after the last one), so a step's prompts run forward and backward once
    however the rows are split. Under activation checkpointing (training mode, gradients on) transformers'
    layers drop any KV cache, so every row runs its own prompt instead (None).
    """
    cache_arg = cache_keyword(model)
    if cache_arg is None or drops_cache(model):
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
    head = {"logits_to_keep": 1} if "logits_to_keep" in _forward_parameters(model) else {}
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=(mask.cumsum(dim=1) - 1).clamp(min=0),
        use_cache=True,
        **{cache_arg: cache},
        **head,
    )
    graph = (out[key][:, -1], *(t for layer in cache.layers for t in (layer.keys, layer.values)))
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
        positions = (batch.attention_mask.cumsum(dim=1) - 1).clamp(min=0)  # [b, P+T]
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=positions)
        return out[key][:, batch.prompt_width - 1 : -1]  # [b, T, ...]
    from transformers import DynamicCache

    rows, p = prefix.index, batch.prompt_width
    first = prefix.leaves[0][rows]  # [b, ...] predicts completion token 0
    if batch.input_ids.shape[1] == p + 1:  # one completion column: nothing more to run
        return first[:, None]
    cache = DynamicCache(config=prefix.config)
    keys, values = prefix.leaves[1::2], prefix.leaves[2::2]
    for layer, (k, v) in enumerate(zip(keys, values, strict=True)):
        cache.update(k[rows], v[rows], layer)  # [b, Hkv, P, Dh]: each row's prompt
    mask = torch.cat([prefix.mask[rows], batch.attention_mask[:, p:-1]], dim=1)  # [b, P_prefix + T-1]
    positions = (mask.cumsum(dim=1) - 1)[:, prefix.mask.shape[1] :]  # [b, T-1]
    out = model(
        input_ids=batch.input_ids[:, p:-1],
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        **{prefix.cache_arg: cache},
    )
    return torch.cat([first[:, None], out[key]], dim=1)  # [b, T, ...]


def sequence_logprobs(
    model: torch.nn.Module,
    batch: PackedBatch,
    temperature: float = 1.0,
    with_entropy: bool = False,
    prefix: PromptPrefix | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs ``[b, T]`` (and entropies) of the completion tokens under ``model``."""
    logits = completion_outputs(model, batch, "logits", prefix).float()  # [b, T, V]
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    targets = batch.input_ids[:, batch.prompt_width :]  # [b, T]
    logp = torch.log_softmax(logits, dim=-1)  # [b, T, V]
    token_logp = logp.gather(-1, targets[..., None]).squeeze(-1)  # [b, T]
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = entropy_from_logp(logp)  # [b, T]
    return token_logp, entropy


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
