"""Fit a Bradley-Terry reward model on preference pairs (the RLHF reward model of InstructGPT, Ouyang et
al. 2022): a scalar head on the policy's own architecture, trained so ``r(chosen) > r(rejected)``.

The recipe, top to bottom: load pairs and hold out a fraction; load the base as a one-label
``AutoModelForSequenceClassification`` (a fresh linear head reads the last token's hidden state); train
with AdamW on ``-log sigmoid(r_chosen - r_rejected)``, both completions of a pair in one forward pass;
report held-out pairwise accuracy overall and per kind; save a Hugging Face directory plus ``rm.json``.
Seeded and deterministic on CPU for a fixed thread count.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from r1zero.reward_model.pairs import evaluate_pairs, load_pairs
from r1zero.reward_model.score import LearnedReward, encode_pairs, pad_batch

__all__ = [
    "RewardModelConfig",
    "bradley_terry_loss",
    "length_grouped_batches",
    "save_reward_model",
    "train_reward_model",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RewardModelConfig:
    """How to train a reward model (written to ``rm.json`` in the output directory)."""

    base: str = "tiny-base"
    """Model to start from: "tiny-base" (the policy's base), a local directory or a hub name."""
    epochs: int = 1
    """Passes over the training pairs."""
    lr: float = 3e-4
    """Peak AdamW learning rate (linear warm-up over the first 5% of steps, then linear decay to 0)."""
    batch_size: int = 32
    """Pairs per optimizer step (2 x batch_size sequences per forward pass)."""
    max_length: int = 256
    """Longest prompt + completion in tokens; longer ones lose the start of the prompt."""
    heldout_fraction: float = 0.1
    """Share of pairs held out to measure pairwise accuracy (0 = none)."""
    seed: int = 0
    """Seed of the head's initialisation, the held-out split and the batch order."""
    threads: int = 1
    """CPU threads for torch (0 = leave torch's setting). One by default: a 0.87M-parameter model's ops are
    too small to split over OpenMP threads, which wait at a barrier after each op and, on a machine whose
    other core is busy, run several times slower in wall time (same result)."""

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "lr": self.lr > 0,
            "batch_size": self.batch_size >= 1,
            "max_length": self.max_length >= 8,
            "heldout_fraction": 0.0 <= self.heldout_fraction < 1.0,
            "threads": self.threads >= 0,
        }
        allowed = {
            "epochs": ">= 1",
            "lr": "> 0",
            "batch_size": ">= 1",
            "max_length": ">= 8",
            "heldout_fraction": "in [0, 1)",
            "threads": ">= 0",
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"RewardModelConfig.{name}={getattr(self, name)!r}; allowed: {allowed[name]}"
                )


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Mean ``-log sigmoid(r_chosen - r_rejected)`` over pairs: the Bradley-Terry negative log-likelihood
    that ``chosen`` is preferred.

    >>> round(bradley_terry_loss(torch.tensor([0.0]), torch.tensor([0.0])).item(), 4)  # log 2
    0.6931
    >>> # (log(1 + e^-2) + log(1 + e^2)) / 2
    >>> round(bradley_terry_loss(torch.tensor([2.0, -1.0]), torch.tensor([0.0, 1.0])).item(), 4)
    1.1269
    """
    return -F.logsigmoid(chosen - rejected).mean()  # [B] -> []


def train_reward_model(
    pairs_path: str | Path, out_dir: str | Path, config: RewardModelConfig, progress: bool = True
) -> dict[str, Any]:
    """Train on the pairs in ``pairs_path``, save the model to ``out_dir`` and return its stats.

    ``out_dir`` gets ``config.json`` / ``model.safetensors`` / tokenizer files (load with
    ``LearnedReward.from_pretrained``) and ``rm.json`` (``{"config": ..., "stats": ...}``).
    """
    start = time.perf_counter()
    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        # 1. data: pairs, held-out split
        data = load_pairs(pairs_path)
        order = list(range(len(data)))
        random.Random(config.seed).shuffle(order)
        n_heldout = round(len(data) * config.heldout_fraction)
        heldout, train = data.select(sorted(order[:n_heldout])), data.select(sorted(order[n_heldout:]))
        if len(train) == 0:
            raise ValueError(f"{pairs_path}: no training pairs left after holding out {n_heldout}")

        # 2. model: the base with a fresh one-output head
        torch.manual_seed(config.seed)
        model, tokenizer = _load_base(config.base)
        reward = LearnedReward(model, tokenizer, max_length=config.max_length)
        stats: dict[str, Any] = {"pairs": len(data), "train_pairs": len(train), "heldout_pairs": n_heldout}

        # 3. train
        stats["history"] = _fit(model, tokenizer, train, config, progress)
        stats["train_loss"] = stats["history"][-1]["loss"]

        # 4. measure, save
        if n_heldout:
            stats["heldout"] = evaluate_pairs(reward, heldout)
        stats["wall_s"] = round(time.perf_counter() - start, 1)
        save_reward_model(model, tokenizer, out_dir, config, stats)
        return stats
    finally:
        torch.set_num_threads(previous_threads)


def _load_base(base: str) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from r1zero.models.loading import load_with_new_head, resolve_model_path

    path = resolve_model_path(base)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:  # e.g. Llama 3: pad with EOS (pooling finds the last non-pad token)
        tokenizer.pad_token = tokenizer.eos_token
    model = load_with_new_head(
        AutoModelForSequenceClassification,
        path,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        dtype=torch.float32,
    )
    return model, tokenizer


def _fit(model: Any, tokenizer: Any, train: Any, config: RewardModelConfig, progress: bool) -> list[dict]:
    """AdamW on the Bradley-Terry loss; returns the mean loss and accuracy of every logged stretch."""
    prompts = list(train["prompt"])
    chosen = encode_pairs(tokenizer, prompts, list(train["chosen"]), config.max_length)
    rejected = encode_pairs(tokenizer, prompts, list(train["rejected"]), config.max_length)
    steps_per_epoch = math.ceil(len(prompts) / config.batch_size)
    total = config.epochs * steps_per_epoch
    warmup = max(1, total // 20)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    rng = random.Random(f"rm-batches-{config.seed}")
    lengths = [max(len(c), len(r)) for c, r in zip(chosen, rejected, strict=True)]
    history, window = [], {"loss": 0.0, "accuracy": 0.0, "n": 0}
    log_every = max(1, total // 20)
    model.train()
    bar = tqdm(total=total, desc="reward model", unit="step", disable=not progress)
    for step in range(total):
        if step % steps_per_epoch == 0:
            batches = length_grouped_batches(lengths, config.batch_size, rng)
        idx = batches[step % steps_per_epoch]
        ids, mask = pad_batch([chosen[i] for i in idx] + [rejected[i] for i in idx], tokenizer.pad_token_id)
        rewards = model(input_ids=ids, attention_mask=mask).logits[:, 0]  # [2B]
        r_chosen, r_rejected = rewards[: len(idx)], rewards[len(idx) :]  # [B], [B]
        loss = bradley_terry_loss(r_chosen, r_rejected)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        window["loss"] += loss.item()
        window["accuracy"] += (r_chosen > r_rejected).float().mean().item()
        window["n"] += 1
        bar.update(1)
        if (step + 1) % log_every == 0 or step + 1 == total:
            n = window.pop("n")
            history.append({"step": step + 1, **{k: round(v / n, 4) for k, v in window.items()}})
            bar.set_postfix(loss=history[-1]["loss"], acc=history[-1]["accuracy"])
            window = {"loss": 0.0, "accuracy": 0.0, "n": 0}
    bar.close()
    model.eval()
    return history


def length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of indices whose lengths are close, so little of each batch is padding.

    Indices are shuffled, sorted by length within windows of 50 batches, cut into batches, and the batches
    shuffled (the length-grouped sampler of HF ``Trainer(group_by_length=True)``, simplified).

    >>> length_grouped_batches([5, 1, 4, 2, 3], 2, random.Random(0))  # lengths 1,2 | 3,4 | 5
    [[1, 3], [4, 2], [0]]
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = 50 * batch_size
    order = [
        i
        for w in range(0, len(order), window)
        for i in sorted(order[w : w + window], key=lengths.__getitem__)
    ]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def save_reward_model(
    model: Any, tokenizer: Any, out_dir: str | Path, config: RewardModelConfig, stats: dict[str, Any]
) -> Path:
    """Write a Hugging Face directory (model, tokenizer) plus ``rm.json`` (config and stats)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "rm.json").write_text(json.dumps({"config": asdict(config), "stats": stats}, indent=1) + "\n")
    log.info("saved reward model to %s", out)
    return out
