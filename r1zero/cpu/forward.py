"""The learner's packed forward: a micro-batch's completion tokens laid end to end as one sequence.

``packed_outputs`` is what ``r1zero.train.forward.completion_outputs`` asks for on CPU: one forward over
the ``N`` real completion tokens of the rows, each attending over its prompt's shared keys/values and
its own earlier tokens (``r1zero.cpu.packed``), instead of every row padded to the longest.
"""

from __future__ import annotations

import logging

import torch

from r1zero.algo.batch import PackedBatch, PromptPrefix
from r1zero.cpu import attention, packed

__all__ = ["PACKED_MODEL_TYPES", "packed_outputs", "runs_packed"]

log = logging.getLogger(__name__)

#: model types whose forward is known to carry ``packed.KWARG`` to the attention function and
#: to take a precomputed mask mapping (transformers' Llama/Qwen2 template)
PACKED_MODEL_TYPES = ("llama", "qwen2")


def runs_packed(model: torch.nn.Module) -> bool:
    """Whether ``model``'s completions run packed: a Llama/Qwen2 on the folded attention
    (``r1zero.cpu.attention``) whose packing was not switched off.

    >>> runs_packed(torch.nn.Linear(1, 1))
    False
    """
    config = getattr(model, "config", None)
    return (
        getattr(config, "_attn_implementation", None) == attention.NAME
        and getattr(config, "model_type", None) in PACKED_MODEL_TYPES
        and not packed.is_disabled(model)
    )


def packed_outputs(
    model: torch.nn.Module, batch: PackedBatch, key: str, prefix: PromptPrefix
) -> torch.Tensor | None:
    """``model``'s output ``key`` at the completion positions of ``batch`` (``[b, T, ...]``), with the
    rows' completion tokens laid end to end; None when ``model`` does not run packed (``runs_packed``).

    Row ``r`` runs its first ``n_r = len_r - 1`` completion tokens (the last one predicts nothing) over
    its prompt's keys/values in ``prefix``; the outputs go back to ``[b, T, ...]`` (zeros past each row's
    end). None too, with a warning, when a layer's attention did not get the packing (a wrapper dropped
    the keyword): ``model`` is then not packed again.
    """
    if not runs_packed(model):
        return None
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
