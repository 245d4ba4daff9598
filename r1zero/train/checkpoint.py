"""Atomic checkpoints with everything exact resume needs, and finding the one to resume from.

A checkpoint is ``RUN_DIR/checkpoints/step_000050/``: the policy and tokenizer in Hugging Face format
(so ``AutoModelForCausalLM.from_pretrained`` and vLLM load it as is) plus ``trainer_state.pt`` with the
step, optimizer and scheduler state, every RNG stream (python, numpy, torch CPU and CUDA), the prompt
sampler state and the monitors' history. It is written into a temporary directory and renamed into
place, so a crash mid-save leaves the previous checkpoint untouched and never a half-written one.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "STATE_FILE",
    "CheckpointError",
    "capture_rng",
    "checkpoint_dirs",
    "latest_checkpoint",
    "load_trainer_state",
    "restore_rng",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
_STEP_DIR = re.compile(r"^step_(\d{6,})$")


class CheckpointError(RuntimeError):
    """A run directory or checkpoint that cannot be resumed from (the message says what is wrong)."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint directory on disk and its step."""

    path: Path
    step: int


def capture_rng() -> dict[str, Any]:
    """Every global RNG state: python ``random``, numpy, torch CPU and (when present) CUDA."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng``."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    keep: int = 0,
    extra_models: dict[str, torch.nn.Module] | None = None,
) -> Path:
    """Write ``checkpoints/step_{step:06d}`` atomically and return its path.

    Args:
        run_dir: The run directory.
        step: Training steps completed.
        model: The (unwrapped) policy; saved with ``save_pretrained`` (safetensors).
        tokenizer: Saved beside the model.
        trainer_state: Optimizer/scheduler/sampler state etc.; ``step`` and the RNG states are added.
        keep: Keep only the newest ``keep`` checkpoints (0 keeps all).
        extra_models: Other models of the run (e.g. ``{"critic": critic}``), each saved with
            ``save_pretrained`` into a subdirectory of that name, inside the same atomic write.
    """
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp_step_{step:06d}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    for name, extra in (extra_models or {}).items():
        extra.save_pretrained(tmp / name, safe_serialization=True)
        _fsync_dir(tmp / name)
    torch.save({**trainer_state, "step": step, "rng": capture_rng()}, tmp / STATE_FILE)
    _fsync_dir(tmp)
    if final.exists():  # re-saving the same step (e.g. after a resume): move the old one aside first
        old = root / f".old_step_{step:06d}_{os.getpid()}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
    _fsync_dir(root)
    if keep > 0:
        for stale in checkpoint_dirs(run_dir)[:-keep]:
            shutil.rmtree(stale.path, ignore_errors=True)
    log.info("saved checkpoint %s", final)
    return final


def _fsync_dir(path: Path) -> None:
    for child in path.iterdir() if path.is_dir() else []:
        if child.is_file():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint_dirs(run_dir: Path) -> list[Checkpoint]:
    """Completed checkpoints of a run, oldest first (temporary directories are ignored)."""
    root = Path(run_dir) / "checkpoints"
    found = []
    for child in root.iterdir() if root.is_dir() else []:
        match = _STEP_DIR.match(child.name)
        if match and child.is_dir():
            found.append(Checkpoint(child, int(match.group(1))))
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The newest checkpoint of a run directory; errors when ``run_dir`` is not a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{str(run_dir)!r} is not a directory; pass a run directory such as runs/demo")
    if not (run_dir / "config.json").is_file():
        raise CheckpointError(
            f"{str(run_dir)!r} is not a run directory (no config.json); "
            "pass the directory a previous 'r1zero train' wrote, such as runs/demo"
        )
    found = checkpoint_dirs(run_dir)
    return found[-1] if found else None


def load_trainer_state(checkpoint: Checkpoint) -> dict[str, Any]:
    """Read ``trainer_state.pt``; a missing or unreadable file is a ``CheckpointError`` naming it."""
    path = checkpoint.path / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(checkpoint.path)!r} is incomplete: {STATE_FILE} is missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a truncated or garbled file
        raise CheckpointError(
            f"checkpoint state {str(path)!r} is corrupt ({type(exc).__name__}: {exc})"
        ) from exc
    missing = [k for k in ("step", "optimizer", "scheduler", "rng", "sampler") if k not in state]
    if missing or state.get("step") != checkpoint.step:
        raise CheckpointError(
            f"checkpoint state {str(path)!r} is corrupt: missing {missing} or step {state.get('step')!r} "
            f"does not match the directory name (step {checkpoint.step})"
        )
    has_weights = any(
        (checkpoint.path / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")
    ) or any(checkpoint.path.glob("model-*.safetensors"))
    if not has_weights:
        raise CheckpointError(f"checkpoint {str(checkpoint.path)!r} has no model weights (model.safetensors)")
    return state
