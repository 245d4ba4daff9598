"""Everything a training run holds, built from a config (fresh or resumed), and saved to checkpoints.

``open_session`` does the setup the recipe needs before its first step: threads, ranks, the run
directory, problems, policy (and reference when beta > 0), optimizer, scheduler, prompt sampler, rollout
engine; with ``resume`` it restores every saved state and cuts the logs back to the checkpoint's step.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from r1zero import cpu
from r1zero.data.problem import Problem
from r1zero.data.sampler import PromptSampler
from r1zero.train import build
from r1zero.train.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_trainer_state,
    restore_rng,
    save_checkpoint,
)
from r1zero.train.config import TrainConfig, config_to_dict
from r1zero.train.distributed import DistInfo, barrier, broadcast_parameters, init_distributed
from r1zero.train.runlog import RunLog

__all__ = ["Session", "lr_factor", "open_session", "save_session"]

log = logging.getLogger(__name__)

#: what trainer_state.pt carries besides optimizer/scheduler/sampler/RNG
_SAVED_STATE = ("elapsed", "accuracy_history", "step0", "last_eval", "monitors_firing", "reward_history")


@dataclass
class Session:
    """A run in progress. ``state`` holds what is checkpointed besides the model and optimizer."""

    config: TrainConfig
    dist: DistInfo
    device: torch.device
    run_dir: Path
    runlog: RunLog | None
    problems: list[Problem]
    heldout: list[Problem]
    learner: torch.nn.Module
    tokenizer: Any
    reference: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: PromptSampler
    engine: Any
    state: dict[str, Any] = field(default_factory=dict)
    critic: torch.nn.Module | None = None
    critic_optimizer: torch.optim.Optimizer | None = None
    learned_reward: Any = None


def open_session(config: TrainConfig, resume: bool) -> Session:
    """Build (and with ``resume``, restore) everything a run needs; see the module docstring."""
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    cpu.prepare_process(config.cpu)
    device = build.resolve_device(config.model.device)
    dist_info = init_distributed(device)
    run_dir = build.run_dir_of(config)
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        raise CheckpointError(
            f"run directory {str(run_dir)!r} has no checkpoint yet; nothing to resume "
            "(start it again with --run.overwrite true)"
        )
    if not resume:
        _prepare_run_dir(run_dir, config, dist_info)
    random.seed(config.run.seed)
    np.random.seed(config.run.seed % 2**32)
    torch.manual_seed(config.run.seed)
    runlog = None
    if dist_info.is_main:
        runlog = RunLog(run_dir, config.run.tensorboard, config.run.wandb_project, config_to_dict(config))

    problems = build.load_problems_for(config)
    heldout = build.load_problems_for(config, True, problems) if config.data.heldout_size else []
    source = str(checkpoint.path) if checkpoint else config.model.name
    model, tokenizer = build.load_model(
        source, config.model.dtype, device, config.model.gradient_checkpointing
    )
    reference = None
    if config.algo.beta:  # the initial policy; no reference model is loaded when beta = 0
        reference = build.load_model(config.model.name, config.model.dtype, device)[0].eval()
    _prepare_for_cpu(config, policy=model, reference=reference)
    o = config.optim
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=o.lr, betas=(o.adam_beta1, o.adam_beta2), weight_decay=o.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    session = Session(
        config=config,
        dist=dist_info,
        device=device,
        run_dir=run_dir,
        runlog=runlog,
        problems=problems,
        heldout=heldout,
        learner=broadcast_parameters(model, dist_info),
        tokenizer=tokenizer,
        reference=reference,
        optimizer=optimizer,
        scheduler=scheduler,
        sampler=PromptSampler(problems, config.rollout.prompts_per_step, seed=config.run.seed),
        engine=build.make_engine(config, model, tokenizer),
        state={
            "step": 0,
            "elapsed": 0.0,
            "accuracy_history": [],
            "step0": {},
            "last_eval": {},
            "monitors_firing": [],
            "reward_history": [],
        },
    )
    if config.reward.model:  # RLHF-style learned reward (frozen), added to or replacing the rule reward
        from r1zero.reward_model.score import LearnedReward

        session.learned_reward = LearnedReward.from_pretrained(config.reward.model, device=str(device))
        _prepare_for_cpu(config, reward_model=session.learned_reward.model)
    if config.algo.estimator == "ppo":
        session.critic, session.critic_optimizer = _open_critic(config, checkpoint, device, dist_info)
    if checkpoint is not None:
        _restore(session, load_trainer_state(checkpoint))
        log.info("resumed from %s (step %d)", checkpoint.path, session.state["step"])
    return session


def _prepare_for_cpu(config: TrainConfig, **models: torch.nn.Module | None) -> None:
    """Apply the ``cpu`` section's speed code to each model the run builds (``r1zero.cpu``); the one
    call site, so the policy, reference, critic and reward model run the same code."""
    for role, model in models.items():
        if model is not None:
            applied = cpu.prepare_model(model, config.cpu)
            log.info("%s on CPU speed code: %s", role, ", ".join(applied) or "none")


def save_session(session: Session, step: int) -> None:
    """Checkpoint the run at ``step`` (rank 0 writes; every rank waits for it)."""
    if session.dist.is_main:
        trainer_state = {
            "optimizer": session.optimizer.state_dict(),
            "scheduler": session.scheduler.state_dict(),
            "sampler": session.sampler.state_dict(),
            **{k: session.state[k] for k in _SAVED_STATE},
        }
        model = session.learner
        extra = {}
        if session.critic is not None and session.critic_optimizer is not None:
            extra["critic"] = session.critic
            trainer_state["critic_optimizer"] = session.critic_optimizer.state_dict()
        save_checkpoint(
            session.run_dir,
            step,
            model,
            session.tokenizer,
            trainer_state,
            session.config.run.keep_checkpoints,
            extra_models=extra,
        )
    barrier(session.dist)


def _open_critic(
    config: TrainConfig, checkpoint: Any, device: torch.device, dist_info: DistInfo
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """PPO's value model (fresh head on the base, or the checkpoint's critic) and its AdamW."""
    from r1zero.train.critic import load_critic

    c = config.critic
    if checkpoint is not None:
        saved = checkpoint.path / "critic"
        if not (saved / "config.json").is_file():
            raise CheckpointError(
                f"checkpoint {str(checkpoint.path)!r} of a PPO run has no critic/ directory"
            )
        critic = load_critic(str(saved), config.model.dtype, device, fresh_head=False)
    else:
        critic = load_critic(c.model or config.model.name, config.model.dtype, device)
    o = config.optim
    optimizer = torch.optim.AdamW(
        critic.parameters(), lr=c.lr, betas=(o.adam_beta1, o.adam_beta2), weight_decay=o.weight_decay
    )
    _prepare_for_cpu(config, critic=critic)
    return broadcast_parameters(critic.eval(), dist_info), optimizer


def lr_factor(step: int, config: TrainConfig) -> float:
    """Learning-rate multiplier: linear warmup, then constant, linear or cosine decay to 0 at run.steps.

    >>> from r1zero.train.config import OptimConfig, RunConfig
    >>> c = TrainConfig(optim=OptimConfig(warmup_steps=2, schedule="linear"), run=RunConfig(steps=10))
    >>> [round(lr_factor(s, c), 3) for s in (0, 1, 2, 6, 10)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    o, total = config.optim, config.run.steps
    if o.warmup_steps and step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    if o.schedule == "constant":
        return 1.0
    progress = (step - o.warmup_steps) / max(1, total - o.warmup_steps)
    if o.schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _prepare_run_dir(run_dir: Path, config: TrainConfig, dist_info: DistInfo) -> None:
    """Create the run directory and write config.json; an existing run is not overwritten silently."""
    if dist_info.is_main:
        if run_dir.exists() and any(run_dir.iterdir()):
            if not config.run.overwrite:
                raise FileExistsError(
                    f"run directory {str(run_dir)!r} exists; continue it with --resume {run_dir}, "
                    "or pass --run.overwrite true to start over, or choose --run.name"
                )
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(
            json.dumps(config_to_dict(config), indent=2) + "\n", encoding="utf-8"
        )
    barrier(dist_info)


def _restore(session: Session, saved: dict[str, Any]) -> None:
    """Load optimizer, scheduler, sampler and RNG state; cut the logs back to the checkpoint's step."""
    session.optimizer.load_state_dict(saved["optimizer"])
    session.scheduler.load_state_dict(saved["scheduler"])
    session.sampler.load_state_dict(saved["sampler"])
    if session.critic_optimizer is not None:
        if "critic_optimizer" not in saved:
            raise CheckpointError("the checkpoint has no critic optimizer state (was it a GRPO run?)")
        session.critic_optimizer.load_state_dict(saved["critic_optimizer"])
    restore_rng(saved["rng"])
    if session.runlog is not None:
        session.runlog.resume_at(saved["step"])
    session.state = {"step": saved["step"], **{k: saved.get(k, session.state[k]) for k in _SAVED_STATE}}
