"""The GRPO maths: advantages, the clipped surrogate, loss aggregation, KL, and the DAPO extras.

Every function here is pure (tensors in, tensors out, no I/O, no globals), so each variant of the
published algorithms is an argument, not a branch in the training loop. Shapes: ``N`` prompts,
``G`` completions per prompt, ``B = N*G`` sequences, ``T`` completion tokens (right-padded, with a
0/1 ``mask``).

Sources: GRPO and the k3 KL estimator (DeepSeekMath, Shao et al. 2024); clip-higher, token-mean loss,
dynamic sampling and soft overlong punishment (DAPO, Yu et al. 2025); unscaled advantages and a
constant length normaliser (Dr. GRPO, Liu et al. 2025); truncated importance sampling for rollout
log-probs from another engine (Yao et al. 2025, "Your efficient RL framework secretly brings you
off-policy RL training").

Why the loss is ~0 with ``mu = 1`` and ``beta = 0``: on the first inner update the policy *is* the old
policy, so every ratio is exactly 1 and the surrogate equals ``-A``; advantages are centred per group,
so their (length-weighted) mean is ~0. The gradient ``-A * grad(logp)`` is not zero.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = [
    "ADVANTAGE_SCALES",
    "AGGREGATIONS",
    "KL_ESTIMATORS",
    "aggregate_loss",
    "aggregate_with_kl",
    "clip_fractions",
    "clipped_surrogate",
    "entropy_from_logp",
    "group_advantages",
    "grpo_loss",
    "informative_groups",
    "kl_penalty",
    "masked_mean",
    "overlong_filter_mask",
    "soft_overlong_penalty",
    "truncated_is_weights",
]

AdvantageScale = Literal["group", "batch", "none"]
Aggregation = Literal["grpo", "dapo", "dr_grpo", "bnpo"]
KLEstimator = Literal["k1", "k2", "k3"]

ADVANTAGE_SCALES: tuple[str, ...] = ("group", "batch", "none")
AGGREGATIONS: tuple[str, ...] = ("grpo", "dapo", "dr_grpo", "bnpo")
KL_ESTIMATORS: tuple[str, ...] = ("k1", "k2", "k3")


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` is 1 (0 when the mask is empty).

    >>> masked_mean(torch.tensor([[1.0, 3.0], [5.0, 7.0]]), torch.tensor([[1, 1], [1, 0]]))
    tensor(3.)
    """
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def group_advantages(
    rewards: torch.Tensor, scale: AdvantageScale = "group", eps: float = 1e-6
) -> torch.Tensor:
    """Group-relative advantages ``A_i = (r_i - mean(r_group)) / (std + eps)``, one per completion.

    Args:
        rewards: ``[N, G]`` rewards, one row per prompt group.
        scale: ``"group"`` divides by each group's std (GRPO, DeepSeekMath); ``"batch"`` by the std of
            all rewards in the batch; ``"none"`` only centres (Dr. GRPO: the std scaling biases updates
            towards too-easy and too-hard questions). The std is the unbiased (Bessel) one, as in TRL.
        eps: Added to the std, so a group whose rewards are all equal gets advantage 0, not NaN.

    Returns:
        ``[N, G]`` advantages (broadcast over tokens by the loss).

    >>> group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), "none")
    tensor([[ 0.5000, -0.5000, -0.5000,  0.5000]])
    >>> group_advantages(torch.tensor([[2.0, 2.0]]))
    tensor([[0., 0.]])
    """
    _check_choice("advantage scale", scale, ADVANTAGE_SCALES)
    centred = rewards - rewards.mean(dim=1, keepdim=True)  # [N, G]
    if scale == "none":
        return centred
    if scale == "group":
        std = rewards.std(dim=1, keepdim=True) if rewards.shape[1] > 1 else torch.zeros_like(rewards[:, :1])
    else:
        std = rewards.std() if rewards.numel() > 1 else torch.zeros(())  # []
    return centred / (std + eps)  # [N, G]


def clipped_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
) -> torch.Tensor:
    """Per-token PPO/GRPO loss ``-min(rho*A, clip(rho, 1-eps_low, 1+eps_high)*A)``.

    Args:
        logp: ``[B, T]`` log-probs of the sampled tokens under the current policy (with grad).
        old_logp: ``[B, T]`` log-probs under the policy that sampled them (no grad).
        advantages: ``[B]`` or ``[B, T]`` advantages.
        eps_low: Lower clip range; ``eps_high`` the upper one (DAPO's clip-higher uses 0.28).

    Returns:
        ``[B, T]`` per-token losses (unmasked).

    >>> clipped_surrogate(torch.log(torch.tensor([[1.5]])), torch.zeros(1, 1), torch.tensor([1.0]))
    tensor([[-1.2000]])
    """
    if advantages.dim() == 1:
        advantages = advantages[:, None]  # [B, 1]
    ratio = torch.exp(logp - old_logp)  # [B, T]
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)  # [B, T]
    return -torch.minimum(ratio * advantages, clipped * advantages)  # [B, T]


def aggregate_loss(
    token_loss: torch.Tensor,
    mask: torch.Tensor,
    mode: Aggregation = "grpo",
    *,
    max_len: int | None = None,
    num_sequences: int | None = None,
    num_tokens: float | None = None,
) -> torch.Tensor:
    """Reduce ``[B, T]`` per-token losses to the scalar that is back-propagated.

    Modes (``L_i`` = tokens of completion i, ``S`` = number of sequences in the whole batch):
      - ``grpo``: ``1/S * sum_i 1/L_i * sum_t`` (sequence mean of token means; DeepSeekMath).
      - ``dapo``: ``1/sum_i L_i * sum_i sum_t`` (token mean over the whole batch; DAPO).
      - ``dr_grpo``: ``1/(S * max_len) * sum_i sum_t``: a constant normaliser, so no length bias
        (Dr. GRPO; for one group ``S = G`` and this is ``token sum / (G * L_max)``).
      - ``bnpo``: token mean over *this* micro-batch, weighted by its share of the sequences
        (TRL's ``bnpo``: the normaliser depends on the micro-batch size).

    With gradient accumulation pass the whole batch's ``num_sequences`` and ``num_tokens``: the sum of
    the micro-batch losses then equals the whole-batch loss for ``grpo``, ``dapo`` and ``dr_grpo``.

    >>> loss = torch.tensor([[1.0, 1.0, 0.0], [4.0, 0.0, 0.0]])
    >>> mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    >>> aggregate_loss(loss, mask, "grpo"), aggregate_loss(loss, mask, "dapo")
    (tensor(2.5000), tensor(2.))
    >>> aggregate_loss(loss, mask, "dr_grpo", max_len=3)
    tensor(1.)
    """
    _check_choice("loss aggregation", mode, AGGREGATIONS)
    mask = mask.to(token_loss.dtype)
    masked = token_loss * mask  # [B, T]
    batch = token_loss.shape[0]
    sequences = float(num_sequences if num_sequences is not None else batch)
    if mode == "grpo":
        per_sequence = masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # [B]
        return per_sequence.sum() / sequences
    if mode == "dapo":
        tokens = num_tokens if num_tokens is not None else mask.sum().item()
        return masked.sum() / max(float(tokens), 1.0)
    if mode == "dr_grpo":
        if max_len is None or max_len <= 0:
            raise ValueError(f"dr_grpo needs max_len (the max completion length) > 0; got {max_len!r}")
        return masked.sum() / (sequences * max_len)
    return masked.sum() / mask.sum().clamp(min=1.0) * (batch / sequences)  # bnpo


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: KLEstimator = "k3") -> torch.Tensor:
    """Per-token estimate of KL(pi_theta || pi_ref) from samples of pi_theta (Schulman, "Approximating KL").

    With ``d = ref_logp - logp``: ``k1 = -d``, ``k2 = d^2 / 2``, ``k3 = exp(d) - d - 1`` (DeepSeekMath
    uses k3: unbiased and always >= 0).

    >>> kl_penalty(torch.tensor([0.0]), torch.tensor([0.0]))
    tensor([0.])
    >>> kl_penalty(torch.tensor([-1.0]), torch.tensor([-2.0]), "k1")
    tensor([1.])
    """
    _check_choice("KL estimator", estimator, KL_ESTIMATORS)
    delta = ref_logp - logp  # [B, T]
    if estimator == "k1":
        return -delta
    if estimator == "k2":
        return 0.5 * delta**2
    return torch.exp(delta) - delta - 1.0


def entropy_from_logp(logp: torch.Tensor) -> torch.Tensor:
    """Per-position entropy ``-sum_v p log p`` from ``[..., V]`` log-probabilities (a log-softmax).

    >>> entropy_from_logp(torch.log_softmax(torch.zeros(1, 4), dim=-1))
    tensor([1.3863])
    """
    return -(logp.exp() * logp).sum(dim=-1)  # [...]


def clip_fractions(
    ratio: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fractions of tokens where the clip is active, below and above (as logged by TRL).

    Low: ``rho < 1 - eps_low`` with ``A < 0``; high: ``rho > 1 + eps_high`` with ``A > 0`` (the only
    cases where the min picks the clipped term, so the token gets no gradient).

    >>> r = torch.tensor([[0.5, 1.5, 1.0, 1.5]])
    >>> clip_fractions(r, torch.tensor([[-1.0, 1.0, 1.0, -1.0]]), torch.ones(1, 4))
    (tensor(0.2500), tensor(0.2500))
    """
    if advantages.dim() == 1:
        advantages = advantages[:, None]  # [B, 1]
    low = ((ratio < 1.0 - eps_low) & (advantages < 0)).to(ratio.dtype)  # [B, T]
    high = ((ratio > 1.0 + eps_high) & (advantages > 0)).to(ratio.dtype)  # [B, T]
    return masked_mean(low, mask), masked_mean(high, mask)


def truncated_is_weights(
    old_logp: torch.Tensor, rollout_logp: torch.Tensor, cap: float = 2.0
) -> torch.Tensor:
    """Truncated importance weights ``min(pi_learner / pi_rollout, cap)`` per token, without grad.

    The rollout engine (vLLM, a fast sampler) and the learner compute slightly different
    probabilities; multiplying the per-token loss by these weights corrects the mismatch (TIS, Yao et
    al. 2025). ``old_logp`` is the learner's recompute, ``rollout_logp`` the engine's.

    >>> truncated_is_weights(torch.log(torch.tensor([0.5, 0.9])), torch.log(torch.tensor([0.25, 0.9])))
    tensor([2., 1.])
    """
    if cap <= 0:
        raise ValueError(f"importance-sampling cap must be > 0; got {cap!r}")
    return torch.exp(old_logp - rollout_logp).clamp(max=cap).detach()  # [B, T]


def soft_overlong_penalty(lengths: torch.Tensor, max_len: int, cache_len: int) -> torch.Tensor:
    """DAPO's soft overlong punishment (eq. 13), added to the reward of each completion.

    0 up to ``max_len - cache_len`` tokens, then falling linearly to -1 at ``max_len``, and -1 beyond.

    >>> soft_overlong_penalty(torch.tensor([10, 14, 16, 20]), max_len=16, cache_len=4)
    tensor([ 0.0000, -0.5000, -1.0000, -1.0000])
    """
    if not 0 < cache_len <= max_len:
        raise ValueError(f"cache_len must be in (0, max_len={max_len}]; got {cache_len!r}")
    expected = max_len - cache_len
    penalty = (expected - lengths.to(torch.float32)) / cache_len  # [B]
    return penalty.clamp(min=-1.0, max=0.0)


def overlong_filter_mask(mask: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """Zero the loss mask of truncated completions (DAPO's overlong filtering).

    >>> overlong_filter_mask(torch.ones(2, 2), torch.tensor([False, True]))
    tensor([[1., 1.],
            [0., 0.]])
    """
    return mask * (~truncated.bool()).to(mask.dtype)[:, None]  # [B, T]


def informative_groups(rewards: torch.Tensor, tol: float = 1e-8) -> torch.Tensor:
    """Which groups have rewards that are not all equal (DAPO dynamic sampling keeps only these).

    A group whose rewards are all equal has zero advantage everywhere and contributes no gradient.

    >>> informative_groups(torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
    tensor([False,  True])
    """
    spread = rewards.max(dim=1).values - rewards.min(dim=1).values  # [N]
    return spread > tol


def aggregate_with_kl(
    token_loss: torch.Tensor,
    logp: torch.Tensor,
    mask: torch.Tensor,
    *,
    aggregation: Aggregation = "grpo",
    max_len: int | None = None,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    kl_estimator: KLEstimator = "k3",
    is_weights: torch.Tensor | None = None,
    num_sequences: int | None = None,
    num_tokens: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The part every loss shares: IS weights, aggregation, ``+ beta * KL`` (``grpo_loss`` and the variants of ``r1zero.algo.losses``).

    Args:
        token_loss: ``[B, T]`` per-token policy loss of the variant.
        logp: ``[B, T]`` current log-probs (the KL term's gradient flows through them).
        mask: ``[B, T]`` 0/1 loss mask. The other arguments are those of ``grpo.grpo_loss``.

    Returns:
        ``(loss, {"policy": ..., "kl": ...})``.

    >>> aggregate_with_kl(torch.tensor([[1.0, 3.0]]), torch.zeros(1, 2), torch.ones(1, 2))
    (tensor(2.), {'policy': 2.0, 'kl': 0.0})
    """
    if is_weights is not None:
        token_loss = token_loss * is_weights  # [B, T]
    agg = {"mode": aggregation, "max_len": max_len, "num_sequences": num_sequences, "num_tokens": num_tokens}
    policy = aggregate_loss(token_loss, mask, **agg)
    loss, kl_value = policy, 0.0
    if beta != 0.0:
        if ref_logp is None:
            raise ValueError("beta != 0 needs ref_logp (log-probs under the reference policy)")
        kl = kl_penalty(logp, ref_logp, kl_estimator)  # [B, T]
        loss = loss + beta * aggregate_loss(kl, mask, **agg)
        kl_value = masked_mean(kl.detach(), mask).item()
    return loss, {"policy": policy.item(), "kl": kl_value}


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    aggregation: Aggregation = "grpo",
    max_len: int | None = None,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    kl_estimator: KLEstimator = "k3",
    is_weights: torch.Tensor | None = None,
    num_sequences: int | None = None,
    num_tokens: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The full per-micro-batch objective: surrogate (times IS weights) + beta * KL, aggregated.

    Returns ``(loss, stats)``: ``stats`` holds ``policy`` (the surrogate part), ``kl`` (token mean,
    0 when beta = 0), ``clip_low`` and ``clip_high`` as floats for logging.
    """
    token_loss = clipped_surrogate(logp, old_logp, advantages, eps_low, eps_high)  # [B, T]
    loss, stats = aggregate_with_kl(
        token_loss,
        logp,
        mask,
        aggregation=aggregation,
        max_len=max_len,
        beta=beta,
        ref_logp=ref_logp,
        kl_estimator=kl_estimator,
        is_weights=is_weights,
        num_sequences=num_sequences,
        num_tokens=num_tokens,
    )
    ratio = torch.exp(logp.detach() - old_logp)  # [B, T]
    low, high = clip_fractions(ratio, advantages, mask, eps_low, eps_high)
    return loss, {**stats, "clip_low": low.item(), "clip_high": high.item()}
