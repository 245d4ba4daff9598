"""Rollout/learner mismatch correction: importance weights for samples drawn by another engine.

A rollout engine (vLLM in bf16, a fast sampler) and the learner compute slightly different probabilities
for the same tokens, so the samples are off-policy for the learner. The correction multiplies each
token's loss by a detached weight built from the ratio ``rho = pi_learner / pi_rollout``:

============================  ====================================================================
mode                          weight of token t of sequence i
============================  ====================================================================
``none``                      1
``token_truncate``            ``clamp(rho_t, low, threshold)`` (TIS, Yao et al. 2025)
``token_mask``                ``rho_t`` inside ``[low, threshold]``, else 0 (OpenRLHF "icepop")
``sequence_truncate``         ``clamp(rho_i, low, threshold)``, ``rho_i = exp(sum_t log rho_t)``
``sequence_mask``             ``rho_i`` inside ``[low, threshold]``, else 0 for the whole sequence
============================  ====================================================================

The mode names, the defaults (threshold 3.0, no lower bound) and the sequence ratio follow TRL's
``vllm_importance_sampling_mode`` (``GRPOTrainer``): the sequence ratio is the *product* of the token
ratios, ``exp`` of the summed log-ratio, as in verl's ``rollout_is="sequence"``; it is not the
geometric mean (``exp`` of the mean log-ratio) that OpenRLHF's ``seq-mask-tis`` and verl's
``rollout_rs="geometric"`` use, so a long sequence drifts further from 1 than a short one. verl's
``algorithm.rollout_correction`` defaults to a threshold of 2.0 and OpenRLHF to the band [0.5, 5.0].

Outside ``loss_mask`` the log-ratio is taken as 0 (ratio 1), so padding never moves a sequence ratio;
a rollout log-prob that is NaN (the engine did not score the token) also counts as ratio 1, as in TRL.
The weights multiply the per-token loss; a masked token keeps its place in the loss's denominator.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

__all__ = ["MODES", "Mode", "rollout_correction"]

Mode = Literal["none", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask"]
#: mode -> what it does (``--algo.rollout_correction``)
MODES: dict[str, str] = {
    "none": "weights of 1; the mismatch is still measured",
    "token_truncate": "per-token ratio clipped to [low, threshold] (TIS)",
    "token_mask": "per-token ratio, 0 where it leaves [low, threshold] (icepop)",
    "sequence_truncate": "one ratio per sequence (product of its tokens'), clipped to [low, threshold]",
    "sequence_mask": "one ratio per sequence (product of its tokens'), 0 when it leaves [low, threshold]",
}
#: cap on the log-ratio reported as ``mismatch/ratio_max`` (exp(20) ~ 4.9e8; verl's safety bound)
_LOG_RATIO_BOUND = 20.0


def rollout_correction(
    learner_logp: torch.Tensor,
    rollout_logp: torch.Tensor,
    loss_mask: torch.Tensor,
    mode: Mode | str = "token_truncate",
    threshold: float = 3.0,
    *,
    threshold_low: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Importance weights correcting for the rollout engine, and the size of the mismatch.

    Args:
        learner_logp: the learner's log-probs of the sampled tokens (its recompute of the old policy),
            ``[B, T]``.
        rollout_logp: the rollout engine's log-probs of the same tokens, ``[B, T]``.
        loss_mask: 1 where a token counts in the loss, ``[B, T]``.
        mode: one of ``MODES``.
        threshold: upper bound of the ratio (clip or mask), > 0.
        threshold_low: lower bound (None: none, as TRL; verl uses ``1 / threshold`` for masking).

    Returns:
        ``(weights, stats)``: ``weights`` ``[B, T]`` without grad, to multiply the per-token loss;
        ``stats`` (floats, over tokens of ``loss_mask``): ``mismatch/logp_diff_mean`` and
        ``mismatch/logp_diff_max`` (|learner - rollout| log-prob), ``mismatch/ratio_max`` (largest ratio
        of the mode's level, token or sequence, before clip or mask), ``mismatch/truncated_fraction``
        and ``mismatch/masked_fraction`` (tokens whose weight was clipped or zeroed),
        ``mismatch/weight_mean``.

    >>> learner = torch.log(torch.tensor([[0.5, 0.9], [0.4, 0.2]]))
    >>> rollout = torch.log(torch.tensor([[0.1, 0.9], [0.4, 0.4]]))
    >>> mask = torch.ones(2, 2)
    >>> rollout_correction(learner, rollout, mask, "token_truncate", 3.0)[0]
    tensor([[3.0000, 1.0000],
            [1.0000, 0.5000]])
    >>> w, stats = rollout_correction(learner, rollout, mask, "sequence_mask", 3.0)
    >>> w, stats["mismatch/masked_fraction"]
    (tensor([[0.0000, 0.0000],
            [0.5000, 0.5000]]), 0.5)
    """
    if mode not in MODES:
        raise ValueError(f"unknown rollout correction mode {mode!r}; valid: {', '.join(MODES)}")
    if not threshold > 0:
        raise ValueError(f"rollout correction threshold must be > 0; got {threshold!r}")
    if threshold_low is not None and not 0 <= threshold_low < threshold:
        raise ValueError(f"threshold_low must be in [0, threshold={threshold}); got {threshold_low!r}")
    if not learner_logp.shape == rollout_logp.shape == loss_mask.shape:
        raise ValueError(
            "learner_logp, rollout_logp and loss_mask must have one shape; got "
            f"{tuple(learner_logp.shape)}, {tuple(rollout_logp.shape)}, {tuple(loss_mask.shape)}"
        )
    learner_logp, rollout_logp = learner_logp.detach().float(), rollout_logp.detach().float()
    counted = loss_mask.bool()  # [B, T]
    diff = torch.nan_to_num(learner_logp - rollout_logp, nan=0.0) * counted  # [B, T] log rho_t
    sequence = diff.sum(dim=-1, keepdim=True).expand_as(diff)  # [B, T] log rho_i on every token
    log_ratio = sequence if mode.startswith("sequence") else diff  # [B, T]
    ratio = torch.exp(log_ratio)  # [B, T]
    low = -math.inf if threshold_low is None else threshold_low
    outside = (ratio > threshold) | (ratio < low)  # [B, T]
    if mode == "none":
        weights = torch.ones_like(ratio)
    elif mode.endswith("truncate"):
        weights = ratio.clamp(min=threshold_low, max=threshold)
    else:
        weights = ratio.masked_fill(outside, 0.0)
    stats = _mismatch_stats(learner_logp - rollout_logp, log_ratio, weights, counted, outside, mode)
    return weights.detach(), stats


def _mismatch_stats(
    diff: torch.Tensor,
    log_ratio: torch.Tensor,
    weights: torch.Tensor,
    counted: torch.Tensor,
    outside: torch.Tensor,
    mode: str,
) -> dict[str, float]:
    """The ``mismatch/*`` floats of ``rollout_correction`` (NaN differences left out; 0 with no tokens)."""
    scored = counted & ~torch.isnan(diff)  # [B, T]
    delta = diff.abs()[scored]  # [n]
    tokens = max(int(counted.sum()), 1)
    hit = (outside & counted).sum().item() / tokens
    largest = log_ratio[counted].max().clamp(max=_LOG_RATIO_BOUND).exp().item() if counted.any() else 0.0
    return {
        "mismatch/logp_diff_mean": delta.mean().item() if delta.numel() else 0.0,
        "mismatch/logp_diff_max": delta.max().item() if delta.numel() else 0.0,
        "mismatch/ratio_max": largest,
        "mismatch/truncated_fraction": hit if mode.endswith("truncate") else 0.0,
        "mismatch/masked_fraction": hit if mode.endswith("mask") else 0.0,
        "mismatch/weight_mean": weights[counted].mean().item() if counted.any() else 0.0,
    }
