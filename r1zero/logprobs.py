"""Learner log-probs and entropy of completion tokens, without the full ``[B, T, V]`` log-softmax.

With a 150k vocabulary a naive ``model(ids).logits.float().log_softmax(-1)`` holds several
``B x T x 150k`` float32 tensors at once (gigabytes for a few sequences). Here the decoder runs in
micro-batches, and the LM head + log-softmax run on time chunks of ``chunk`` positions; with gradients
enabled each chunk is recomputed in the backward pass (``torch.utils.checkpoint``), so only hidden states
are kept. ``bench/rollout.py`` measures the peak-memory difference.

Log-probs are of the temperature-scaled distribution ``softmax(logits / T)``, matching what the rollout
engines return (``r1zero.rollout.base``), so their ratio is the importance-sampling correction.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

__all__ = ["completion_logprobs", "naive_completion_logprobs", "token_logprobs_and_entropy"]


def token_logprobs_and_entropy(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of ``targets`` and entropy of ``softmax(logits / T)``, in float32.

    Args:
        logits: ``[..., V]``; targets: ``[...]`` token ids.

    Returns:
        ``(logprobs [...], entropy [...])``.

    >>> lp, ent = token_logprobs_and_entropy(torch.zeros(1, 4), torch.tensor([2]))
    >>> round(lp.item(), 4), round(ent.item(), 4)
    (-1.3863, 1.3863)
    """
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)  # [..., V]
    picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return picked, entropy


def completion_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    micro_batch: int = 8,
    chunk: int = 64,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs and entropy of the completion tokens of ``input_ids``.

    Args:
        model: a Hugging Face ``*ForCausalLM`` (exposes ``get_decoder()`` and ``get_output_embeddings()``).
        input_ids: ``[B, T]`` prompt + completion (any padding).
        attention_mask: ``[B, T]`` 1 for real tokens.
        completion_mask: ``[B, T]`` 1 where the token is a completion token to score.
        micro_batch: sequences per decoder forward.
        chunk: positions per LM-head/log-softmax chunk (peak extra memory ~ ``micro_batch x chunk x V``).
        temperature: score ``softmax(logits / T)`` (the rollout temperature).

    Returns:
        ``(logprobs [B, T], entropy [B, T])``: entry ``t`` scores token ``input_ids[:, t]`` given the
        tokens before it; zero where ``completion_mask`` is 0. Differentiable w.r.t. the model.
    """
    if input_ids.shape != attention_mask.shape or input_ids.shape != completion_mask.shape:
        raise ValueError(
            f"input_ids {tuple(input_ids.shape)}, attention_mask {tuple(attention_mask.shape)} and "
            f"completion_mask {tuple(completion_mask.shape)} must have the same [B, T] shape"
        )
    if micro_batch < 1 or chunk < 1:
        raise ValueError(f"micro_batch={micro_batch} and chunk={chunk} must be >= 1")
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    logprob_parts, entropy_parts = [], []
    for start in range(0, input_ids.size(0), micro_batch):
        ids = input_ids[start : start + micro_batch]  # [b, T]
        mask = attention_mask[start : start + micro_batch]
        position_ids = (mask.long().cumsum(1) - 1).clamp(min=0)  # left padding, as generate does
        hidden = decoder(input_ids=ids, attention_mask=mask, position_ids=position_ids).last_hidden_state
        lp, ent = _chunked_head(head, hidden[:, :-1], ids[:, 1:], chunk, temperature)  # [b, T-1]
        logprob_parts.append(lp)
        entropy_parts.append(ent)
    logprobs = torch.cat(logprob_parts)  # [B, T-1]
    entropy = torch.cat(entropy_parts)
    zero = logprobs.new_zeros(input_ids.size(0), 1)
    keep = completion_mask.bool()
    logprobs = torch.cat([zero, logprobs], dim=1).masked_fill(~keep, 0.0)  # [B, T]
    entropy = torch.cat([zero, entropy], dim=1).masked_fill(~keep, 0.0)
    return logprobs, entropy


def _chunked_head(
    head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, chunk: int, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """LM head + log-softmax over time chunks of ``hidden [b, T, d]``; returns ``[b, T]`` twice."""

    def score(h: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return token_logprobs_and_entropy(head(h), y, temperature)  # logits [b, chunk, V] live only here

    parts = []
    for t0 in range(0, hidden.size(1), chunk):
        h, y = hidden[:, t0 : t0 + chunk], targets[:, t0 : t0 + chunk]
        if torch.is_grad_enabled() and h.requires_grad:
            parts.append(checkpoint(score, h, y, use_reentrant=False))
        else:
            parts.append(score(h, y))
    return torch.cat([p[0] for p in parts], dim=1), torch.cat([p[1] for p in parts], dim=1)


def naive_completion_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference computation: one forward, the full ``[B, T, V]`` log-softmax. For tests and benches."""
    position_ids = (attention_mask.long().cumsum(1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    lp, ent = token_logprobs_and_entropy(logits[:, :-1], input_ids[:, 1:], temperature)  # [B, T-1]
    zero = lp.new_zeros(input_ids.size(0), 1)
    keep = completion_mask.bool()
    return torch.cat([zero, lp], 1).masked_fill(~keep, 0.0), torch.cat([zero, ent], 1).masked_fill(~keep, 0.0)
