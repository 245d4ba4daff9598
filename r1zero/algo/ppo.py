"""The PPO-with-a-critic maths: token rewards, GAE, the clipped value loss, explained variance.

What GRPO removes, kept here so the two can be compared on the same task. PPO (Schulman et al. 2017)
learns a critic ``V(s_t)`` and uses Generalized Advantage Estimation (Schulman et al. 2016) to turn a
reward given at the end of a completion into one advantage per token. Open-Reasoner-Zero (Hu et al.
2025) runs it with ``lambda = 1``, ``gamma = 1`` and no KL term: then ``A_t = R - V(s_t)``, the final
reward minus the critic's estimate at each token, and the critic is a learned per-token baseline where
GRPO uses the group mean. Every function here is pure; shapes: ``B`` completions, ``T`` completion
tokens (right-padded, ``mask`` 1 on real tokens).
"""

from __future__ import annotations

import torch

__all__ = ["explained_variance", "gae", "terminal_rewards", "value_loss", "whiten"]


def terminal_rewards(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token rewards ``[B, T]``: each completion's reward on its last real token, 0 elsewhere.

    >>> terminal_rewards(torch.tensor([1.0, 2.0]), torch.tensor([[1, 1, 0], [1, 1, 1]]))
    tensor([[0., 1., 0.],
            [0., 0., 2.]])
    """
    mask = mask.to(rewards.dtype)
    last = (mask.cumsum(dim=1) == mask.sum(dim=1, keepdim=True)) & (mask > 0)  # [B, T] the last real token
    return last.to(rewards.dtype) * rewards[:, None]  # [B, T]


def gae(
    token_rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized Advantage Estimation over right-padded completions.

    ``delta_t = r_t + gamma V(s_{t+1}) - V(s_t)`` with ``V = 0`` after the last real token, and
    ``A_t = delta_t + gamma lam A_{t+1}``; returns (critic targets) are ``A_t + V(s_t)``.

    Args:
        token_rewards: ``[B, T]`` rewards per token (``terminal_rewards`` for a verifier's reward).
        values: ``[B, T]`` critic values ``V(s_t)`` of the state before each completion token.
        mask: ``[B, T]`` 1 on real tokens.
        gamma: Discount (1.0 in ORZ: a completion is one episode with a reward at its end).
        lam: GAE lambda (1.0 = Monte-Carlo returns minus the baseline; 0.0 = one-step TD).

    Returns:
        ``(advantages, returns)``, both ``[B, T]`` and 0 on padding.

    >>> adv, ret = gae(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.25]]), torch.ones(1, 2), 1.0, 1.0)
    >>> adv, ret
    (tensor([[0.5000, 0.7500]]), tensor([[1., 1.]]))
    """
    mask = mask.to(values.dtype)
    values = values * mask  # [B, T]
    advantages = torch.zeros_like(values)  # [B, T]
    running = torch.zeros_like(values[:, 0])  # [B]
    for t in reversed(range(values.shape[1])):
        next_value = values[:, t + 1] if t + 1 < values.shape[1] else torch.zeros_like(running)  # [B]
        delta = token_rewards[:, t] + gamma * next_value - values[:, t]  # [B]
        running = (delta + gamma * lam * running) * mask[:, t]  # padding resets the recursion
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


def whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero-mean, unit-variance over the masked entries (PPO's advantage normalisation); 0 on padding.

    >>> whiten(torch.tensor([[1.0, 3.0, 9.0]]), torch.tensor([[1, 1, 0]]))
    tensor([[-0.7071,  0.7071,  0.0000]])
    """
    mask = mask.to(values.dtype)
    count = mask.sum().clamp(min=1.0)
    mean = (values * mask).sum() / count
    var = (((values - mean) * mask) ** 2).sum() / (count - 1).clamp(min=1.0)
    return (values - mean) * torch.rsqrt(var + eps) * mask


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
    num_tokens: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped value loss ``0.5 max((V - R)^2, (V_old + clip(V - V_old, +-c) - R)^2)``, token mean.

    The clip keeps the critic near the values the advantages were computed with (PPO2 / OpenAI
    baselines); ``clip = 0`` turns it off. ``num_tokens`` is the whole batch's token count, so summing the
    loss over micro-batches gives the batch's token mean.

    >>> loss, stats = value_loss(torch.tensor([[2.0]]), torch.tensor([[0.0]]), torch.tensor([[1.5]]),
    ...                          torch.ones(1, 1), clip=0.5)
    >>> float(loss), stats["clip_frac"]
    (0.5, 1.0)
    """
    mask = mask.to(values.dtype)
    unclipped = (values - returns) ** 2  # [b, T]
    if clip > 0:
        clipped_values = old_values + (values - old_values).clamp(-clip, clip)  # [b, T]
        per_token = torch.maximum(unclipped, (clipped_values - returns) ** 2)  # [b, T]
        clipped = ((clipped_values - returns) ** 2 > unclipped).to(values.dtype)  # [b, T]
    else:
        per_token, clipped = unclipped, torch.zeros_like(unclipped)
    denominator = num_tokens if num_tokens is not None else mask.sum().clamp(min=1.0)
    loss = 0.5 * (per_token * mask).sum() / denominator
    count = mask.sum().clamp(min=1.0)
    return loss, {"clip_frac": float((clipped * mask).sum() / count)}


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """``1 - Var(R - V) / Var(R)`` over masked tokens: 1 is a perfect critic, 0 no better than a constant.

    >>> explained_variance(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.ones(1, 2))
    1.0
    """
    mask = mask.to(values.dtype).bool()
    r, v = returns[mask], values[mask]
    var = r.var(unbiased=False) if r.numel() > 1 else torch.tensor(0.0)
    if float(var) == 0.0:
        return float("nan")
    return float(1.0 - (r - v).var(unbiased=False) / var)
