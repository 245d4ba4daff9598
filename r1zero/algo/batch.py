"""A training step's tensors and how they are split: pure containers and a planner, no I/O.

``PackedBatch`` holds a step's rollouts as padded tensors (prompts left-padded, completions right-padded,
so every completion starts at the same column); ``PromptPrefix`` holds a step's distinct prompts, run
once, whose keys/values feed every row of their group; ``micro_batches`` plans the split of rows into
forward/backward calls. The learner (``r1zero.train``) and the CPU speed code (``r1zero.cpu``) both
read them; neither is imported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

__all__ = ["PackedBatch", "PromptPrefix", "micro_batches", "prefix_rows"]


@dataclass(frozen=True)
class PackedBatch:
    """A step's rollouts as tensors (``B`` sequences, ``P`` prompt columns, ``T`` completion columns).

    Attributes:
        input_ids: ``[B, P+T]`` left-padded prompt then right-padded completion.
        attention_mask: ``[B, P+T]`` 1 on real tokens.
        loss_mask: ``[B, T]`` 1 on completion tokens that get a loss (overlong filtering zeroes rows).
        advantages: ``[B]`` one advantage per completion (GRPO), or ``[B, T]`` one per token (PPO with GAE).
        rollout_logp: ``[B, T]`` the engine's log-probs of the sampled tokens.
        ref_logp: ``[B, T]`` reference-policy log-probs, or None when beta = 0.
        prompt_width: ``P``.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    advantages: torch.Tensor
    rollout_logp: torch.Tensor
    ref_logp: torch.Tensor | None
    prompt_width: int

    def by_length(self) -> PackedBatch:
        """The same rows sorted by completion length (stable), so micro-batches carry little padding."""
        order = torch.argsort(self.attention_mask[:, self.prompt_width :].sum(dim=1), stable=True)  # [B]
        ref = None if self.ref_logp is None else self.ref_logp[order]
        return replace(
            self,
            input_ids=self.input_ids[order],
            attention_mask=self.attention_mask[order],
            loss_mask=self.loss_mask[order],
            advantages=self.advantages[order],
            rollout_logp=self.rollout_logp[order],
            ref_logp=ref,
        )

    def rows(self, index: slice) -> PackedBatch:
        """A micro-batch: the rows ``index``, trimmed to the columns those rows use (less padding)."""
        used = self.attention_mask[index].any(dim=0).nonzero().flatten()  # [used columns]
        left = min(int(used[0]), self.prompt_width - 1)
        width = max(int(used[-1]) + 1 - self.prompt_width, 1)  # completion columns kept
        cols = slice(left, self.prompt_width + width)
        ref = None if self.ref_logp is None else self.ref_logp[index, :width]
        advantages = self.advantages[index] if self.advantages.dim() == 1 else self.advantages[index, :width]
        return replace(
            self,
            input_ids=self.input_ids[index, cols],
            attention_mask=self.attention_mask[index, cols],
            loss_mask=self.loss_mask[index, :width],
            advantages=advantages,
            rollout_logp=self.rollout_logp[index, :width],
            ref_logp=ref,
            prompt_width=self.prompt_width - left,
        )

    def to(self, device: torch.device | str) -> PackedBatch:
        move = {
            k: getattr(self, k).to(device) for k in ("input_ids", "attention_mask", "loss_mask", "advantages")
        }
        ref = None if self.ref_logp is None else self.ref_logp.to(device)
        return replace(self, **move, rollout_logp=self.rollout_logp.to(device), ref_logp=ref)


@dataclass(frozen=True)
class PromptPrefix:
    """A batch's distinct prompts, run once: their keys/values and the output predicting token 0.

    Attributes:
        mask: ``[U, P]`` attention mask of the ``U`` distinct prompts (left-padded).
        index: ``[b]`` the prompt of each row of the batch (or micro-batch) it serves.
        graph: the prompt pass's outputs ``[U, ...]`` (output ``key`` at the last prompt position, then
            keys and values ``[U, Hkv, P, Dh]`` of every layer), attached to the autograd graph.
        leaves: what the rows read: ``graph`` itself, or detached copies that collect the gradient of
            many micro-batches, sent through the prompt pass once by ``backward``.
        config: the model config (for the KV cache).
        cache_arg: the name under which the model's forward takes the KV cache (``cache_keyword``).
    """

    mask: torch.Tensor
    index: torch.Tensor
    graph: tuple[torch.Tensor, ...]
    leaves: tuple[torch.Tensor, ...]
    config: object
    cache_arg: str

    def rows(self, index: slice) -> PromptPrefix:
        """The prefix for the micro-batch ``batch.rows(index)``."""
        return replace(self, index=self.index[index])

    def backward(self) -> None:
        """Send the gradient collected on detached leaves through the prompt pass (no-op otherwise)."""
        pairs = [(g, leaf.grad) for g, leaf in zip(self.graph, self.leaves, strict=True) if leaf is not g]
        pairs = [(g, grad) for g, grad in pairs if grad is not None]
        if pairs:
            torch.autograd.backward([g for g, _ in pairs], [grad for _, grad in pairs])


def micro_batches(lengths: Sequence[int], cap: int, overhead: int = 128) -> list[slice]:
    """Split rows of ascending ``lengths`` into consecutive micro-batches of at most ``cap`` rows.

    Minimises the padded tokens computed, ``rows x longest`` per micro-batch, plus ``overhead`` tokens
    per micro-batch (the fixed cost of one more forward/backward call), by dynamic programming. The
    gradient does not depend on the split (the loss normalisers are the whole batch's).

    >>> micro_batches([1, 1, 2, 2, 50, 60], cap=4, overhead=10)
    [slice(0, 4, None), slice(4, 6, None)]
    >>> micro_batches([5] * 4, cap=2)
    [slice(0, 2, None), slice(2, 4, None)]
    """
    if cap < 1:
        raise ValueError(f"cap={cap} must be >= 1")
    cost = [0.0] + [float("inf")] * len(lengths)  # cost[i]: best cost of the first i rows
    cut = [0] * (len(lengths) + 1)
    for end in range(1, len(lengths) + 1):
        for start in range(max(0, end - cap), end):
            c = cost[start] + overhead + (end - start) * max(lengths[end - 1], 1)
            if c < cost[end]:
                cost[end], cut[end] = c, start
    slices, end = [], len(lengths)
    while end > 0:
        slices.append(slice(cut[end], end))
        end = cut[end]
    return slices[::-1]


def prefix_rows(prefix: PromptPrefix | None, rows: slice) -> PromptPrefix | None:
    """``prefix.rows(rows)``, or None without a prefix."""
    return None if prefix is None else prefix.rows(rows)
