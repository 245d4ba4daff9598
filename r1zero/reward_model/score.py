"""``LearnedReward``: a trained reward model as a plain scorer of (prompt, completion) pairs.

The model is any ``AutoModelForSequenceClassification`` with one label and a ``pad_token_id`` in its
config: it pools the last non-pad token (transformers' rule, which works for left and right padding), so
the reward is read at the completion's last token. Sequences are right padded here, so positions start at
0 as in pretraining.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["DEFAULT_MAX_LENGTH", "LearnedReward", "encode_pairs", "pad_batch"]

#: Longest sequence (prompt + completion, in tokens) scored when the model directory does not say.
DEFAULT_MAX_LENGTH = 256


def encode_pairs(
    tokenizer: Any, prompts: Sequence[str], completions: Sequence[str], max_length: int
) -> list[list[int]]:
    """Token ids of ``prompt + completion``, cut from the left (after BOS) to at most ``max_length``.

    The completion is what is judged, so an over-long input loses the start of its prompt first.
    """
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    texts = [p + c for p, c in zip(prompts, completions, strict=True)]
    encoded = tokenizer(texts, add_special_tokens=True)["input_ids"]
    bos = tokenizer.bos_token_id
    out = []
    for ids in encoded:
        if len(ids) > max_length:
            keep_bos = bos is not None and ids[0] == bos
            ids = ([bos] if keep_bos else []) + ids[len(ids) - max_length + int(keep_bos) :]
        out.append(list(ids))
    return out


def pad_batch(sequences: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists into ``(input_ids, attention_mask)``, both ``[B, T]``.

    >>> pad_batch([[1, 5, 6], [1, 7]], pad_id=0)
    (tensor([[1, 5, 6],
            [1, 7, 0]]), tensor([[1, 1, 1],
            [1, 1, 0]]))
    """
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)  # [B, T]
    mask = torch.zeros((len(sequences), width), dtype=torch.long)  # [B, T]
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


class LearnedReward:
    """A frozen reward model: ``score(prompts, completions)`` -> one raw scalar reward each.

    Args:
        model: A sequence-classification model with ``num_labels=1`` and ``config.pad_token_id`` set.
        tokenizer: Its tokenizer (adds BOS; the padding side does not matter, padding is done here).
        max_length: Longest input in tokens; longer ones lose the start of the prompt.
    """

    def __init__(self, model: Any, tokenizer: Any, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        if model.config.pad_token_id is None:
            raise ValueError("the reward model's config needs a pad_token_id (to find each last token)")
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> LearnedReward:
        """Load a directory written by ``train_reward_model`` (its ``rm.json`` gives ``max_length``)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from r1zero.models.loading import own_storage

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"no reward model at {path} (no config.json); train one with 'r1zero rm train'"
            )
        model = own_storage(AutoModelForSequenceClassification.from_pretrained(path)).to(device).eval()
        model.requires_grad_(False)
        meta = path / "rm.json"
        max_length = DEFAULT_MAX_LENGTH
        if meta.is_file():
            max_length = json.loads(meta.read_text())["config"].get("max_length", DEFAULT_MAX_LENGTH)
        return cls(model, AutoTokenizer.from_pretrained(path), max_length=max_length)

    @torch.no_grad()
    def score(self, prompts: Sequence[str], completions: Sequence[str], batch_size: int = 64) -> list[float]:
        """The reward of each ``prompts[i] + completions[i]``, in order (no gradients, batched)."""
        sequences = encode_pairs(self.tokenizer, prompts, completions, self.max_length)
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))  # similar lengths together
        scores = [0.0] * len(sequences)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = pad_batch([sequences[i] for i in idx], self.model.config.pad_token_id)  # [B, T]
            logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits  # [B, 1]
            for i, value in zip(idx, logits[:, 0].float().tolist(), strict=True):
                scores[i] = value
        self.model.train(was_training)
        return scores
