"""Everything a training run holds, built from a config (fresh or resumed), and saved to checkpoints.

``open_session`` does the setup the recipe needs before its first step: threads, ranks, the run
directory, problems, policy (and reference when beta > 0), optimizer, scheduler, prompt sampler, rollout
engine; with ``resume`` it restores every saved state and cuts the logs back to the checkpoint's step.

r1zero deletes only what it made. A run directory carries a ``.r1zero-run`` marker (``RUN_MARKER``) from
the start that makes it; ``is_run_dir`` says what counts as a run (``--run.overwrite`` deletes nothing
else), and a fresh start never writes outside ``--run.out_dir``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from r1zero import __version__, cpu
from r1zero.data.problem import Problem
from r1zero.data.sampler import PromptSampler
from r1zero.train import build
from r1zero.train.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_dirs,
    latest_checkpoint,
    load_trainer_state,
    restore_rng,
    save_checkpoint,
)
from r1zero.train.config import TrainConfig, config_from_dict, config_to_dict
from r1zero.train.distributed import DistInfo, barrier, broadcast_parameters, init_distributed
from r1zero.train.runlog import RunLog
from r1zero.train.sharded_checkpoint import (
    all_finite,
    is_sharded,
    is_sharded_checkpoint,
    load_sharded_checkpoint,
    save_sharded_checkpoint,
)

__all__ = [
    "RUN_MARKER",
    "Session",
    "TrainingError",
    "is_run_dir",
    "lr_factor",
    "open_session",
    "save_session",
]

log = logging.getLogger(__name__)

#: the file that marks a directory as a run r1zero made: JSON saying what made it
RUN_MARKER = ".r1zero-run"

#: what trainer_state.pt carries besides optimizer/scheduler/sampler/RNG
_SAVED_STATE = (
    "elapsed",
    "accuracy_history",
    "step0",
    "last_eval",
    "monitors_firing",
    "reward_history",
    "nonfinite_streak",
    "nonfinite_steps",
    "ref_resets",
)


class TrainingError(RuntimeError):
    """A run that cannot go on (the message says why and what to do); its last checkpoint is intact."""


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
    sharded = config.model.sharding == "fsdp"
    dist_info = init_distributed(device, always=sharded)  # FSDP needs a process group, even of 1 rank
    run_dir = build.run_dir_of(config)
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        raise CheckpointError(
            f"run directory {str(run_dir)!r} has no checkpoint yet; start it again without --resume"
        )
    if resume and dist_info.is_main:
        _write_marker(run_dir)  # a run of an older version is adopted; the marker names this process
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
    # a sharded checkpoint holds no Hugging Face weights: the base model is built, _restore loads its shards
    sharded_checkpoint = checkpoint is not None and is_sharded_checkpoint(checkpoint.path)
    source = str(checkpoint.path) if checkpoint and not sharded_checkpoint else config.model.name
    model, tokenizer = build.load_model(
        source, config.model.dtype, device, config.model.gradient_checkpointing
    )
    build.check_context(config, [*problems, *heldout], tokenizer, model)
    reference = None
    if config.algo.beta:  # the initial policy; no reference model is loaded when beta = 0
        ref_source = _reference_source(config, checkpoint)
        reference = build.load_model(ref_source, config.model.dtype, device)[0].eval()
    model = broadcast_parameters(model, dist_info)
    replica = None
    if sharded:  # FSDP2: policy and reference sharded; the rollout engine generates from a full copy
        replica = build.rollout_replica(config, model, device)
        model = build.shard_for_training(config, model, device)
        if reference is not None:
            reference = build.shard_for_training(config, reference, device)
        _prepare_for_cpu(config, rollout=replica)
    else:
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
        learner=model,
        tokenizer=tokenizer,
        reference=reference,
        optimizer=optimizer,
        scheduler=scheduler,
        sampler=PromptSampler(problems, config.rollout.prompts_per_step, seed=config.run.seed),
        engine=build.make_engine(config, model, tokenizer, replica),
        state={
            "step": 0,
            "elapsed": 0.0,
            "accuracy_history": [],
            "step0": {},
            "last_eval": {},
            "monitors_firing": [],
            "reward_history": [],
            "nonfinite_streak": 0,
            "nonfinite_steps": 0,
            "ref_resets": 0,
        },
    )
    if config.reward.model:  # RLHF-style learned reward (frozen), added to or replacing the rule reward
        from r1zero.reward_model.score import LearnedReward

        session.learned_reward = LearnedReward.from_pretrained(config.reward.model, device=str(device))
        _prepare_for_cpu(config, reward_model=session.learned_reward.model)
    if config.algo.estimator == "ppo":
        critic_source = None if sharded_checkpoint else checkpoint
        session.critic, session.critic_optimizer = _open_critic(config, critic_source, device, dist_info)
    if checkpoint is not None:
        _restore(session, checkpoint)
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
    """Checkpoint the run at ``step``: rank 0 writes a replicated run's checkpoint (every rank waits for
    it), every rank writes its shards of a sharded one (``r1zero.train.sharded_checkpoint``), whose last
    save is also exported to ``RUN_DIR/final/`` as one Hugging Face model. Weights that are not all finite
    are never saved: a ``TrainingError`` instead, the previous checkpoint intact."""
    sharded = is_sharded(session.learner)
    for role, model in (("policy", session.learner), ("critic", session.critic)):
        if model is None:
            continue
        finite = (
            all_finite(model) if sharded else all(bool(torch.isfinite(p).all()) for p in model.parameters())
        )
        if not finite:
            raise TrainingError(
                f"step {step}: the {role} has NaN or infinite weights; no checkpoint written "
                f"(the last one in {str(session.run_dir / 'checkpoints')!r} is intact)"
            )
    shared = {"scheduler": session.scheduler.state_dict(), **{k: session.state[k] for k in _SAVED_STATE}}
    if sharded:
        extra = None
        if session.critic is not None and session.critic_optimizer is not None:
            extra = {"critic": (session.critic, session.critic_optimizer)}
        path = save_sharded_checkpoint(
            session.run_dir,
            step,
            session.learner,
            session.optimizer,
            session.tokenizer,
            shared,
            {"sampler": session.sampler.state_dict()},
            session.config.run.keep_checkpoints,
            extra=extra,
        )
        if step == session.config.run.steps and session.dist.is_main:
            from r1zero.train.export import export_checkpoint

            export_checkpoint(path, session.run_dir / "final", replace=True)
    elif session.dist.is_main:
        trainer_state = {
            "optimizer": session.optimizer.state_dict(),
            "scheduler": shared.pop("scheduler"),
            "sampler": session.sampler.state_dict(),
            **shared,
        }
        extra_models = {}
        if session.config.algo.ref_reset_every and session.reference is not None:
            extra_models["reference"] = session.reference  # ProRL resets move it off the base model
        if session.critic is not None and session.critic_optimizer is not None:
            extra_models["critic"] = session.critic
            trainer_state["critic_optimizer"] = session.critic_optimizer.state_dict()
        save_checkpoint(
            session.run_dir,
            step,
            session.learner,
            session.tokenizer,
            trainer_state,
            session.config.run.keep_checkpoints,
            extra_models=extra_models,
        )
    barrier(session.dist)


def _reference_source(config: TrainConfig, checkpoint: Any) -> str:
    """Where the KL reference loads from: the base model, or a resumed checkpoint's ``reference/``
    (saved by runs that reset it, ``algo.ref_reset_every``)."""
    saved = checkpoint.path / "reference" if checkpoint is not None else None
    if config.algo.ref_reset_every and saved is not None:
        if not (saved / "config.json").is_file():
            raise CheckpointError(
                f"checkpoint {str(checkpoint.path)!r} has no reference/ directory, and algo.ref_reset_every "
                "needs the reference it was resetting (was it saved by a run without resets?)"
            )
        return str(saved)
    return config.model.name


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
    critic = broadcast_parameters(critic.eval(), dist_info)
    if config.model.sharding == "fsdp":  # sharded as the policy; its AdamW steps the shards
        critic = build.shard_for_training(config, critic, device)
    else:
        _prepare_for_cpu(config, critic=critic)
    o = config.optim
    optimizer = torch.optim.AdamW(
        critic.parameters(), lr=c.lr, betas=(o.adam_beta1, o.adam_beta2), weight_decay=o.weight_decay
    )
    return critic, optimizer


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


def is_run_dir(path: Path) -> bool:
    """Whether r1zero made the directory ``path``, so that it may delete it.

    The rule: ``path`` holds the ``RUN_MARKER`` file (written by every start since the marker exists),
    or, for a run of an older version, a ``config.json`` that parses as a ``TrainConfig`` and a
    ``checkpoints/`` directory. Anything else (a user's directory, another tool's output, an old run that
    never saved a checkpoint) is not a run, and ``--run.overwrite`` refuses to delete it.
    """
    if (path / RUN_MARKER).is_file():
        return True
    config_file = path / "config.json"
    if not (config_file.is_file() and (path / "checkpoints").is_dir()):
        return False
    try:
        config_from_dict(json.loads(config_file.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError):  # unreadable, not JSON, not a TrainConfig
        return False
    return True


def _prepare_run_dir(run_dir: Path, config: TrainConfig, dist_info: DistInfo) -> None:
    """Create the run directory with its marker and config.json; see ``_clear_run_dir`` for an existing one."""
    if dist_info.is_main:
        out_dir = Path(config.run.out_dir).resolve()
        if run_dir.is_symlink() or run_dir.resolve().parent != out_dir:
            raise FileExistsError(
                f"run directory {str(run_dir)!r} is a symbolic link or resolves outside --run.out_dir "
                f"{str(out_dir)!r} (to {str(run_dir.resolve())!r}); r1zero writes a new run only right inside "
                "--run.out_dir: choose another --run.name"
            )
        if run_dir.exists() and not run_dir.is_dir():
            raise FileExistsError(
                f"{str(run_dir)!r} exists and is not a directory; choose another --run.name"
            )
        if run_dir.is_dir() and any(run_dir.iterdir()):
            _clear_run_dir(run_dir, config.run.overwrite)
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_marker(run_dir)
        (run_dir / "config.json").write_text(
            json.dumps(config_to_dict(config), indent=2) + "\n", encoding="utf-8"
        )
    barrier(dist_info)


def _clear_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Delete an existing, non-empty run directory before a fresh start, or refuse with what to do.

    Only a run (``is_run_dir``) is ever deleted: with ``overwrite``, or without it when the run has no
    checkpoint yet (an earlier start failed before its first save, so there is nothing to resume) and the
    process that started it is not still running.
    """
    name = str(run_dir)
    if not is_run_dir(run_dir):
        raise FileExistsError(
            f"directory {name!r} exists and was not made by r1zero (no {RUN_MARKER} file); r1zero deletes "
            "only its own run directories: choose another --run.name or --run.out_dir, or remove it yourself"
        )
    has_checkpoint = bool(checkpoint_dirs(run_dir))
    if has_checkpoint and not overwrite:
        raise FileExistsError(
            f"run directory {name!r} exists; continue it with --resume {name}, "
            "or pass --run.overwrite true to start over, or choose --run.name"
        )
    owner = _running_owner(run_dir)
    if owner is not None:
        raise FileExistsError(
            f"run directory {name!r} is in use by process {owner} on this host; wait for it to end or "
            "choose another --run.name (if that process is not an r1zero run, remove the directory yourself)"
        )
    if has_checkpoint:
        log.info("--run.overwrite: deleting run directory %s", name)
    else:
        log.info("run directory %s has no checkpoint yet (an earlier start failed); starting it over", name)
    shutil.rmtree(run_dir)


def _write_marker(run_dir: Path) -> None:
    """Mark ``run_dir`` as made by r1zero (``RUN_MARKER``), naming the process that started it."""
    marker = {
        "made_by": "r1zero train",
        "version": __version__,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    (run_dir / RUN_MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")


def _running_owner(run_dir: Path) -> int | None:
    """The pid of another live process on this host that started ``run_dir`` (per its marker), else None."""
    try:
        marker = json.loads((run_dir / RUN_MARKER).read_text(encoding="utf-8"))
        pid = int(marker["pid"])
        host = marker["host"]
    except (OSError, ValueError, TypeError, KeyError):  # no marker (an older run) or a garbled one
        return None
    if os.name != "posix" or host != socket.gethostname() or pid <= 0 or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except PermissionError:
        return pid  # it exists, under another user
    except (OSError, OverflowError):
        return None
    return pid


def _restore(session: Session, checkpoint: Checkpoint) -> None:
    """Load the checkpoint's optimizer, scheduler, sampler and RNG state (and a sharded checkpoint's
    weights, on any world size); cut the logs back to the checkpoint's step."""
    if is_sharded_checkpoint(checkpoint.path):
        extra = None
        if session.critic is not None and session.critic_optimizer is not None:
            extra = {"critic": (session.critic, session.critic_optimizer)}
        saved = load_sharded_checkpoint(checkpoint, session.learner, session.optimizer, extra)
        session.engine.load_weights(session.learner)  # it was built from the base model's weights
    else:
        if is_sharded(session.learner):
            raise CheckpointError(
                f"checkpoint {str(checkpoint.path)!r} was written by a replicated run; resume it with "
                "--model.sharding none (a sharded run resumes only from sharded checkpoints)"
            )
        saved = load_trainer_state(checkpoint)
        session.optimizer.load_state_dict(saved["optimizer"])
        if session.critic_optimizer is not None:
            if "critic_optimizer" not in saved:
                raise CheckpointError("the checkpoint has no critic optimizer state (was it a GRPO run?)")
            session.critic_optimizer.load_state_dict(saved["critic_optimizer"])
    session.scheduler.load_state_dict(saved["scheduler"])
    session.sampler.load_state_dict(saved["sampler"])
    restore_rng(saved["rng"])
    if session.runlog is not None:
        session.runlog.resume_at(saved["step"])
    session.state = {"step": saved["step"], **{k: saved.get(k, session.state[k]) for k in _SAVED_STATE}}
