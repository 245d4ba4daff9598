"""``r1zero pretrain --preset tiny-base``: the recipe that produces the shipped tiny-base checkpoint.

Reads top to bottom: build the tokenizer and the corpus, pack it into fixed windows, train a
``LlamaForCausalLM`` with AdamW and a warmup + cosine schedule, save a Hugging Face checkpoint
(safetensors + config + tokenizer), measure the step-0 behaviour on the demo task, write the model card.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from r1zero.models import TINY_BASE_DIR
from r1zero.models.card import describe_config, write_model_card
from r1zero.models.corpus import CorpusSpec, build_corpus
from r1zero.models.loading import resolve_model_path
from r1zero.models.tiny import build_tokenizer, tiny_config

__all__ = ["PRESETS", "PretrainConfig", "main", "override_corpus", "pack_corpus", "pretrain"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of one pretraining run."""

    steps: int = 1200
    """Optimizer steps (the schedule and the result depend on it; ``--minutes`` only caps wall time)."""
    batch_size: int = 32
    """Windows per step."""
    seq_len: int = 256
    """Tokens per window; the demo prompt + response must fit inside."""
    lr: float = 3e-3
    """Peak learning rate of AdamW."""
    min_lr_ratio: float = 0.05
    """Final learning rate as a share of the peak (cosine decay)."""
    warmup_steps: int = 100
    """Linear warmup steps."""
    weight_decay: float = 0.1
    """AdamW weight decay (matrices only; norms and embeddings are not decayed)."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    seed: int = 0
    """Seed of the corpus, the initialisation and the batch order."""
    model_overrides: tuple[tuple[str, object], ...] = ()
    """``tiny_config`` overrides as (field, value) pairs (tests use smaller models)."""
    corpus: CorpusSpec = field(default_factory=CorpusSpec)
    """The corpus mixture."""
    probe_samples: int = 512
    """Demo-task samples drawn at temperature 1 for the model card's step-0 figures (0 skips the probe)."""
    init_from: str = ""
    """Continue pretraining from this checkpoint ("tiny-base" or a directory) instead of a fresh
    initialisation ("" = from scratch; ``model_overrides`` then do not apply)."""


#: Named presets; ``tiny-base`` reproduces the shipped checkpoint.
PRESETS: dict[str, PretrainConfig] = {
    "tiny-base": PretrainConfig(),
    # the base of the cpu-aha preset (docs/aha.md): tiny-base, pretrained further on a corpus where every
    # answer starts as a direct guess (sloppy half the time) and a few guesses go on with a check that
    # works the sum out; no answer starts with a worked chain
    "tiny-aha": PretrainConfig(
        steps=600,
        lr=1e-3,
        warmup_steps=20,
        seed=1,
        init_from="tiny-base",
        corpus=CorpusSpec(
            wait_share=0.0, worked_share_plain=0.0, worked_share_tagged=0.0, guess_check_share=0.08
        ),
    ),
    # the first self-checking attempts (docs/aha.md): worked chains sometimes slip, a few slips are
    # re-checked and repaired, a few right steps re-checked
    "tiny-aha-slips": PretrainConfig(
        steps=300,
        lr=1e-3,
        warmup_steps=20,
        seed=1,
        init_from="tiny-base",
        corpus=CorpusSpec(wait_share=0.0, slip_share=0.25, check_share=0.1, confirm_share=0.04),
    ),
    "smoke": PretrainConfig(
        steps=4,
        batch_size=4,
        seq_len=64,
        warmup_steps=1,
        model_overrides=(("num_hidden_layers", 1), ("hidden_size", 32), ("intermediate_size", 64)),
        probe_samples=4,
    ),
}


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Learning rate at ``step`` (0-based): linear warmup, then cosine down to ``min_lr_ratio * lr``.

    >>> cfg = PretrainConfig(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.0)
    >>> lr_at(0, cfg), lr_at(9, cfg), round(lr_at(55, cfg), 3), lr_at(100, cfg)
    (0.1, 1.0, 0.5, 0.0)
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def override_corpus(spec: CorpusSpec, items: list[str]) -> CorpusSpec:
    """``spec`` with ``FIELD=VALUE`` overrides (a tuple field takes comma-separated words; an optional
    number takes ``none``).

    >>> override_corpus(CorpusSpec(), ["slip_share=0.3", "check_phrases=wait,verify"]).check_phrases
    ('wait', 'verify')
    >>> override_corpus(CorpusSpec(), ["slips=0.3"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: unknown corpus field 'slips'; valid: list_sum_share, ...
    """
    names = [f.name for f in dataclasses.fields(CorpusSpec)]
    optional = {f.name for f in dataclasses.fields(CorpusSpec) if "None" in str(f.type)}  # float | None
    changes: dict[str, object] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in names:
            raise ValueError(f"unknown corpus field {name!r}; valid: {', '.join(names)}")
        default = getattr(spec, name)
        try:
            if isinstance(default, tuple):
                changes[name] = tuple(w.strip() for w in value.split(",") if w.strip())
            elif name in optional:
                changes[name] = None if value.strip().lower() == "none" else float(value)
            else:
                changes[name] = type(default)(value)
        except ValueError:
            raise ValueError(f"corpus field {name}={value!r} is not a {type(default).__name__}") from None
    return dataclasses.replace(spec, **changes)


def pack_corpus(tokenizer: PreTrainedTokenizerFast, cfg: PretrainConfig) -> torch.Tensor:
    """Tokenize enough corpus documents for the run and pack them into windows ``[steps * batch, seq_len]``.

    Each document is ``BOS text EOS``; documents run on across window boundaries, as in GPT-style packing.
    """
    need = cfg.steps * cfg.batch_size * cfg.seq_len
    ids: list[int] = []
    seed = cfg.seed
    while len(ids) < need:
        texts = [doc.text for doc in build_corpus(max(1000, need // 60), seed=seed, spec=cfg.corpus)]
        for row in tokenizer(texts)["input_ids"]:  # BOS is added by the tokenizer
            ids.extend(row)
            ids.append(tokenizer.eos_token_id)
        seed += 1_000_003  # a further, disjoint stream if the first draw was short
    windows = torch.tensor(ids[:need], dtype=torch.long).view(-1, cfg.seq_len)  # [steps*B, T]
    order = torch.randperm(windows.shape[0], generator=torch.Generator().manual_seed(cfg.seed))
    return windows[order]


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def pretrain(cfg: PretrainConfig, max_minutes: float | None = None) -> tuple[LlamaForCausalLM, dict]:
    """Train tiny-base from scratch; returns the model and run statistics (losses, tokens, time)."""
    # --- setup: seeds, tokenizer, model, data
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    tokenizer = build_tokenizer()
    if cfg.init_from:
        model = LlamaForCausalLM.from_pretrained(resolve_model_path(cfg.init_from))
    else:
        model = LlamaForCausalLM(tiny_config(**dict(cfg.model_overrides)))
    windows = pack_corpus(tokenizer, cfg)  # [steps*B, T]
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95))
    # --- train
    model.train()
    start, losses, steps_done = time.time(), [], 0
    bar = tqdm(range(cfg.steps), desc="pretrain", unit="step")
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = windows[step * cfg.batch_size : (step + 1) * cfg.batch_size]  # [B, T]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        steps_done = step + 1
        elapsed = time.time() - start
        bar.set_postfix(
            loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}",
            tok_s=f"{steps_done * batch.numel() / elapsed:.0f}",
        )
        if max_minutes is not None and elapsed > 60 * max_minutes:
            logger.warning(
                "stopping at step %d of %d: --minutes %.1f reached", steps_done, cfg.steps, max_minutes
            )
            break
    model.eval()
    tail = losses[-50:]
    stats = {
        "steps": steps_done,
        "tokens": steps_done * cfg.batch_size * cfg.seq_len,
        "final_loss": sum(tail) / len(tail),
        "first_step_loss": losses[0] if losses else None,
        "last_step_loss": losses[-1] if losses else None,
        "wall_seconds": round(time.time() - start, 1),
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "architecture": describe_config(model.config),
        "loss_curve": [
            round(sum(losses[i : i + 50]) / len(losses[i : i + 50]), 4) for i in range(0, len(losses), 50)
        ],
    }
    return model, stats


def save_checkpoint(model: LlamaForCausalLM, out: Path, cfg: PretrainConfig, stats: dict) -> None:
    """Write a Hugging Face checkpoint (safetensors, config, tokenizer) and the run's settings to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.pad_token_id = 0
    model.save_pretrained(out, safe_serialization=True)
    build_tokenizer().save_pretrained(out)
    record = {"config": dataclasses.asdict(cfg), "stats": stats}
    (out / "pretrain.json").write_text(json.dumps(record, indent=2) + "\n")


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="r1zero pretrain", description="Pretrain the built-in tiny base model."
    )
    parser.add_argument("--preset", default="tiny-base", choices=sorted(PRESETS), help="recipe preset")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output dir (default: runs/pretrain-<preset>; the shipped one is {TINY_BASE_DIR})",
    )
    parser.add_argument(
        "--minutes", type=float, default=None, help="wall-clock cap; stops early (the result then differs)"
    )
    parser.add_argument("--seed", type=int, default=None, help="override the preset's seed")
    parser.add_argument("--steps", type=int, default=None, help="override the preset's step count")
    parser.add_argument(
        "--corpus",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a CorpusSpec field of the preset, e.g. --corpus slip_share=0.3 (repeatable)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: available cores)")
    parser.add_argument(
        "--force", action="store_true", help="write into --out even when it already holds files"
    )
    return parser.parse_args(argv)


def _check_args(args: argparse.Namespace, out: Path) -> str | None:
    """What is wrong with the command line (a flag and its value), or None."""
    if args.minutes is not None and not (math.isfinite(args.minutes) and args.minutes > 0):
        return f"--minutes must be a number > 0, got {args.minutes}"
    for flag, value in (("--steps", args.steps), ("--threads", args.threads)):
        if value is not None and value < 1:
            return f"{flag} must be >= 1, got {value}"
    if out.exists() and not out.is_dir():
        return f"--out {out} exists and is not a directory"
    if out.is_dir() and any(out.iterdir()) and not args.force:
        return f"--out {out} already exists and is not empty; pass --force to overwrite it"
    return None


def main(argv: list[str]) -> int:
    """Command-line entry: ``r1zero pretrain --preset tiny-base [--out DIR [--force]] [--minutes M] [--seed S]``."""
    args = _parse(argv)
    out = args.out or Path("runs") / f"pretrain-{args.preset}"
    problem = _check_args(args, out)
    if problem:
        print(f"r1zero pretrain: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = PRESETS[args.preset]
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    try:
        cfg = dataclasses.replace(cfg, corpus=override_corpus(cfg.corpus, args.corpus))
    except ValueError as exc:
        print(f"r1zero pretrain: --corpus: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads or _available_cores())
    model, stats = pretrain(cfg, max_minutes=args.minutes)
    save_checkpoint(model, out, cfg, stats)
    probe = None
    if cfg.probe_samples:
        from r1zero.models.probe import probe_base

        probe = probe_base(model, build_tokenizer(), n=cfg.probe_samples, seed=cfg.seed)
        write_model_card(out, cfg, stats, probe)
    logger.info(
        "wrote %s: %d steps, final loss %.4f, %.1f min",
        out,
        stats["steps"],
        stats["final_loss"],
        stats["wall_seconds"] / 60,
    )
    if probe is not None:
        logger.info("step-0 probe: %s", json.dumps({k: v for k, v in probe.items() if k != "examples"}))
    return 0
