"""The learner side of a GRPO step: pack rollouts into tensors, recompute log-probs, update the policy.

``pack_rollouts`` turns groups of ``Rollout`` into one padded batch (prompts left-padded, completions
right-padded, so every completion starts at the same column). ``policy_update`` runs the ``mu`` inner
updates over it, in micro-batches with gradient accumulation; the loss normalisers are the whole
batch's (across ranks too), so the gradient does not depend on the micro-batch size or on the number
of data-parallel ranks (except for ``bnpo``, whose normaliser is the micro-batch by definition).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import torch

from r1zero import gqa, grpo, packed
from r1zero.rollout.base import Rollout
from r1zero.train.config import AlgoConfig
from r1zero.train.distributed import DistInfo, all_reduce_grads

log = logging.getLogger(__name__)

__all__ = [
    "PackedBatch",
    "PromptPrefix",
    "cache_keyword",
    "completion_outputs",
    "drops_cache",
    "frozen_logprobs",
    "frozen_per_token",
    "micro_batches",
    "pack_rollouts",
    "packs",
    "policy_update",
    "prefix_rows",
    "prompt_prefix",
    "sequence_logprobs",
    "split_rows",
]


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


def pack_rollouts(
    rollouts: Sequence[Rollout], advantages: torch.Tensor, pad_id: int, loss_rows: torch.Tensor
) -> PackedBatch:
    """Pad a flat list of rollouts (group-major) into a ``PackedBatch``.

    Args:
        rollouts: ``B`` rollouts.
        advantages: ``[B]`` advantages.
        pad_id: Token id used for padding (masked out everywhere).
        loss_rows: ``[B]`` bool, False for rows that get no loss (DAPO overlong filtering).
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
    loss_mask = attention[:, prompt_width:].float() * loss_rows.float()[:, None]  # [B, T]
    return PackedBatch(input_ids, attention, loss_mask, advantages.float(), rollout_logp, None, prompt_width)


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


def cache_keyword(model: torch.nn.Module) -> str | None:
    """The name of ``model.forward``'s KV-cache argument, or None when it takes none.

    ``transformers`` 5.24 renamed ``past_key_values`` to ``cache`` (the old name is a deprecated alias).

    >>> class Old(torch.nn.Module):
    ...     def forward(self, input_ids, past_key_values=None): ...
    >>> cache_keyword(Old()), cache_keyword(torch.nn.Linear(1, 1))
    ('past_key_values', None)
    """
    parameters = _forward_parameters(model)
    return next((name for name in ("cache", "past_key_values") if name in parameters), None)


def _forward_parameters(model: torch.nn.Module) -> Mapping[str, inspect.Parameter]:
    """The parameters of ``model``'s forward, seen through a PEFT wrapper (whose forward takes
    ``**kwargs`` and hands them to the wrapped model's)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inspect.signature(base.forward).parameters


def drops_cache(model: torch.nn.Module) -> bool:
    """Whether ``model``'s forward would discard a KV cache: a layer has activation checkpointing on
    (transformers' ``gradient_checkpointing`` flag, also under LoRA wrappers), the model is in training
    mode and gradients are enabled.

    >>> drops_cache(torch.nn.Linear(1, 1))
    False
    """
    checkpointing = any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())
    return checkpointing and model.training and torch.is_grad_enabled()


def prompt_prefix(
    model: torch.nn.Module, batch: PackedBatch, key: str = "logits", detach: bool = False
) -> PromptPrefix | None:
    """Run ``batch``'s distinct prompts once; None when no prompt repeats or ``model`` cannot share them.

    ``detach=True`` makes leaves that accumulate the gradient of several micro-batches (call
    ``PromptPrefix.backward`` after the last one), so a step's prompts run forward and backward once
    however the rows are split. Under activation checkpointing (training mode, gradients on) transformers'
    layers drop any KV cache, so every row runs its own prompt instead (None).
    """
    cache_arg = cache_keyword(model)
    if cache_arg is None or drops_cache(model):
        return None
    from transformers import DynamicCache

    p = batch.prompt_width
    prompts = torch.cat([batch.input_ids[:, :p], batch.attention_mask[:, :p]], dim=1)  # [b, 2P]
    unique, inverse = torch.unique(prompts, dim=0, return_inverse=True)  # [U, 2P], [b]
    if unique.shape[0] == prompts.shape[0]:
        return None
    ids, mask = unique[:, :p], unique[:, p:]  # [U, P]
    config = getattr(model, "config", None)
    cache = DynamicCache(config=config)
    head = {"logits_to_keep": 1} if "logits_to_keep" in _forward_parameters(model) else {}
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=(mask.cumsum(dim=1) - 1).clamp(min=0),
        use_cache=True,
        **{cache_arg: cache},
        **head,
    )
    graph = (out[key][:, -1], *(t for layer in cache.layers for t in (layer.keys, layer.values)))
    leaves = tuple(t.detach().requires_grad_(t.requires_grad) for t in graph) if detach else graph
    return PromptPrefix(mask, inverse, graph, leaves, config, cache_arg)


def completion_outputs(
    model: torch.nn.Module, batch: PackedBatch, key: str, prefix: PromptPrefix | None = None
) -> torch.Tensor:
    """``model``'s per-position output ``key`` at the positions that predict each completion token.

    Position ``P - 1 + t`` sees the prompt and the first ``t`` completion tokens: its logits predict token
    ``t`` and, for a critic, its value is ``V(s_t)``. Positions count real tokens only (left padding does
    not shift RoPE positions), so values match what the rollout engine computed for the same weights.
    When rows share a prompt (a GRPO group), each distinct prompt runs once (``prompt_prefix``, or the
    given ``prefix`` of the whole batch) and its keys/values feed every row of the group, as the ``fast``
    engine decodes: a step of ``n`` prompts x ``G`` rows computes ``n`` prompts instead of ``n G``. The
    result is the same up to float rounding. Returns ``[b, T, ...]``.
    """
    prefix = prefix if prefix is not None else prompt_prefix(model, batch, key)
    if (
        prefix is not None
        and packs(model)
        and (out := _packed_outputs(model, batch, key, prefix)) is not None
    ):
        return out
    if prefix is None:
        positions = (batch.attention_mask.cumsum(dim=1) - 1).clamp(min=0)  # [b, P+T]
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=positions)
        return out[key][:, batch.prompt_width - 1 : -1]  # [b, T, ...]
    from transformers import DynamicCache

    rows, p = prefix.index, batch.prompt_width
    first = prefix.leaves[0][rows]  # [b, ...] predicts completion token 0
    if batch.input_ids.shape[1] == p + 1:  # one completion column: nothing more to run
        return first[:, None]
    cache = DynamicCache(config=prefix.config)
    keys, values = prefix.leaves[1::2], prefix.leaves[2::2]
    for layer, (k, v) in enumerate(zip(keys, values, strict=True)):
        cache.update(k[rows], v[rows], layer)  # [b, Hkv, P, Dh]: each row's prompt
    mask = torch.cat([prefix.mask[rows], batch.attention_mask[:, p:-1]], dim=1)  # [b, P_prefix + T-1]
    positions = (mask.cumsum(dim=1) - 1)[:, prefix.mask.shape[1] :]  # [b, T-1]
    out = model(
        input_ids=batch.input_ids[:, p:-1],
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        **{prefix.cache_arg: cache},
    )
    return torch.cat([first[:, None], out[key]], dim=1)  # [b, T, ...]


#: model types whose forward is known to carry ``r1zero.packed``'s keyword to the attention function and
#: to take a precomputed mask mapping (transformers' Llama/Qwen2 template)
PACKED_MODEL_TYPES = ("llama", "qwen2")


def packs(model: torch.nn.Module) -> bool:
    """Whether ``completion_outputs`` runs ``model``'s completions packed (``r1zero.packed``): the model is
    a Llama/Qwen2 on ``r1zero.gqa``'s attention (CPU learners).

    >>> packs(torch.nn.Linear(1, 1))
    False
    """
    config = getattr(model, "config", None)
    return (
        getattr(config, "_attn_implementation", None) == gqa.NAME
        and getattr(config, "model_type", None) in PACKED_MODEL_TYPES
        and not packed.is_disabled(model)
    )


def _packed_outputs(
    model: torch.nn.Module, batch: PackedBatch, key: str, prefix: PromptPrefix
) -> torch.Tensor | None:
    """``completion_outputs`` with the rows' completion tokens laid end to end (``r1zero.packed``).

    Row ``r`` runs its first ``n_r = len_r - 1`` completion tokens (the last one predicts nothing); the
    outputs go back to ``[b, T, ...]`` (zeros past each row's end). None, with a warning, when a layer's
    attention did not get the packing (a wrapper dropped the keyword): ``model`` is then not packed again.
    """
    p = batch.prompt_width
    width = batch.input_ids.shape[1] - p  # T
    first = prefix.leaves[0][prefix.index]  # [b, ...] predicts completion token 0
    counts = (batch.attention_mask[:, p:].sum(dim=1) - 1).clamp(min=0)  # [b] tokens each row runs
    if width == 1 or int(counts.sum()) == 0:
        rest = first.new_zeros(first.shape[0], width - 1, *first.shape[1:])
        return torch.cat([first[:, None], rest], dim=1)
    columns = torch.arange(width - 1, device=counts.device)
    real = columns[None] < counts[:, None]  # [b, T-1]
    prompt_lengths = prefix.mask.sum(dim=1)[prefix.index]  # [b]
    positions = (prompt_lengths[:, None] + columns[None])[real]  # [N]
    config = prefix.config
    groups = config.num_attention_heads // getattr(config, "num_key_value_heads", config.num_attention_heads)
    packing = packed.packing_for(
        counts.tolist(),
        prefix.index,
        prefix.mask,
        prefix.leaves[1::2],
        prefix.leaves[2::2],
        groups,
        fused=packed.uses_fused_attention(model),
    )
    try:
        out = model(
            input_ids=batch.input_ids[:, p:-1][real][None],
            # a 4-D mask passes through transformers' mask builders untouched; packed_attention masks itself
            attention_mask=torch.ones((1, 1, 1, 1), dtype=torch.bool, device=counts.device),
            position_ids=positions[None],
            use_cache=False,
            **{packed.KWARG: packing},
        )[key][0]  # [N, ...]
        error = ""
    except RuntimeError as e:  # no layer got the packing: its stand-in mask reached an attention
        if packing.layers_seen:
            raise
        error = f" ({e})"
    if sorted(packing.layers_seen) != list(range(config.num_hidden_layers)):
        log.warning(
            "%s did not pass packed rows to every attention layer (saw %s%s): running it padded",
            type(model).__name__,
            packing.layers_seen,
            error,
        )
        packed.disable(model)
        return None
    rows, cols = real.nonzero(as_tuple=True)
    rest = out.new_zeros(first.shape[0], width - 1, *out.shape[1:]).index_put((rows, cols), out)
    return torch.cat([first[:, None], rest], dim=1)  # [b, T, ...]


def sequence_logprobs(
    model: torch.nn.Module,
    batch: PackedBatch,
    temperature: float = 1.0,
    with_entropy: bool = False,
    prefix: PromptPrefix | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs ``[b, T]`` (and entropies) of the completion tokens under ``model``."""
    logits = completion_outputs(model, batch, "logits", prefix).float()  # [b, T, V]
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    targets = batch.input_ids[:, batch.prompt_width :]  # [b, T]
    logp = torch.log_softmax(logits, dim=-1)  # [b, T, V]
    token_logp = logp.gather(-1, targets[..., None]).squeeze(-1)  # [b, T]
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logp.exp() * logp).sum(-1)  # [b, T]
    return token_logp, entropy


@torch.no_grad()
def frozen_per_token(
    model: torch.nn.Module,
    batch: PackedBatch,
    micro_batch_size: int,
    per_token: Callable[[torch.nn.Module, PackedBatch, PromptPrefix | None], torch.Tensor],
) -> torch.Tensor:
    """``per_token(model, micro_batch, prefix)`` (``[b, t]``) over the whole batch without grad: ``[B, T]``.

    The step's distinct prompts run once (``prompt_prefix``) and serve every micro-batch.
    """
    width = batch.loss_mask.shape[1]
    prefix = prompt_prefix(model, batch)
    parts = []
    for i in range(0, batch.input_ids.shape[0], micro_batch_size):
        rows = slice(i, i + micro_batch_size)
        parts.append(per_token(model, batch.rows(rows), prefix_rows(prefix, rows)))
    return torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1])) for p in parts])  # [B, T]


def frozen_logprobs(
    model: torch.nn.Module, batch: PackedBatch, micro_batch_size: int, temperature: float
) -> torch.Tensor:
    """Log-probs ``[B, T]`` without grad (old policy for mu > 1, or the reference policy)."""
    return frozen_per_token(
        model,
        batch,
        micro_batch_size,
        lambda m, b, prefix: sequence_logprobs(m, b, temperature, prefix=prefix)[0],
    )


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


def split_rows(
    model: torch.nn.Module, lengths: Sequence[int], cap: int, prefix: PromptPrefix | None, fixed: bool = False
) -> list[slice]:
    """An update's micro-batches of at most ``cap`` rows (ascending ``lengths``): the fewest when the rows
    run packed (no padding to trade against calls) or ``fixed`` asks for fixed-size ones, else
    ``micro_batches``' split by length.

    >>> split_rows(torch.nn.Linear(1, 1), [1, 1, 2, 90], cap=2, prefix=None, fixed=True)
    [slice(0, 2, None), slice(2, 4, None)]
    """
    if fixed or (prefix is not None and packs(model)):
        return micro_batches([1] * len(lengths), cap, 0)
    return micro_batches(lengths, cap)


def prefix_rows(prefix: PromptPrefix | None, rows: slice) -> PromptPrefix | None:
    """``prefix.rows(rows)``, or None without a prefix."""
    return None if prefix is None else prefix.rows(rows)


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
) -> dict[str, float]:
    """Run ``algo.mu`` optimizer steps over one batch; return learner statistics for logging.

    With data parallelism each rank passes its own shard, the global sequence/token counts and its
    ``dist_info``: the gradients are summed over ranks before each optimizer step (every rank then takes
    the same step).
    """
    batch = batch.by_length()  # the loss is a sum over sequences: their order does not matter
    n = batch.input_ids.shape[0]
    sequences = global_sequences if global_sequences is not None else n
    tokens = global_tokens if global_tokens is not None else batch.loss_mask.sum().item()
    lengths = batch.attention_mask[:, batch.prompt_width :].sum(dim=1).tolist()  # ascending
    # bnpo normalises by each micro-batch's tokens: its micro-batches must keep their fixed size
    fixed = algo.loss_agg == "bnpo"
    old_logp = frozen_logprobs(model, batch, algo.micro_batch_size, temperature) if algo.mu > 1 else None
    sums = {"policy": 0.0, "kl": 0.0, "clip_low": 0.0, "clip_high": 0.0, "entropy": 0.0, "loss": 0.0}
    grad_norm = torch.zeros(())
    for _ in range(algo.mu):
        optimizer.zero_grad(set_to_none=True)
        # the step's distinct prompts run forward once here and backward once after the micro-batches
        prefix = prompt_prefix(model, batch, detach=True)
        for rows in split_rows(model, lengths, algo.micro_batch_size, prefix, fixed):
            micro = batch.rows(rows)
            logp, entropy = sequence_logprobs(
                model, micro, temperature, with_entropy=True, prefix=prefix_rows(prefix, rows)
            )  # [b, T]
            old = logp.detach() if old_logp is None else old_logp[rows, : logp.shape[1]]
            weights = (
                grpo.truncated_is_weights(old, micro.rollout_logp, algo.is_cap) if algo.is_cap > 0 else None
            )
            loss, stats = grpo.grpo_loss(
                logp,
                old,
                micro.advantages,
                micro.loss_mask,
                eps_low=algo.eps_low,
                eps_high=algo.eps_high,
                aggregation=algo.loss_agg,  # type: ignore[arg-type]
                max_len=max_len,
                beta=algo.beta,
                ref_logp=micro.ref_logp,
                kl_estimator=algo.kl_estimator,  # type: ignore[arg-type]
                is_weights=weights,
                num_sequences=sequences,
                num_tokens=tokens,
            )
            loss.backward()
            share = micro.loss_mask.sum().item() / max(batch.loss_mask.sum().item(), 1.0)
            for key in ("policy", "kl", "clip_low", "clip_high"):
                sums[key] += stats[key] * (1.0 if key == "policy" else share) / algo.mu
            sums["loss"] += loss.item() / algo.mu
            sums["entropy"] += grpo.masked_mean(entropy, micro.loss_mask).item() * share / algo.mu
        if prefix is not None:
            prefix.backward()
        all_reduce_grads(model.parameters(), dist_info)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            model.parameters(), grad_clip if grad_clip > 0 else float("inf")
        )
        optimizer.step()
    return {**sums, "grad_norm": float(grad_norm)}
