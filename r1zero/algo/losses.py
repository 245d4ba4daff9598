"""Policy losses that replace or extend GRPO's clipped surrogate: GSPO, CISPO, SAPO, dual-clip, entropy bonus.

Every loss has the call shape of ``grpo.grpo_loss``: ``(logp [B, T], old_logp [B, T], advantages [B],
mask [B, T], *, <its own knobs>, aggregation, max_len, beta, ref_logp, kl_estimator, is_weights,
num_sequences, num_tokens) -> (loss, stats)``, so a learner picks one by name from
``r1zero.algo.dispatch.LOSSES`` and calls it the same way. ``stats`` always holds ``policy`` (the
aggregated policy term) and ``kl`` (token mean, 0 when ``beta = 0``), plus the metric that shows what
the variant does (its clip fraction, gate weight, ...).

The KL term, the importance-sampling weights and the aggregation are the ones of ``grpo``: only the
per-token policy loss differs between variants. The Clip-Cov and KL-Cov losses live in ``covariance``.
"""

from __future__ import annotations

import torch

from r1zero.algo.grpo import Aggregation, aggregate_loss, aggregate_with_kl, clip_fractions, masked_mean

__all__ = [
    "aggregate_with_kl",
    "cispo_loss",
    "dual_clip_loss",
    "entropy_bonus",
    "gspo_loss",
    "sapo_loss",
]


def _per_sequence(advantages: torch.Tensor, name: str) -> torch.Tensor:
    if advantages.dim() != 1:
        raise ValueError(f"{name} needs one advantage per sequence, shape [B]; got {tuple(advantages.shape)}")
    return advantages


def gspo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float = 3e-4,
    eps_high: float = 4e-4,
    **common,
) -> tuple[torch.Tensor, dict[str, float]]:
    """GSPO: one length-normalised importance ratio per sequence, clipped per sequence.

    ``s_i = exp(1/|o_i| sum_t log(pi_theta / pi_old))`` and ``l_i = -min(s_i A_i, clip(s_i, 1 - eps_low,
    1 + eps_high) A_i)``; every token of ``o_i`` carries ``l_i``, so the ``grpo`` aggregation gives the
    paper's ``1/G sum_i l_i`` and ``dapo`` weights sequences by length (verl's ``token-mean``). The ratio
    keeps its gradient through the mean, so a token's gradient is ``s_i A_i / |o_i|`` (equal to verl's
    "GSPO-token" form with sequence advantages). A token-level ratio is noisy for long sequences; the
    sequence ratio matches the unit the reward is given to (Zheng et al. 2025, arXiv 2507.18071).

    Peers: TRL ``importance_sampling_level="sequence"`` (with ``loss_type="grpo"``), verl
    ``policy_loss.loss_mode=gspo``. The clip range is tiny: 3e-4 / 4e-4 in the paper.

    Args:
        advantages: ``[B]``, one per sequence. The other arguments as ``grpo.grpo_loss``.

    Returns:
        ``(loss, stats)``; ``stats``: ``policy``, ``kl``, ``clip_low`` and ``clip_high`` (fractions of
        sequences whose clipped ratio is the one the min picks), ``seq_clip`` (their sum).

    >>> loss, stats = gspo_loss(torch.log(torch.tensor([[1.5, 1.5]])), torch.zeros(1, 2),
    ...                         torch.tensor([1.0]), torch.ones(1, 2), eps_low=0.2, eps_high=0.2)
    >>> round(loss.item(), 4), stats["clip_high"]
    (-1.2, 1.0)
    """
    advantages = _per_sequence(advantages, "gspo")
    maskf = mask.to(logp.dtype)
    lengths = maskf.sum(dim=1).clamp(min=1.0)  # [B]
    ratio = torch.exp(((logp - old_logp) * maskf).sum(dim=1) / lengths)  # [B]
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)  # [B]
    seq_loss = -torch.minimum(ratio * advantages, clipped * advantages)  # [B]
    token_loss = seq_loss[:, None].expand_as(logp)  # [B, T]
    loss, stats = aggregate_with_kl(token_loss, logp, mask, **common)
    present = maskf.sum(dim=1) > 0  # [B]
    low, high = clip_fractions(ratio.detach()[:, None], advantages, present[:, None], eps_low, eps_high)
    stats.update(clip_low=low.item(), clip_high=high.item(), seq_clip=(low + high).item())
    return loss, stats


def cispo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float | None = None,
    eps_high: float = 4.0,
    aggregation: Aggregation = "dapo",
    **common,
) -> tuple[torch.Tensor, dict[str, float]]:
    """CISPO: clip the importance *weight* and stop its gradient; no token's gradient is dropped.

    ``l_t = -sg(clip(rho_t, 1 - eps_low, 1 + eps_high)) * A * log pi_theta(o_t)``: the gradient of every
    token is ``-w_t A grad(log pi)``, also where PPO's clip would have zeroed it (the rare, high-ratio
    "fork" tokens that matter for reflection). The loss value contains ``log pi`` itself, so it is not ~0
    on-policy (MiniMax-M1, arXiv 2506.13585; ScaleRL, arXiv 2510.13786, uses ``1 + eps_high = 5``).

    Peers: TRL ``loss_type="cispo"`` with ``epsilon_high`` = the cap ``1 + eps_high`` (recommended 5.0) and
    no lower bound; verl ``policy_loss.loss_mode=cispo`` with ``clip_ratio_low`` / ``clip_ratio_high`` =
    ``eps_low`` / ``eps_high``. Both aggregate as a token mean (``dapo``), the default here.

    Args:
        eps_low: Lower bound ``1 - eps_low`` of the weight; ``None`` (default) leaves it unbounded below.
        eps_high: Upper bound ``1 + eps_high`` of the weight.

    Returns:
        ``(loss, stats)``; ``stats``: ``policy``, ``kl``, ``clip_low`` / ``clip_high`` (fractions of tokens
        whose weight was clipped below / above, whatever the advantage's sign), ``weight_clip`` (their sum).

    >>> logp = torch.log(torch.tensor([[0.5, 0.5]]))
    >>> loss, stats = cispo_loss(logp, torch.log(torch.tensor([[0.05, 0.5]])), torch.tensor([1.0]),
    ...                          torch.ones(1, 2), eps_high=4.0)
    >>> round(loss.item(), 4), stats["weight_clip"]  # weights 5 (10 clipped) and 1: -(5 + 1) log(0.5) / 2
    (2.0794, 0.5)
    """
    if advantages.dim() == 1:
        advantages = advantages[:, None]  # [B, 1]
    ratio = torch.exp(logp.detach() - old_logp)  # [B, T]
    low_bound = None if eps_low is None else 1.0 - eps_low
    weight = torch.clamp(ratio, min=low_bound, max=1.0 + eps_high)  # [B, T] no grad
    token_loss = -weight * advantages * logp  # [B, T]
    loss, stats = aggregate_with_kl(token_loss, logp, mask, aggregation=aggregation, **common)
    low = masked_mean((ratio < weight).to(ratio.dtype), mask)
    high = masked_mean((ratio > weight).to(ratio.dtype), mask)
    stats.update(clip_low=low.item(), clip_high=high.item(), weight_clip=(low + high).item())
    return loss, stats


def sapo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    tau_pos: float = 1.0,
    tau_neg: float = 1.05,
    **common,
) -> tuple[torch.Tensor, dict[str, float]]:
    """SAPO: a soft sigmoid gate on the ratio in place of the hard clip.

    ``l_t = -(4 / tau) * sigmoid(tau * (rho_t - 1)) * A`` with ``tau = tau_pos`` where ``A > 0`` and
    ``tau_neg`` otherwise. Its gradient is ``-4 s (1 - s) rho A grad(log pi)`` with ``s`` the sigmoid: the
    plain policy gradient at ``rho = 1``, fading smoothly as the ratio leaves 1 instead of dropping to 0
    at a clip boundary; ``tau_neg > tau_pos`` fades negative updates faster (Qwen team 2025, "Soft
    Adaptive Policy Optimization", arXiv 2511.20347).

    Peers: TRL ``loss_type="sapo"`` (``sapo_temperature_pos`` 1.0, ``sapo_temperature_neg`` 1.05), verl
    ``policy_loss.loss_mode=sapo`` (``tau_pos``, ``tau_neg``); both aggregate as ``grpo`` (sequence mean
    of token means), the default here.

    Returns:
        ``(loss, stats)``; ``stats``: ``policy``, ``kl``, ``gate_weight`` (token mean of
        ``4 s (1 - s) rho``, the factor on the plain policy gradient: 1 on-policy, smaller off-policy).

    >>> loss, stats = sapo_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2))
    >>> loss.item(), stats["gate_weight"]  # on-policy: -(4 / 1) * sigmoid(0) * 1 = -2
    (-2.0, 1.0)
    """
    if advantages.dim() == 1:
        advantages = advantages[:, None]  # [B, 1]
    if tau_pos <= 0 or tau_neg <= 0:
        raise ValueError(f"SAPO temperatures must be > 0; got tau_pos={tau_pos!r}, tau_neg={tau_neg!r}")
    ratio = torch.exp(logp - old_logp)  # [B, T]
    tau = torch.where(advantages > 0, tau_pos, tau_neg).to(logp.dtype)  # [B, 1] or [B, T]
    gate = torch.sigmoid(tau * (ratio - 1.0))  # [B, T]
    token_loss = -(4.0 / tau) * gate * advantages  # [B, T]
    loss, stats = aggregate_with_kl(token_loss, logp, mask, **common)
    weight = 4.0 * gate.detach() * (1.0 - gate.detach()) * ratio.detach()  # [B, T]
    stats["gate_weight"] = masked_mean(weight, mask).item()
    return loss, stats


def dual_clip_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    clip_ratio_c: float = 3.0,
    **common,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Dual-clip PPO: the clipped surrogate, and for ``A < 0`` a floor ``-c * A`` on the loss.

    With ``A < 0`` the clipped surrogate ``-min(rho A, clip(rho) A) = -rho A`` grows without bound as
    ``rho`` grows, so one stale token can dominate the batch; dual clip caps it at ``-c A`` (and the
    token then has no gradient). For ``A >= 0`` it is the ordinary clipped surrogate (Ye et al. 2020,
    "Mastering Complex Control in MOBA Games with Deep RL", arXiv 1912.09729).

    Peers: verl's default PPO/GRPO loss (``policy_loss.loss_mode=vanilla``) with ``clip_ratio_c`` (3.0).

    Args:
        clip_ratio_c: The ratio ``c > 1`` above which a negative-advantage token's loss stops growing.

    Returns:
        ``(loss, stats)``; ``stats``: ``policy``, ``kl``, ``clip_low`` and ``clip_high`` (as ``grpo_loss``),
        ``dual_clip`` (fraction of tokens with ``A < 0`` whose loss is capped at ``-c A``).

    >>> loss, stats = dual_clip_loss(torch.log(torch.tensor([[5.0, 1.0]])), torch.zeros(1, 2),
    ...                              torch.tensor([-1.0]), torch.ones(1, 2))
    >>> loss.item(), stats["dual_clip"]  # token losses min(5, 3) = 3 and 1
    (2.0, 0.5)
    """
    if clip_ratio_c <= 1.0:
        raise ValueError(f"clip_ratio_c must be > 1; got {clip_ratio_c!r}")
    if advantages.dim() == 1:
        advantages = advantages[:, None]  # [B, 1]
    ratio = torch.exp(logp - old_logp)  # [B, T]
    clipped = -torch.minimum(
        ratio * advantages, torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * advantages
    )
    floor = -clip_ratio_c * advantages  # [B, 1]
    negative = (advantages < 0).expand_as(ratio)  # [B, T]
    token_loss = torch.where(negative, torch.minimum(clipped, floor), clipped)  # [B, T]
    loss, stats = aggregate_with_kl(token_loss, logp, mask, **common)
    low, high = clip_fractions(ratio.detach(), advantages, mask, eps_low, eps_high)
    capped = (negative & (clipped.detach() > floor)).to(ratio.dtype)  # [B, T]
    stats.update(clip_low=low.item(), clip_high=high.item(), dual_clip=masked_mean(capped, mask).item())
    return loss, stats


def entropy_bonus(
    entropy: torch.Tensor,
    mask: torch.Tensor,
    coef: float,
    aggregation: Aggregation = "dapo",
    **agg,
) -> torch.Tensor:
    """The term ``-coef * H`` to add to a loss: rewards high per-token entropy ``H`` (keeps exploring).

    ``entropy`` is the ``[B, T]`` entropy of the policy at each completion position (with grad; see
    ``grpo.entropy_from_logp``), reduced with the loss's aggregation (default a token mean, as TRL and
    verl). SimpleRL-Zoo used ``coef = 0.001``. Peers: TRL ``entropy_coef``, verl ``actor.entropy_coeff``.

    >>> entropy_bonus(torch.tensor([[1.0, 3.0]]), torch.ones(1, 2), coef=0.5)
    tensor(-1.)
    """
    return -coef * aggregate_loss(entropy, mask, aggregation, **agg)
