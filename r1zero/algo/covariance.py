"""Entropy control by covariance: Clip-Cov and KL-Cov (Cui et al. 2025, arXiv 2505.22617).

The paper shows that policy entropy falls, step by step, by the covariance between a token's
log-probability and its advantage: confident tokens with high advantage (and unlikely ones with low
advantage) are what collapse entropy. So act only on the few tokens with the largest
``cov_t = (A_t - mean(A)) * (log pi_t - mean(log pi))`` (means over the batch's loss tokens):

- **Clip-Cov** detaches the gradient of a random ``clip_cov_ratio`` share of tokens whose covariance
  lies in ``(clip_cov_lb, clip_cov_ub)`` (on top of PPO's clip).
- **KL-Cov** adds ``kl_cov_coef * |log pi - log pi_old|`` to the loss of the top ``kl_cov_ratio`` share
  of tokens by covariance (and drops PPO's clip).

Same call shape as ``grpo.grpo_loss``; peers' names: verl ``policy_loss.loss_mode=clip_cov|kl_cov``
with ``clip_cov_ratio`` (2e-4), ``clip_cov_lb`` (1.0), ``clip_cov_ub`` (5.0), ``kl_cov_ratio`` (2e-4),
``ppo_kl_coef`` (0.1).
"""

from __future__ import annotations

import torch

from r1zero.algo.grpo import clip_fractions, masked_mean
from r1zero.algo.losses import aggregate_with_kl

__all__ = ["clip_cov_loss", "kl_cov_loss", "token_covariance"]


def token_covariance(logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token ``(A_t - mean A) * (log pi_t - mean log pi)`` with means over the loss tokens (no grad).

    >>> token_covariance(torch.tensor([[-1.0, -3.0]]), torch.tensor([[1.0, -1.0]]), torch.ones(1, 2))
    tensor([[1., 1.]])
    """
    logp = logp.detach()
    advantages = advantages.expand_as(logp)  # [B, T]
    return (advantages - masked_mean(advantages, mask)) * (logp - masked_mean(logp, mask))  # [B, T]


def clip_cov_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    clip_cov_ratio: float = 2e-4,
    clip_cov_lb: float = 1.0,
    clip_cov_ub: float = 5.0,
    generator: torch.Generator | None = None,
    **common,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped surrogate with the gradient of ``max(1, int(clip_cov_ratio * tokens))`` tokens detached.

    The detached tokens are drawn uniformly (``torch.randperm`` with ``generator``; the global generator
    when ``None``, as verl does) from the loss tokens that PPO's clip left active and whose covariance is
    strictly between ``clip_cov_lb`` and ``clip_cov_ub``. Their loss is multiplied by 0.

    Returns:
        ``(loss, stats)``; ``stats``: ``policy``, ``kl``, ``clip_low``, ``clip_high`` (PPO's clip),
        ``cov_clip`` (fraction of loss tokens detached).

    >>> logp = torch.tensor([[-1.0, -3.0, -2.0, -2.0]])
    >>> adv = torch.tensor([[2.0, -2.0, 0.0, 0.0]])  # covariances 2, 2, 0, 0: two candidates, one drawn
    >>> _, stats = clip_cov_loss(logp, logp, adv, torch.ones(1, 4), clip_cov_ratio=0.25)
    >>> stats["cov_clip"]
    0.25
    """
    if not 0 < clip_cov_ratio <= 1:
        raise ValueError(f"clip_cov_ratio must be in (0, 1]; got {clip_cov_ratio!r}")
    if advantages.dim() == 1:
        advantages = advantages[:, None]  # [B, 1]
    ratio = torch.exp(logp - old_logp)  # [B, T]
    unclipped, clipped = -advantages * ratio, -advantages * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    clip_active = clipped.detach() > unclipped.detach()  # [B, T]
    cov = token_covariance(logp, advantages, mask)  # [B, T]
    candidates = (cov > clip_cov_lb) & (cov < clip_cov_ub) & mask.bool() & ~clip_active  # [B, T]
    where = torch.nonzero(candidates)  # [K, 2]
    keep = torch.ones_like(ratio)  # [B, T]
    if len(where) > 0:
        count = max(int(clip_cov_ratio * mask.sum().item()), 1)
        chosen = where[torch.randperm(len(where), generator=generator)[:count]]  # [k, 2]
        keep[chosen[:, 0], chosen[:, 1]] = 0.0
    token_loss = torch.maximum(unclipped, clipped) * keep  # [B, T]
    loss, stats = aggregate_with_kl(token_loss, logp, mask, **common)
    low, high = clip_fractions(ratio.detach(), advantages, mask, eps_low, eps_high)
    stats.update(clip_low=low.item(), clip_high=high.item(), cov_clip=masked_mean(1.0 - keep, mask).item())
    return loss, stats


def kl_cov_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    kl_cov_ratio: float = 2e-4,
    kl_cov_coef: float = 0.1,
    **common,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Unclipped ``-rho A``, plus ``kl_cov_coef * |log rho|`` on the top-covariance tokens.

    The top ``max(1, int(kl_cov_ratio * tokens))`` loss tokens by ``token_covariance`` (ties broken by
    ``torch.topk``) get the penalty; no ratio clipping anywhere.

    Returns:
        ``(loss, stats)``; ``stats``: ``policy``, ``kl``, ``kl_cov`` (fraction of loss tokens penalised).

    >>> logp = torch.tensor([[-1.0, -2.0]])
    >>> loss, stats = kl_cov_loss(logp, logp - 0.5, torch.tensor([[1.0, -1.0]]), torch.ones(1, 2),
    ...                           kl_cov_ratio=0.5, kl_cov_coef=1.0)
    >>> round(loss.item(), 4), stats["kl_cov"]  # covariances 0.5 both: topk picks one, + 0.5 / 2
    (0.25, 0.5)
    """
    if not 0 < kl_cov_ratio <= 1:
        raise ValueError(f"kl_cov_ratio must be in (0, 1]; got {kl_cov_ratio!r}")
    if advantages.dim() == 1:
        advantages = advantages[:, None]  # [B, 1]
    log_ratio = logp - old_logp  # [B, T]
    token_loss = -advantages * torch.exp(log_ratio)  # [B, T]
    valid = mask.bool()  # [B, T]
    selected = torch.zeros_like(valid)  # [B, T]
    count = int(valid.sum().item())
    if count > 0:
        cov = token_covariance(logp, advantages, mask)[valid]  # [count] row-major over loss tokens
        top = torch.topk(cov, max(1, int(count * kl_cov_ratio)), largest=True).indices  # [k]
        flat = torch.nonzero(valid.reshape(-1), as_tuple=True)[0][top]  # [k] indices into B*T
        selected.view(-1)[flat] = True
    token_loss = token_loss + torch.where(selected, kl_cov_coef * log_ratio.abs(), 0.0)  # [B, T]
    loss, stats = aggregate_with_kl(token_loss, logp, mask, **common)
    stats["kl_cov"] = masked_mean(selected.to(logp.dtype), mask).item()
    return loss, stats
