"""Name -> function tables for the policy losses and the advantage estimators.

A learner selects a variant once, by its config name, and calls it with one call shape:

    loss_fn = get_loss(cfg.loss)
    options = {key: getattr(cfg, key) for key in LOSS_OPTIONS[cfg.loss]}
    loss, stats = loss_fn(logp, old_logp, adv, mask, aggregation=..., beta=..., **options)

Every loss also accepts the common keywords of ``grpo.grpo_loss``: ``aggregation``, ``max_len``,
``beta``, ``ref_logp``, ``kl_estimator``, ``is_weights``, ``num_sequences``, ``num_tokens``.
``LOSS_OPTIONS`` lists the keywords that belong to one variant (a knob a loss does not have is an error
there, not silently ignored).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from r1zero.algo.advantages import (
    batch_std_advantages,
    reinforce_pp_advantages,
    reinforce_pp_baseline_advantages,
    rloo_advantages,
)
from r1zero.algo.covariance import clip_cov_loss, kl_cov_loss
from r1zero.algo.grpo import group_advantages, grpo_loss
from r1zero.algo.losses import cispo_loss, dual_clip_loss, gspo_loss, sapo_loss

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "LOSSES",
    "LOSS_OPTIONS",
    "compute_advantages",
    "get_loss",
]

LossFn = Callable[..., tuple[torch.Tensor, dict[str, float]]]

#: Policy losses by config name (``algo.loss``).
LOSSES: dict[str, LossFn] = {
    "grpo": grpo_loss,
    "gspo": gspo_loss,
    "cispo": cispo_loss,
    "sapo": sapo_loss,
    "dual_clip": dual_clip_loss,
    "clip_cov": clip_cov_loss,
    "kl_cov": kl_cov_loss,
}

#: The keywords each loss has beyond the common ones (its own knobs).
LOSS_OPTIONS: dict[str, tuple[str, ...]] = {
    "grpo": ("eps_low", "eps_high"),
    "gspo": ("eps_low", "eps_high"),
    "cispo": ("eps_low", "eps_high"),
    "sapo": ("tau_pos", "tau_neg"),
    "dual_clip": ("eps_low", "eps_high", "clip_ratio_c"),
    "clip_cov": ("eps_low", "eps_high", "clip_cov_ratio", "clip_cov_lb", "clip_cov_ub", "generator"),
    "kl_cov": ("kl_cov_ratio", "kl_cov_coef"),
}

#: Advantage estimators by config name: ``[N, G]`` rewards -> ``[N, G]`` advantages.
ADVANTAGE_ESTIMATORS: dict[str, Callable[..., torch.Tensor]] = {
    "grpo": partial(group_advantages, scale="group"),
    "dr_grpo": partial(group_advantages, scale="none"),
    "batch_std": batch_std_advantages,
    "rloo": rloo_advantages,
    "reinforce_pp": reinforce_pp_advantages,
    "reinforce_pp_baseline": reinforce_pp_baseline_advantages,
}
_TOKEN_WEIGHTED = ("reinforce_pp", "reinforce_pp_baseline")


def get_loss(name: str) -> LossFn:
    """The loss function called ``name``; an unknown name is an error that lists the known ones.

    >>> get_loss("gspo").__name__
    'gspo_loss'
    """
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {name!r}")
    return LOSSES[name]


def compute_advantages(name: str, rewards: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Advantages ``[N, G]`` of ``[N, G]`` rewards with the estimator called ``name``.

    ``lengths`` (``[N, G]`` completion lengths) weight the batch statistics of the REINFORCE++
    estimators by tokens, as verl and OpenRLHF do; the group estimators do not use them.

    >>> compute_advantages("rloo", torch.tensor([[1.0, 0.0]]))
    tensor([[ 1., -1.]])
    """
    if name not in ADVANTAGE_ESTIMATORS:
        raise ValueError(
            f"advantage estimator must be one of {', '.join(ADVANTAGE_ESTIMATORS)}; got {name!r}"
        )
    if name in _TOKEN_WEIGHTED:
        return ADVANTAGE_ESTIMATORS[name](rewards, lengths)
    return ADVANTAGE_ESTIMATORS[name](rewards)
