"""Build what the recipe needs from a config: problems, prompts, the policy, engines, verification.

Every function here touches the other parts of the package (data, models, rollout, verifiers) through
their public entry points, so the recipe itself reads as a list of steps.
"""

from __future__ import annotations

import importlib
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from r1zero.data.problem import Problem
from r1zero.train.config import TrainConfig, resolved_compute_dtype
from r1zero.verifiers import Verdict, verify_batch
from r1zero.verifiers.reward import RewardWeights, apply_weights

__all__ = [
    "load_model",
    "load_problems_for",
    "make_engine",
    "render_prompts",
    "resolve_device",
    "reward_weights",
    "rollout_replica",
    "shard_for_training",
    "split_heldout",
    "verify",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- problems and prompts
def load_problems_for(
    config: TrainConfig, heldout: bool = False, exclude: Sequence[Problem] = ()
) -> list[Problem]:
    """Training or held-out problems: a registered generator, or a file / dataset via r1zero.data.

    Problems whose question is in ``exclude`` (the training set, for held-out problems) are dropped.
    With no ``data.heldout_source``, a generator's held-out problems come from another seed, while a
    file's or dataset's rows are split: ``data.heldout_size`` of them (all but one when there are
    fewer), chosen by a shuffle seeded with ``run.seed``, are held out and the others train
    (see ``split_heldout``).
    """
    data = config.data
    source = (data.heldout_source or data.source) if heldout else data.source
    from r1zero.data.generators import available_generators, generate

    if source in available_generators():
        n = data.heldout_size if heldout else data.train_size
        # held-out problems use another seed (and ``exclude`` removes any question shared with training)
        seed = config.run.seed + (1_000_003 if heldout else 0)
        try:
            problems = generate(source, n, data.difficulty or None, seed=seed)
        except ValueError as exc:
            raise ValueError(f"--data.source {source!r}: {exc}") from None
    else:
        problems = _load_source(source)
        if not data.heldout_source and data.heldout_size:
            train_part, heldout_part = split_heldout(problems, data.heldout_size, config.run.seed, source)
            if heldout:
                log.info(
                    "held-out: %d of %d rows of %s, seed %d; the other %d train",
                    len(heldout_part),
                    len(problems),
                    source,
                    config.run.seed,
                    len(train_part),
                )
            problems = heldout_part if heldout else train_part
        elif heldout and data.heldout_size:
            problems = problems[: data.heldout_size]
    seen = {p.question for p in exclude}
    problems = [p for p in problems if p.question not in seen]
    if data.verifier:
        problems = [Problem(p.id, p.question, p.answer, data.verifier, p.meta) for p in problems]
    if not problems:
        why = " (every one is also a training problem)" if heldout and exclude else ""
        raise ValueError(
            f"data source {source!r} gave no {'held-out' if heldout else 'training'} problems{why}"
        )
    return problems


def _load_source(source: str) -> list[Problem]:
    from r1zero.data.generators import available_generators

    loader = getattr(importlib.import_module("r1zero.data"), "load_problems", None)
    if loader is None:
        raise ValueError(f"data source {source!r} is not a generator ({', '.join(available_generators())})")
    return list(loader(source))


def split_heldout(
    problems: Sequence[Problem], size: int, seed: int, source: str = "the data"
) -> tuple[list[Problem], list[Problem]]:
    """``(train, heldout)``: ``size`` problems (all but one when there are not more than that) picked by
    a shuffle seeded with ``seed``, disjoint by id; both keep the file's order.

    >>> rows = [Problem(str(i), f"q{i}", str(i), "integer") for i in range(5)]
    >>> train, heldout = split_heldout(rows, 2, seed=0)
    >>> len(train), len(heldout), {p.id for p in train} & {p.id for p in heldout}
    (3, 2, set())
    >>> [len(part) for part in split_heldout(rows, 64, seed=0)]
    [1, 4]
    """
    from r1zero.data.problem import DataError

    if len(problems) < 2:
        raise DataError(
            f"has {len(problems)} row; splitting off a held-out set needs at least 2 (one to train on). "
            "Add rows, pass --data.heldout_source FILE, or --data.heldout_size 0 for no evaluation",
            file=source,
        )
    ids = sorted({p.id for p in problems})
    random.Random(seed).shuffle(ids)
    chosen = set(ids[: min(size, len(ids) - 1)])
    train = [p for p in problems if p.id not in chosen]
    heldout = [p for p in problems if p.id in chosen]
    return train, heldout


def render_prompts(config: TrainConfig, problems: Sequence[Problem], tokenizer: Any) -> list[str]:
    """Prompts for ``problems`` with the configured template (the same code path as ``r1zero eval``;
    "tiny-demo" is tiny-base's own short R1-Zero template)."""
    from r1zero.eval.harness import render_prompts as render

    prompts, _ = render(problems, config.data.template, config.data.think_prefix, tokenizer)
    return prompts


def check_context(config: TrainConfig, problems: Sequence[Problem], tokenizer: Any, model: Any) -> None:
    """Refuse, before the first step, problems whose prompt plus ``rollout.max_new_tokens`` exceeds the
    model's positions (the ``fast`` engine would fail mid-run, ``hf`` decode past its trained positions).

    Only the longest questions are rendered and tokenized (the longest prompt is among them), so a large
    training set costs nothing noticeable.
    """
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if not context or not problems:
        return
    longest = sorted(problems, key=lambda p: len(p.question), reverse=True)[:32]
    lengths = [len(tokenizer(text)["input_ids"]) for text in render_prompts(config, longest, tokenizer)]
    worst = max(range(len(longest)), key=lambda i: lengths[i])
    if lengths[worst] + config.rollout.max_new_tokens > context:
        raise ValueError(
            f"problem {longest[worst].id!r}: its prompt ({lengths[worst]} tokens) plus rollout.max_new_tokens "
            f"({config.rollout.max_new_tokens}) exceeds the model's {context} positions; lower "
            "--rollout.max_new_tokens, use a shorter --data.template, or drop the longest problems"
        )


# ---------------------------------------------------------------- model and engine
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_model(
    name: str, dtype: str, device: torch.device, gradient_checkpointing: bool = False
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a local directory, a hub name or ``tiny-base`` (via ``load_policy``)."""
    from r1zero.models.loading import load_policy

    return load_policy(name, dtype=dtype, device=str(device), gradient_checkpointing=gradient_checkpointing)


def shard_for_training(config: TrainConfig, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` sharded with FSDP2 over the process group (``model.sharding fsdp``): computing in
    ``model.compute_dtype``, offloaded to CPU memory with ``model.cpu_offload``. Every rank must hold the
    same weights first (``broadcast_parameters``)."""
    from r1zero.models.loading import DTYPES
    from r1zero.train.sharding import shard_model

    if config.model.cpu_offload and device.type != "cuda":
        raise ValueError(
            f"--model.cpu_offload keeps a GPU model's shards in CPU memory; the model is on {device.type} "
            "(set --model.device cuda, or drop --model.cpu_offload)"
        )
    compute = DTYPES[resolved_compute_dtype(config.model)]
    return shard_model(model, device=device, compute_dtype=compute, cpu_offload=config.model.cpu_offload)


def rollout_replica(config: TrainConfig, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The unsharded copy a sharded learner's rollout engine generates from, made before sharding: in
    the compute dtype, on ``device`` (on CPU for vllm, which only writes it to disk for its own copy)."""
    from r1zero.models.loading import DTYPES
    from r1zero.train.sharding import unsharded_copy

    where = torch.device("cpu") if config.rollout.backend == "vllm" else device
    return unsharded_copy(model, DTYPES[resolved_compute_dtype(config.model)], where)


def make_engine(
    config: TrainConfig, model: torch.nn.Module, tokenizer: Any, replica: torch.nn.Module | None = None
) -> Any:
    """The rollout engine named by ``rollout.backend`` (``r1zero.rollout.<backend>``), on ``model``; on a
    sharded learner's unsharded ``replica`` instead, refreshed with full weights at each ``load_weights``."""
    from r1zero.rollout import build_engine
    from r1zero.train.sharding import FullWeightsEngine

    if replica is not None:
        return FullWeightsEngine(make_engine(config, replica, tokenizer), replica)
    r = config.rollout
    options: dict[str, Any] = {}
    if r.backend == "vllm":
        options = {
            "gpu_memory_utilization": r.gpu_memory_utilization,
            "tensor_parallel_size": r.tensor_parallel,
            "dtype": resolved_compute_dtype(config.model),
        }
    elif r.backend == "vllm-server":
        options = {"url": r.url}
    elif r.backend == "fast":
        c = config.cpu
        options = {
            "decode_threads": r.decode_threads,
            "onednn": c.onednn if c.enabled else False,
            "native": c.enabled and c.native_decode,
        }
    return build_engine(r.backend, model, tokenizer, **options)


# ---------------------------------------------------------------- rewards
def reward_weights(config: TrainConfig) -> RewardWeights:
    r = config.reward
    return RewardWeights(r.correct, r.wrong, r.format_bonus, r.format_penalty, r.require_format)


def verify(config: TrainConfig, problems: Sequence[Problem], texts: Sequence[str]) -> list[Verdict]:
    """Score ``texts[i]`` against ``problems[i]`` in the verifier process pool, then apply reward weights."""
    verdicts: list[Verdict | None] = [None] * len(texts)
    by_name: dict[str, list[int]] = {}
    for i, p in enumerate(problems):
        by_name.setdefault(p.verifier, []).append(i)
    for name, idx in by_name.items():
        responses, golds = [texts[i] for i in idx], [problems[i].answer for i in idx]
        metas = [problems[i].meta for i in idx]
        out = verify_batch(
            name, responses, golds, metas=metas, workers=config.reward.workers, timeout=config.reward.timeout
        )
        for i, verdict in zip(idx, out, strict=True):
            verdicts[i] = verdict
    weights = reward_weights(config)
    return [apply_weights(v, weights) for v in verdicts if v is not None]


def run_dir_of(config: TrainConfig) -> Path:
    return Path(config.run.out_dir) / config.run.name
