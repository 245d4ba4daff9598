"""The PPO critic: a value model on the policy's architecture, GAE advantages, and its update.

The critic is the policy's base model with its LM head replaced by a scalar head
(``AutoModelForTokenClassification`` with one label: one value per position), so it loads, saves and
shards exactly like the policy, and a checkpoint stores it in Hugging Face format beside the policy
(``checkpoints/step_N/critic/``). It is what GRPO does without: a second network of the policy's size
with its own AdamW state, which is where PPO's extra memory and compute go.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import torch

from r1zero.algo import ppo
from r1zero.algo.batch import PackedBatch, PromptPrefix, prefix_rows
from r1zero.train.config import CriticConfig
from r1zero.train.distributed import DistInfo, all_reduce_grads
from r1zero.train.forward import completion_outputs, frozen_per_token, prompt_prefix
from r1zero.train.learner import split_rows
from r1zero.train.sharding import grad_norm as clipped_grad_norm
from r1zero.train.sharding import is_sharded

__all__ = ["critic_update", "gae_batch", "load_critic", "sequence_values"]

log = logging.getLogger(__name__)


def load_critic(source: str, dtype: str, device: torch.device, fresh_head: bool = True) -> torch.nn.Module:
    """A value model from a causal-LM directory (head zero-initialised) or a saved critic directory.

    Args:
        source: ``"tiny-base"``, a local directory or a hub name (the policy's base), or a checkpoint's
            ``critic/`` directory (then ``fresh_head=False`` keeps its trained head).
        dtype: ``float32``, ``bfloat16`` or ``float16``.
        device: Where the critic lives.
        fresh_head: Zero the value head, so the critic starts at ``V = 0`` (advantages = rewards).
    """
    from transformers import AutoConfig, AutoModelForTokenClassification

    from r1zero.models.loading import DTYPES, load_with_new_head, resolve_model_path

    path = resolve_model_path(source)
    config = AutoConfig.from_pretrained(path, num_labels=1)
    config.classifier_dropout = 0.0  # the value of a state must not depend on dropout noise
    critic = load_with_new_head(AutoModelForTokenClassification, path, config=config, dtype=DTYPES[dtype])
    if fresh_head:
        with torch.no_grad():
            critic.score.weight.zero_()
            if critic.score.bias is not None:
                critic.score.bias.zero_()
    log.info("critic from %s: %.2fM parameters", source, sum(p.numel() for p in critic.parameters()) / 1e6)
    return critic.to(device)


def sequence_values(
    critic: torch.nn.Module, batch: PackedBatch, prefix: PromptPrefix | None = None
) -> torch.Tensor:
    """``V(s_t)`` for every completion token ``t`` (the state before it): ``[b, T]``."""
    return completion_outputs(critic, batch, "logits", prefix)[..., 0].float()  # [b, T]


def batch_values(critic: torch.nn.Module, batch: PackedBatch, micro_batch_size: int) -> torch.Tensor:
    """``sequence_values`` over the whole batch in micro-batches, without grad: ``[B, T]``."""
    return frozen_per_token(critic, batch, micro_batch_size, sequence_values)


def gae_batch(
    critic: torch.nn.Module,
    batch: PackedBatch,
    rewards: torch.Tensor,
    config: CriticConfig,
    micro_batch_size: int,
) -> tuple[PackedBatch, torch.Tensor, torch.Tensor]:
    """Token-level GAE advantages for the policy batch, and the critic's old values and returns.

    Args:
        critic: The value model.
        batch: The packed rollouts (its per-sequence ``advantages`` are replaced).
        rewards: ``[B]`` one reward per completion, in the batch's row order.
        config: GAE gamma/lambda and whether to whiten the advantages.
        micro_batch_size: Rows per critic forward.

    Returns:
        ``(batch with [B, T] advantages, old values [B, T], returns [B, T])``.
    """
    mask = (batch.attention_mask[:, batch.prompt_width :] > 0).float()  # [B, T] every real token
    values = batch_values(critic, batch, micro_batch_size) * mask  # [B, T]
    token_rewards = ppo.terminal_rewards(rewards.float().to(values.device), mask)  # [B, T]
    advantages, returns = ppo.gae(token_rewards, values, mask, config.gae_gamma, config.gae_lambda)
    if config.whiten_advantages:
        advantages = ppo.whiten(advantages, batch.loss_mask)  # [B, T]
    return replace(batch, advantages=advantages), values, returns


def critic_update(
    critic: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: PackedBatch,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    config: CriticConfig,
    *,
    micro_batch_size: int,
    epochs: int = 1,
    global_tokens: float | None = None,
    dist_info: DistInfo | None = None,
) -> dict[str, float]:
    """``epochs`` optimizer steps of the clipped value loss over the batch; returns critic statistics.

    Micro-batching is ``policy_update``'s: rows sorted and split by completion length, the step's prompts
    run once forward and once backward, gradients accumulated with the whole batch's token count as the
    normaliser; with data parallelism the gradients are summed over ranks (``dist_info``) before each step.
    A sharded critic (FSDP2) runs as a sharded policy does: each row its own prompt, fixed micro-batches.
    """
    # PackedBatch sorts and trims rows consistently; carry returns and old values in its [B, T] slots
    value_batch = replace(batch, advantages=returns, rollout_logp=old_values).by_length()
    tokens = global_tokens if global_tokens is not None else value_batch.loss_mask.sum().item()
    lengths = value_batch.attention_mask[:, value_batch.prompt_width :].sum(dim=1).tolist()  # ascending
    sums = {"value_loss": 0.0, "value_clip_frac": 0.0}
    grad_norm = torch.zeros(())
    sharded = is_sharded(critic)
    critic.train()
    for _ in range(epochs):
        optimizer.zero_grad(set_to_none=True)
        prefix = None if sharded else prompt_prefix(critic, value_batch, detach=True)
        for rows in split_rows(critic, lengths, micro_batch_size, prefix, fixed=sharded):
            micro = value_batch.rows(rows)
            values = sequence_values(critic, micro, prefix_rows(prefix, rows))  # [b, T]
            loss, stats = ppo.value_loss(
                values, micro.rollout_logp, micro.advantages, micro.loss_mask, config.value_clip, tokens
            )
            loss.backward()
            share = micro.loss_mask.sum().item() / max(value_batch.loss_mask.sum().item(), 1.0)
            sums["value_loss"] += loss.item() / epochs
            sums["value_clip_frac"] += stats["clip_frac"] * share / epochs
        if prefix is not None:
            prefix.backward()
        if not sharded:
            all_reduce_grads(critic.parameters(), dist_info)
        grad_norm = clipped_grad_norm(critic.parameters(), config.grad_clip)
        if torch.isfinite(grad_norm):  # as the policy's: a NaN/inf gradient never reaches the weights
            optimizer.step()
        else:
            optimizer.zero_grad(set_to_none=True)
    critic.eval()
    mask = batch.loss_mask
    return {
        **sums,
        "value_grad_norm": float(grad_norm),
        "explained_variance": ppo.explained_variance(old_values, returns, mask),
        "value_mean": float((old_values * mask).sum() / mask.sum().clamp(min=1.0)),
        "return_mean": float((returns * mask).sum() / mask.sum().clamp(min=1.0)),
    }
