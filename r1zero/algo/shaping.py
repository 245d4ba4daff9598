"""Reward shaping and reward controls as pure functions: Kimi-1.5 length reward, truncation masking,
and the random-reward and format-only controls.

The controls answer "does the gain come from the verifier?": a run whose reward is a coin flip (with
the step-0 accuracy as its probability), or only the format check, trained with the same budget. On
Qwen2.5-Math-7B random rewards alone lift MATH-500 by ~21 points (Shao et al. 2025, "Spurious Rewards:
Rethinking Training Signals in RLVR", arXiv 2506.10947), so a gain below that control's is not evidence
that the verifier taught anything.
"""

from __future__ import annotations

import torch

from r1zero.algo.grpo import overlong_filter_mask

__all__ = ["format_only_rewards", "kimi_length_reward", "mask_truncated", "random_rewards"]


def kimi_length_reward(lengths: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    """Kimi-1.5's length reward, per group: shorter than the group's average gains, longer loses.

    ``lambda_i = 0.5 - (len_i - min_len) / (max_len - min_len)`` over the group's completions; a correct
    completion gets ``lambda_i``, a wrong one ``min(0, lambda_i)`` (no reward for being short and wrong).
    A group whose lengths are all equal gets 0 (Kimi k1.5's length penalty, Kimi Team 2025, arXiv 2501.12599).
    Added to the accuracy reward with a small weight. Peers: open-r1 ``len_reward`` (which takes min and
    max over the whole batch it is given rather than per prompt).

    Args:
        lengths: ``[N, G]`` completion lengths in tokens.
        correct: ``[N, G]`` whether each completion is correct.

    Returns:
        ``[N, G]`` rewards in ``[-0.5, 0.5]``.

    >>> kimi_length_reward(torch.tensor([[10, 20, 30]]), torch.tensor([[True, True, False]]))
    tensor([[ 0.5000,  0.0000, -0.5000]])
    """
    lengths = lengths.to(torch.float32)
    shortest = lengths.min(dim=1, keepdim=True).values  # [N, 1]
    spread = lengths.max(dim=1, keepdim=True).values - shortest  # [N, 1]
    lam = 0.5 - (lengths - shortest) / spread.clamp(min=1e-12)  # [N, G]
    reward = torch.where(correct.bool(), lam, lam.clamp(max=0.0))  # [N, G]
    return torch.where(spread > 0, reward, torch.zeros_like(reward))


def mask_truncated(mask: torch.Tensor, truncated: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Drop truncated completions from the loss; also return the share of completions dropped.

    A completion cut at the token limit has no answer, so its reward says nothing about its reasoning
    (DAPO's overlong filtering, arXiv 2503.14476). Peers: TRL ``mask_truncated_completions=True``.

    Returns:
        ``(mask [B, T], share)``: the loss mask with truncated rows zeroed, and the fraction of the
        ``B`` completions that were truncated (log it: a high share means ``max_new_tokens`` is too small).

    >>> mask_truncated(torch.ones(2, 2), torch.tensor([False, True]))
    (tensor([[1., 1.],
            [0., 0.]]), 0.5)
    """
    share = truncated.to(torch.float32).mean().item() if truncated.numel() else 0.0
    return overlong_filter_mask(mask, truncated), share


def random_rewards(shape: tuple[int, ...], p: float, *, seed: int, step: int) -> torch.Tensor:
    """Bernoulli(``p``) rewards in {0, 1}, a pure function of ``(seed, step)`` (the same on resume).

    The random-reward control: set ``p`` to the verifier's step-0 accuracy, so the reward rate matches
    the real run's start but carries no information about the completion.

    >>> random_rewards((2, 3), 0.5, seed=0, step=1).shape
    torch.Size([2, 3])
    >>> random_rewards((4,), 0.0, seed=0, step=0)
    tensor([0., 0., 0., 0.])
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"random reward probability must be in [0, 1]; got {p!r}")
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return (torch.rand(shape, generator=generator) < p).to(torch.float32)


def format_only_rewards(formatted: torch.Tensor) -> torch.Tensor:
    """The format-only control: reward 1 where the completion keeps the format, 0 elsewhere.

    ``formatted`` is each verdict's ``formatted`` flag; correctness is ignored, so any gain in accuracy
    over the base model comes from the format (or from training at all), not from the verifier.

    >>> format_only_rewards(torch.tensor([True, False]))
    tensor([1., 0.])
    """
    return formatted.bool().to(torch.float32)
