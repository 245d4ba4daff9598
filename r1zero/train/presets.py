"""Named training presets: the CPU demo and the headline published configurations.

Each preset is a function returning a full ``TrainConfig``; command-line overrides go on top. GPU
presets state the hardware they assume; ``r1zero plan --preset NAME --gpus N`` prints their memory per
GPU and whether it fits (``r1zero.train.plan``); ``r1zero train --preset NAME --dry-run`` resolves every
name a preset uses (``check_data``) and prints that table. GPU presets train on a train split and hold
out another set (docs/presets.md compares each with its paper). The figures they target are the papers'
own, not something these presets have reproduced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from r1zero.train.config import (
    AlgoConfig,
    CriticConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RewardConfig,
    RolloutConfig,
    RunConfig,
    TrainConfig,
    validate,
)

__all__ = ["PRESETS", "PRESET_GPUS", "TINY_AHA_DIR", "check_data", "check_model", "get_preset"]


def _gpu_model(name: str) -> ModelConfig:
    """The GPU presets' learner: FSDP2-sharded over the ranks, float32 master weights and AdamW state,
    bf16 compute, activation checkpointing (verl's setup). With bf16 weights an AdamW update of 1e-6
    rounds away on most entries, and a 7B model's unsharded bf16 weights, gradients and AdamW state
    (57 GiB) leave too little of an 80 GB GPU for vLLM (``r1zero plan``)."""
    return ModelConfig(
        name=name, dtype="float32", compute_dtype="bfloat16", sharding="fsdp", gradient_checkpointing=True
    )


def cpu_demo() -> TrainConfig:
    """R1-Zero in miniature on 2 CPU cores: tiny-base on sums of digit lists, strict R1-Zero reward.

    Settings follow the zero-RL check in tiny-base's model card (``r1zero/assets/tiny-base/README.md``):
    16 prompts x 8 samples, lr 1e-4, a small KL (beta 0.01), a token-mean loss, T = 1, no format bonus.
    The prompt ends at "Assistant:" (no "<think>"), as in the paper, so the format is the model's to
    discover. Worked chains take over within ~20 steps; T = 1 accuracy then plateaus near 0.9, where most
    groups are all-correct and carry no gradient, so DAPO dynamic sampling (drop zero-variance groups and
    refill) keeps the later steps informative. ~5 minutes on 2 cores.
    """
    return TrainConfig(
        model=ModelConfig(name="tiny-base"),
        data=DataConfig(source="list_sum", template="tiny-demo", think_prefix=False, heldout_size=128),
        rollout=RolloutConfig(backend="fast", prompts_per_step=16, group_size=8, max_new_tokens=128),
        reward=RewardConfig(require_format=True),
        algo=AlgoConfig(loss_agg="dapo", beta=0.01, micro_batch_size=64, dynamic_sampling=True),
        optim=OptimConfig(lr=1e-4, grad_clip=1.0),
        run=RunConfig(name="demo", steps=120, eval_every=10, save_every=40),
        preset="cpu-demo",
    )


def r1zero_paper() -> TrainConfig:
    """DeepSeek-R1-Zero recipe (GRPO, accuracy + format reward) at a size one node can run.

    The paper trains DeepSeek-V3-Base (671B); this preset keeps its algorithm (group-std advantages,
    sequence-mean loss, eps 0.2, k3 KL, rule rewards only) on Qwen2.5-7B. Assumes 8x80 GB GPUs with vLLM
    colocated (memory: ``r1zero plan --preset r1zero-paper --gpus 8``).
    """
    return TrainConfig(
        model=_gpu_model("Qwen/Qwen2.5-7B"),
        data=DataConfig(source="math:train", heldout_source="math500", heldout_size=500, template="r1zero"),
        rollout=RolloutConfig(backend="vllm", prompts_per_step=64, group_size=16, max_new_tokens=4096),
        reward=RewardConfig(format_bonus=0.1, require_format=True, workers=8),
        algo=AlgoConfig(advantage="group", loss_agg="grpo", beta=0.001, micro_batch_size=4),
        optim=OptimConfig(lr=1e-6, weight_decay=0.01),
        run=RunConfig(name="r1zero-paper", steps=1000, eval_every=50, save_every=50),
        preset="r1zero-paper",
    )


def dr_grpo() -> TrainConfig:
    """Dr. GRPO / Oat-Zero-7B (Liu et al. 2025): Qwen2.5-Math-7B, no std scaling, constant normaliser.

    beta = 0, lr 1e-6, G = 8, T = 1, MATH levels 3-5, 3000-token responses (paper: AIME24 43.3%).
    Assumes 8x80 GB GPUs, no reference model (memory: ``r1zero plan --preset dr-grpo --gpus 8``).
    """
    return TrainConfig(
        model=_gpu_model("Qwen/Qwen2.5-Math-7B"),
        data=DataConfig(
            source="math:train,level=3-5", heldout_source="aime24", heldout_size=30, template="r1zero"
        ),
        rollout=RolloutConfig(backend="vllm", prompts_per_step=128, group_size=8, max_new_tokens=3000),
        reward=RewardConfig(require_format=False, workers=8),
        algo=AlgoConfig(advantage="none", loss_agg="dr_grpo", beta=0.0, micro_batch_size=4),
        optim=OptimConfig(lr=1e-6),
        run=RunConfig(name="dr-grpo", steps=400, eval_every=20, save_every=50),
        preset="dr-grpo",
    )


def dapo() -> TrainConfig:
    """DAPO (Yu et al. 2025): clip-higher 0.28, token-mean loss, dynamic sampling, overlong shaping, beta 0.

    The paper: Qwen2.5-32B on DAPO-Math-17k, G = 16, 512 prompts, 20k max tokens (4k buffer), AIME24 50.
    This preset keeps the algorithm on Qwen2.5-7B with 8k tokens; assumes 8x80 GB GPUs (memory:
    ``r1zero plan --preset dapo --gpus 8``).
    """
    return TrainConfig(
        model=_gpu_model("Qwen/Qwen2.5-7B"),
        data=DataConfig(source="dapo17k", heldout_source="aime24", heldout_size=30, template="r1zero"),
        rollout=RolloutConfig(backend="vllm", prompts_per_step=128, group_size=16, max_new_tokens=8192),
        reward=RewardConfig(correct=1.0, wrong=-1.0, require_format=False, overlong_buffer=2048, workers=8),
        algo=AlgoConfig(
            advantage="group",
            loss_agg="dapo",
            eps_high=0.28,
            beta=0.0,
            dynamic_sampling=True,
            micro_batch_size=2,
        ),
        optim=OptimConfig(lr=1e-6, warmup_steps=10, weight_decay=0.1),
        run=RunConfig(name="dapo", steps=500, eval_every=25, save_every=50),
        preset="dapo",
    )


def simplerl_zoo() -> TrainConfig:
    """SimpleRL-Zoo (Zeng et al. 2025): GRPO on 8K MATH problems with KL 1e-4, Qwen2.5-Math-7B.

    Paper: average of six benchmarks 37.2 -> 59.5. G = 8, 1024 prompts x 8 per step in the paper; here
    128 prompts. Assumes 8x80 GB GPUs, with the reference model (memory:
    ``r1zero plan --preset simplerl-zoo --gpus 8``).
    """
    return TrainConfig(
        model=_gpu_model("Qwen/Qwen2.5-Math-7B"),
        data=DataConfig(
            source="math:train,level=3-5",
            heldout_source="math500",
            heldout_size=500,
            template="qwen-math",
            think_prefix=False,
        ),
        rollout=RolloutConfig(backend="vllm", prompts_per_step=128, group_size=8, max_new_tokens=4096),
        reward=RewardConfig(require_format=False, workers=8),
        algo=AlgoConfig(advantage="group", loss_agg="grpo", beta=1e-4, micro_batch_size=4),
        optim=OptimConfig(lr=1e-6),
        run=RunConfig(name="simplerl-zoo", steps=100, eval_every=10, save_every=20),
        preset="simplerl-zoo",
    )


def countdown_3b() -> TrainConfig:
    """TinyZero-style Countdown on Qwen2.5-3B (base), R1-Zero template, strict format.

    Assumes 2x80 GB GPUs, 1k-token responses (memory: ``r1zero plan --preset countdown-3b --gpus 2``).
    """
    return TrainConfig(
        model=_gpu_model("Qwen/Qwen2.5-3B"),
        data=DataConfig(
            source="countdown", difficulty="4", train_size=50000, heldout_size=256, template="r1zero"
        ),
        rollout=RolloutConfig(backend="vllm", prompts_per_step=64, group_size=8, max_new_tokens=1024),
        reward=RewardConfig(format_bonus=0.1, require_format=True, workers=4),
        algo=AlgoConfig(advantage="group", loss_agg="grpo", beta=0.001, micro_batch_size=8),
        optim=OptimConfig(lr=1e-6),
        run=RunConfig(name="countdown-3b", steps=300, eval_every=25, save_every=50),
        preset="countdown-3b",
    )


def cpu_demo_ppo() -> TrainConfig:
    """The CPU demo with PPO and a critic instead of GRPO: the comparison of docs/ppo_vs_grpo.md.

    Same model, task, template, reward, rollouts per step (16 x 8), token-mean loss, lr and steps as
    ``cpu-demo``; Open-Reasoner-Zero's estimator settings (GAE lambda = 1, gamma = 1, no KL). The critic
    is a second tiny-base with a zero-initialised value head; no dynamic sampling (equal-reward groups
    still carry PPO signal through the critic's baseline).
    """
    base = cpu_demo()
    return replace(
        base,
        algo=replace(base.algo, estimator="ppo", beta=0.0, dynamic_sampling=False),
        critic=CriticConfig(lr=5e-4, warmup_steps=0, gae_gamma=1.0, gae_lambda=1.0),
        run=replace(base.run, name="demo-ppo"),
        preset="cpu-demo-ppo",
    )


#: where ``r1zero pretrain --preset tiny-aha`` writes the base of ``cpu-aha`` (its default ``--out``)
TINY_AHA_DIR = "./runs/pretrain-tiny-aha"


def cpu_aha() -> TrainConfig:
    """Self-checking that pays, on 2 CPU cores (docs/aha.md): the CPU demo on the ``tiny-aha`` base.

    In that base's corpus every answer starts as a direct guess, sloppy half the time, and a few guesses
    go on with a check phrase and the worked sum (``the answer is 12. wait, 3+5=8, 8+2=10, the answer is
    10.``). The reward is the demo's strict R1-Zero rule; nothing rewards a check. Make the base first
    with ``r1zero pretrain --preset tiny-aha`` (it writes ``runs/pretrain-tiny-aha``), or pass
    ``--model.name DIR``.
    """
    base = cpu_demo()
    return replace(
        base,
        model=replace(base.model, name=TINY_AHA_DIR),
        run=replace(base.run, name="aha"),
        preset="cpu-aha",
    )


def ppo_orz() -> TrainConfig:
    """Open-Reasoner-Zero's recipe (Hu et al. 2025): vanilla PPO, GAE lambda = 1, gamma = 1, no KL.

    Trains on ORZ's 57k set (downloaded once from its repository). lambda, gamma and beta = 0 are the
    paper's; the model (Qwen2.5-7B base), batch sizes and learning rates (policy 1e-6, critic 5e-6) are
    chosen for one 8x80 GB node and are ours. The critic is a second copy of the base model with its own
    gradients and AdamW state (memory:
    ``r1zero plan --preset ppo-orz --gpus 8``).
    """
    return TrainConfig(
        model=_gpu_model("Qwen/Qwen2.5-7B"),
        data=DataConfig(source="orz57k", heldout_source="math500", heldout_size=500, template="r1zero"),
        rollout=RolloutConfig(backend="vllm", prompts_per_step=64, group_size=16, max_new_tokens=8192),
        reward=RewardConfig(require_format=True, workers=8),
        algo=AlgoConfig(estimator="ppo", loss_agg="dapo", beta=0.0, micro_batch_size=4),
        critic=CriticConfig(lr=5e-6, gae_gamma=1.0, gae_lambda=1.0),
        optim=OptimConfig(lr=1e-6),
        run=RunConfig(name="ppo-orz", steps=500, eval_every=25, save_every=25),
        preset="ppo-orz",
    )


def smoke() -> TrainConfig:
    """A few seconds of training for CI: 3 steps, 2 prompts x 4 samples, short completions."""
    base = cpu_demo()
    return replace(
        base,
        data=replace(base.data, train_size=64, heldout_size=4),
        rollout=replace(base.rollout, prompts_per_step=2, group_size=4, max_new_tokens=24),
        algo=replace(base.algo, micro_batch_size=4),
        run=replace(base.run, name="smoke", steps=3, eval_every=2, save_every=2, progress=False),
        preset="smoke",
    )


#: preset name -> function building it
PRESETS: dict[str, Callable[[], TrainConfig]] = {
    "cpu-demo": cpu_demo,
    "cpu-demo-ppo": cpu_demo_ppo,
    "cpu-aha": cpu_aha,
    "ppo-orz": ppo_orz,
    "r1zero-paper": r1zero_paper,
    "dr-grpo": dr_grpo,
    "dapo": dapo,
    "simplerl-zoo": simplerl_zoo,
    "countdown-3b": countdown_3b,
    "smoke": smoke,
}


def get_preset(name: str) -> TrainConfig:
    """Build a preset by name; an unknown name is an error listing the valid ones.

    >>> get_preset("dapo").algo.eps_high
    0.28
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    return validate(PRESETS[name]())


#: GPU presets -> the GPUs they assume (count, GiB each): ``r1zero train --dry-run`` plans memory on them
PRESET_GPUS: dict[str, tuple[int, float]] = {
    "r1zero-paper": (8, 80.0),
    "dr-grpo": (8, 80.0),
    "dapo": (8, 80.0),
    "simplerl-zoo": (8, 80.0),
    "countdown-3b": (2, 80.0),
    "ppo-orz": (8, 80.0),
}


def check_model(config: TrainConfig) -> None:
    """Raise ``FileNotFoundError`` when the model is a local directory that does not exist, saying how to
    make ``cpu-aha``'s base."""
    from r1zero.models.loading import resolve_model_path

    try:
        resolve_model_path(config.model.name)
    except FileNotFoundError as exc:
        if config.model.name == TINY_AHA_DIR:
            raise FileNotFoundError(
                f"{exc}: make it with 'r1zero pretrain --preset tiny-aha', or pass --model.name DIR"
            ) from None
        raise


def check_data(config: TrainConfig) -> list[str]:
    """Resolve a config's problem sources, template and verifier without loading anything, and check
    that its held-out problems cannot come from its training rows; returns plan lines, raises
    ``ValueError`` naming the problem (an unknown name lists the valid ones).

    A source and a held-out set of the same origin (MATH's test split and MATH-500, a subset of it) are
    refused: use a generator (another seed), another split, or no ``heldout_source`` (rows split off by
    id). Training on a test split is noted.

    >>> check_data(get_preset("simplerl-zoo"))[0]
    'train:    math:train,level=3-5 -> dataset math, split train, levels 3-5 (hf:DigitalLearningGmbH/MATH-lighteval[train])'
    """
    from r1zero.data.sources import describe_source
    from r1zero.data.templates import get_template
    from r1zero.verifiers.base import registered_verifier

    data = config.data
    train = describe_source(data.source)
    lines = [f"train:    {data.source} -> {_describe(train)}"]
    get_template(data.template, think=data.think_prefix)
    if data.verifier and ":" not in data.verifier and not data.verifier.endswith(".py"):
        registered_verifier(data.verifier)
    if not data.heldout_size:
        return [*lines, "held-out: none (data.heldout_size 0)"]
    if not data.heldout_source:
        how = "another seed" if train.kind == "generator" else f"{data.heldout_size} rows split off by id"
        return [*lines, f"held-out: {data.heldout_size} of {data.source} ({how}), disjoint by construction"]
    heldout = describe_source(data.heldout_source)
    lines.append(f"held-out: {data.heldout_source} -> {_describe(heldout)}, first {data.heldout_size}")
    if heldout.origin == train.origin and train.kind != "generator":
        raise ValueError(
            f"--data.source {data.source!r} and --data.heldout_source {data.heldout_source!r} draw from the "
            f"same rows ({train.origin}); train on another split (e.g. 'math:train') or leave "
            "--data.heldout_source empty to split rows off"
        )
    lines.append(
        f"disjoint: {train.origin} vs {heldout.origin}; at start-up held-out questions also in training are dropped"
    )
    if train.split == "test":
        lines.append(
            f"note:     trains on a test split of {train.name}; its train split is '{train.name}:train'"
        )
    return lines


def _describe(info: object) -> str:
    from r1zero.data.sources import SourceInfo

    assert isinstance(info, SourceInfo)
    parts = [f"{info.kind} {info.name}"]
    if info.split:
        parts.append(f"split {info.split}")
    if info.levels:
        low, high = info.levels[0], info.levels[-1]
        parts.append(
            f"levels {low}-{high}" if info.levels == tuple(range(low, high + 1)) else f"levels {info.levels}"
        )
    return f"{', '.join(parts)} ({info.where})"
