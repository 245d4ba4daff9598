"""Critic-free advantage estimators beyond GRPO's group z-score: RLOO, REINFORCE++ and its baseline form.

All take outcome rewards ``[N, G]`` (``N`` prompts, ``G`` completions each) and return one advantage
per completion, ``[N, G]``, broadcast over its tokens by the loss. GRPO's own estimator (and its
batch-std and unscaled options) is ``grpo.group_advantages``.
"""

from __future__ import annotations

import torch

from r1zero.algo.grpo import group_advantages

__all__ = [
    "batch_std_advantages",
    "reinforce_pp_advantages",
    "reinforce_pp_baseline_advantages",
    "rloo_advantages",
    "whiten",
]


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """RLOO: ``A_i = r_i - mean_{j != i} r_j``, the leave-one-out baseline (unbiased, no critic).

    Equal to ``G / (G - 1) * (r_i - mean(r))``: Dr. GRPO's centred advantage scaled by ``G / (G - 1)``
    (Kool et al. 2019; Ahmadian et al. 2024, "Back to Basics", arXiv 2402.14740). Peers: verl
    ``algorithm.adv_estimator=rloo``, OpenRLHF ``--advantage_estimator rloo``, TRL ``RLOOTrainer``.

    >>> rloo_advantages(torch.tensor([[1.0, 0.0, 0.0]]))
    tensor([[ 1.0000, -0.5000, -0.5000]])
    """
    group = rewards.shape[1]
    if group < 2:
        raise ValueError(f"RLOO needs at least 2 completions per prompt; got group size {group}")
    others = (rewards.sum(dim=1, keepdim=True) - rewards) / (group - 1)  # [N, G]
    return rewards - others  # [N, G]


def whiten(values: torch.Tensor, weights: torch.Tensor | None = None, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` over the whole tensor, optionally weighted (e.g. by token counts).

    The variance is the unbiased one over the total weight ``W``: ``sum w (x - mean)^2 / (W - 1)``; with
    ``weights`` = completion lengths this is exactly verl's and OpenRLHF's whitening over all loss tokens
    of a batch whose tokens all carry their sequence's value.

    >>> whiten(torch.tensor([1.0, 3.0]))
    tensor([-0.7071,  0.7071])
    """
    weights = torch.ones_like(values) if weights is None else weights.to(values.dtype)
    total = weights.sum()
    if total <= 1:
        raise ValueError(f"whitening needs a total weight > 1; got {total.item()!r}")
    mean = (values * weights).sum() / total
    var = (weights * (values - mean) ** 2).sum() / (total - 1)
    return (values - mean) * torch.rsqrt(var + eps)


def reinforce_pp_advantages(
    rewards: torch.Tensor, lengths: torch.Tensor | None = None, eps: float = 1e-8
) -> torch.Tensor:
    """REINFORCE++: the reward itself, whitened over the whole batch (no per-prompt baseline).

    With one outcome reward per completion and no discount, each token's return is ``r_i``; the paper
    then normalises advantages over the global batch (Hu et al. 2025, arXiv 2501.03262). Pass the
    completion ``lengths`` to weight by tokens as verl and OpenRLHF do (their statistics run over all
    loss tokens); without, each completion counts once. Peers: verl
    ``algorithm.adv_estimator=reinforce_plus_plus``, OpenRLHF ``--advantage_estimator reinforce``.

    >>> reinforce_pp_advantages(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    tensor([[ 1.5000, -0.5000],
            [-0.5000, -0.5000]])
    """
    return whiten(rewards, lengths, eps)


def reinforce_pp_baseline_advantages(
    rewards: torch.Tensor, lengths: torch.Tensor | None = None, eps: float = 1e-8
) -> torch.Tensor:
    """REINFORCE++-baseline: subtract each group's mean reward, then whiten over the whole batch.

    The group mean removes the prompt's difficulty; the batch statistics (not the group's, as GRPO) keep
    groups of different spread on one scale (Hu et al. 2025, arXiv 2501.03262). ``lengths`` as in
    ``reinforce_pp_advantages``. Peers: verl ``algorithm.adv_estimator=reinforce_plus_plus_baseline``,
    OpenRLHF ``--advantage_estimator reinforce_baseline``.

    >>> reinforce_pp_baseline_advantages(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    tensor([[ 1.2247, -1.2247],
            [ 0.0000,  0.0000]])
    """
    return whiten(group_advantages(rewards, "none"), lengths, eps)


def batch_std_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Group mean, batch std: ``A_i = (r_i - mean(r_group)) / (std(r_batch) + eps)``.

    Mixes GRPO's per-prompt centring with a batch-wide scale, so a group whose rewards barely differ is
    not blown up ("Lite PPO", Liu et al. 2025, arXiv 2508.08221). Same as
    ``grpo.group_advantages(rewards, "batch")``. Peers: TRL ``scale_rewards="batch"``.

    >>> batch_std_advantages(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), eps=0.0)
    tensor([[ 1., -1.],
            [ 0.,  0.]])
    """
    return group_advantages(rewards, "batch", eps)
