"""The learner side of a GRPO step: pack rollouts into tensors, then update the policy.

``pack_rollouts`` turns groups of ``Rollout`` into one padded ``PackedBatch`` (``r1zero.algo.batch``).
``policy_update`` runs the ``mu`` inner updates over it, in micro-batches with gradient accumulation;
the forward pass is ``r1zero.train.forward``'s (each distinct prompt once). The loss normalisers are
the whole batch's (across ranks too), so the gradient does not depend on the micro-batch size or on the
number of data-parallel ranks (except for ``bnpo``, whose normaliser is the micro-batch by definition).

A sharded learner (``r1zero.train.sharding``, FSDP2) reduces its gradients itself during the backward;
it runs each row's own prompt (no shared prompt pass: its deferred backward would run outside FSDP2's
per-layer gather) in fixed-size micro-batches, so every rank makes the same number of calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from r1zero import cpu
from r1zero.algo import grpo
from r1zero.algo.batch import PackedBatch, PromptPrefix, micro_batches, prefix_rows
from r1zero.algo.dispatch import LOSS_OPTIONS, get_loss
from r1zero.algo.losses import entropy_bonus
from r1zero.algo.rollout_correction import rollout_correction
from r1zero.rollout.base import Rollout
from r1zero.train.config import AlgoConfig
from r1zero.train.config import rollout_correction as correction_of
from r1zero.train.distributed import DistInfo, all_reduce_grads
from r1zero.train.forward import frozen_logprobs, prompt_prefix, sequence_logprobs
from r1zero.train.sharding import grad_norm as clipped_grad_norm
from r1zero.train.sharding import is_sharded

__all__ = ["loss_options", "pack_rollouts", "policy_update", "split_rows"]


def pack_rollouts(
    rollouts: Sequence[Rollout],
    advantages: torch.Tensor,
    pad_id: int,
    truncated: torch.Tensor | None = None,
) -> PackedBatch:
    """Pad a flat list of rollouts (group-major) into a ``PackedBatch``.

    Args:
        rollouts: ``B`` rollouts.
        advantages: ``[B]`` advantages.
        pad_id: Token id used for padding (masked out everywhere).
        truncated: ``[B]`` bool, rows that get no loss (DAPO overlong filtering); None: every row.
    """
    prompt_width = max(len(r.prompt_ids) for r in rollouts)
    width = max(max(len(r.completion_ids) for r in rollouts), 1)
    batch = len(rollouts)
    input_ids = torch.full((batch, prompt_width + width), pad_id, dtype=torch.long)  # [B, P+T]
    attention = torch.zeros((batch, prompt_width + width), dtype=torch.long)  # [B, P+T]
    rollout_logp = torch.zeros((batch, width))  # [B, T]
    for i, r in enumerate(rollouts):
        p, c = len(r.prompt_ids), len(r.completion_ids)
        input_ids[i, prompt_width - p : prompt_width] = torch.tensor(r.prompt_ids)
        input_ids[i, prompt_width : prompt_width + c] = torch.tensor(r.completion_ids, dtype=torch.long)
        attention[i, prompt_width - p : prompt_width + c] = 1
        rollout_logp[i, :c] = torch.tensor(r.logprobs, dtype=torch.float32)
    loss_mask = attention[:, prompt_width:].float()  # [B, T]
    if truncated is not None:
        loss_mask = grpo.overlong_filter_mask(loss_mask, truncated)
    return PackedBatch(input_ids, attention, loss_mask, advantages.float(), rollout_logp, None, prompt_width)


def split_rows(
    model: torch.nn.Module, lengths: Sequence[int], cap: int, prefix: PromptPrefix | None, fixed: bool = False
) -> list[slice]:
    """An update's micro-batches of at most ``cap`` rows (ascending ``lengths``): the fewest when the rows
    run packed (no padding to trade against calls) or ``fixed`` asks for fixed-size ones, else
    ``micro_batches``' split by length.

    >>> split_rows(torch.nn.Linear(1, 1), [1, 1, 2, 90], cap=2, prefix=None, fixed=True)
    [slice(0, 2, None), slice(2, 4, None)]
    """
    if fixed or (prefix is not None and cpu.runs_packed(model)):
        return micro_batches([1] * len(lengths), cap, 0)
    return micro_batches(lengths, cap)


def policy_update(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: PackedBatch,
    algo: AlgoConfig,
    *,
    max_len: int,
    temperature: float = 1.0,
    grad_clip: float = 0.0,
    global_sequences: int | None = None,
    global_tokens: float | None = None,
    dist_info: DistInfo | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Run ``algo.mu`` optimizer steps over one batch; return learner statistics for logging.

    The loss is ``algo.loss``'s (``r1zero.algo.dispatch``) with the config's knobs for it, plus the
    entropy bonus when ``algo.entropy_coef`` > 0; every loss statistic beyond the common ones (a
    sequence-clip or weight-clip fraction, the SAPO gate, ...) is returned under its own name. ``seed``
    seeds the losses that draw random numbers (Clip-Cov picks its tokens at random).

    With data parallelism each rank passes its own shard, the global sequence/token counts and its
    ``dist_info``: the gradients are summed over ranks before each optimizer step (every rank then takes
    the same step). A sharded ``model`` sums them itself (FSDP2).

    An optimizer step whose gradient norm is NaN or infinite (a non-finite reward, advantage or loss
    gives one) is skipped: the gradients are dropped, so neither the weights nor Adam's moments see
    them; ``nonfinite`` counts the skipped steps. The norm is of the summed gradients, so every rank
    skips the same steps.
    """
    batch = batch.by_length()  # the loss is a sum over sequences: their order does not matter
    n = batch.input_ids.shape[0]
    sequences = global_sequences if global_sequences is not None else n
    tokens = global_tokens if global_tokens is not None else batch.loss_mask.sum().item()
    lengths = batch.attention_mask[:, batch.prompt_width :].sum(dim=1).tolist()  # ascending
    # bnpo normalises by each micro-batch's tokens: its micro-batches must keep their fixed size
    fixed = algo.loss_agg == "bnpo"
    mode, threshold = correction_of(algo)
    loss_fn, options = get_loss(algo.loss), loss_options(algo, seed)
    sharded = is_sharded(model)  # FSDP2: no shared prompt pass, the same number of calls on every rank
    old_logp = frozen_logprobs(model, batch, algo.micro_batch_size, temperature) if algo.mu > 1 else None
    sums = {"policy": 0.0, "kl": 0.0, "clip_low": 0.0, "clip_high": 0.0, "entropy": 0.0, "loss": 0.0}
    grad_norm = torch.zeros(())
    skipped = 0
    for _ in range(algo.mu):
        optimizer.zero_grad(set_to_none=True)
        # the step's distinct prompts run forward once here and backward once after the micro-batches
        prefix = None if sharded else prompt_prefix(model, batch, detach=True)
        for rows in split_rows(model, lengths, algo.micro_batch_size, prefix, fixed or sharded):
            micro = batch.rows(rows)
            logp, entropy = sequence_logprobs(
                model,
                micro,
                temperature,
                with_entropy="grad" if algo.entropy_coef > 0 else True,
                prefix=prefix_rows(prefix, rows),
            )  # [b, T]
            old = logp.detach() if old_logp is None else old_logp[rows, : logp.shape[1]]
            # the rollout engine's log-probs vs the learner's: measured always, corrected unless mode none
            weights, mismatch = rollout_correction(old, micro.rollout_logp, micro.loss_mask, mode, threshold)
            common = {
                "aggregation": algo.loss_agg,
                "max_len": max_len,
                "num_sequences": sequences,
                "num_tokens": tokens,
            }
            loss, stats = loss_fn(
                logp,
                old,
                micro.advantages,
                micro.loss_mask,
                beta=algo.beta,
                ref_logp=micro.ref_logp,
                kl_estimator=algo.kl_estimator,
                is_weights=None if mode == "none" else weights,
                **common,
                **options,
            )
            if algo.entropy_coef > 0:
                bonus = entropy_bonus(entropy, micro.loss_mask, algo.entropy_coef, **common)
                loss = loss + bonus
                sums["entropy_bonus"] = sums.get("entropy_bonus", 0.0) + bonus.item() / algo.mu
            loss.backward()
            share = micro.loss_mask.sum().item() / max(batch.loss_mask.sum().item(), 1.0)
            for key, value in stats.items():  # the policy loss adds up; fractions are token-weighted
                sums[key] = sums.get(key, 0.0) + value * (1.0 if key == "policy" else share) / algo.mu
            sums["loss"] += loss.item() / algo.mu
            sums["entropy"] += grpo.masked_mean(entropy.detach(), micro.loss_mask).item() * share / algo.mu
            _add_mismatch(sums, mismatch, share / algo.mu)
        if prefix is not None:
            prefix.backward()
        if not sharded:
            all_reduce_grads(model.parameters(), dist_info)
        grad_norm = clipped_grad_norm(model.parameters(), grad_clip)
        if torch.isfinite(grad_norm):
            optimizer.step()
        else:
            optimizer.zero_grad(set_to_none=True)
            skipped += 1
    return {**sums, "grad_norm": float(grad_norm), "nonfinite": float(skipped)}


def loss_options(algo: AlgoConfig, seed: int = 0) -> dict[str, object]:
    """The keywords of ``algo.loss`` beyond the common ones, from the config (a seeded generator for the
    losses that draw random numbers).

    >>> loss_options(AlgoConfig(loss="sapo"))
    {'tau_pos': 1.0, 'tau_neg': 1.05}
    """
    return {
        key: torch.Generator().manual_seed(seed) if key == "generator" else getattr(algo, key)
        for key in LOSS_OPTIONS[algo.loss]
    }


def _add_mismatch(sums: dict[str, float], mismatch: dict[str, float], weight: float) -> None:
    """Fold one micro-batch's ``mismatch/*`` statistics into the step's: maxima by max, the rest as a
    token-weighted mean.

    >>> sums = {}
    >>> _add_mismatch(sums, {"mismatch/logp_diff_mean": 0.2, "mismatch/logp_diff_max": 1.0}, 0.5)
    >>> _add_mismatch(sums, {"mismatch/logp_diff_mean": 0.4, "mismatch/logp_diff_max": 0.5}, 0.5)
    >>> round(sums["mismatch/logp_diff_mean"], 6), sums["mismatch/logp_diff_max"]
    (0.3, 1.0)
    """
    for key, value in mismatch.items():
        if key.endswith("_max"):
            sums[key] = max(sums.get(key, value), value)
        else:
            sums[key] = sums.get(key, 0.0) + value * weight
