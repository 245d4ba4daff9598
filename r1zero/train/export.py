"""``r1zero export``: a run's checkpoint as one Hugging Face model directory (safetensors, config, tokenizer).

r1zero export RUN_DIR                  # the newest complete checkpoint -> RUN_DIR/export/step_000050
r1zero export RUN_DIR --step 20        # that step's checkpoint
r1zero export RUN_DIR --out DIR        # write DIR (it must not exist, or be empty)

The result loads with ``AutoModelForCausalLM.from_pretrained(DIR)`` and vLLM. A replicated checkpoint is
already in that format: its model, config and tokenizer files are copied as they are. A sharded (FSDP)
checkpoint's shards are gathered in this one process, without torchrun (``dcp.load(..., no_dist=True)``),
into the model built from its ``config.json``, and saved with ``save_pretrained``. The directory is written
beside its destination and renamed into place, so a failed export leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from pathlib import Path

import torch

from r1zero.train.checkpoint import Checkpoint, checkpoint_dirs, checkpoint_problem, latest_checkpoint
from r1zero.train.sharded_checkpoint import is_sharded_checkpoint, read_model_state_dict

__all__ = ["export_checkpoint", "find_checkpoint", "main"]

log = logging.getLogger(__name__)

#: files of a replicated checkpoint that are not part of the Hugging Face model (the trainer's state)
_TRAINER_FILES = ("trainer_state.json", "trainer_state.safetensors", "trainer_state.pt")


def find_checkpoint(run_dir: Path, step: int | None = None) -> Checkpoint:
    """The checkpoint of ``run_dir`` at ``step`` (the newest complete one when None); a missing run or step
    is a one-line ``ValueError`` naming it and the steps there are."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run directory {str(run_dir)!r} does not exist; pass one 'r1zero train' wrote")
    found = checkpoint_dirs(run_dir)
    steps = ", ".join(str(c.step) for c in found) or "none"
    if step is None:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise ValueError(f"run directory {str(run_dir)!r} has no checkpoint (steps available: none)")
        return checkpoint
    match = [c for c in found if c.step == step]
    if not match:
        raise ValueError(
            f"run directory {str(run_dir)!r} has no checkpoint at step {step}; steps available: {steps}"
        )
    problem = checkpoint_problem(match[0])
    if problem is not None:
        raise ValueError(
            f"checkpoint {str(match[0].path)!r} is unusable ({problem}); steps available: {steps}"
        )
    return match[0]


def export_checkpoint(checkpoint_dir: Path, out: Path, replace: bool = False) -> Path:
    """Write the checkpoint at ``checkpoint_dir`` to ``out`` as a Hugging Face model directory; return ``out``.

    ``out`` must not exist or be empty, unless ``replace`` (for a directory r1zero itself exports to, such
    as a run's ``final/``).
    """
    checkpoint_dir, out = Path(checkpoint_dir), Path(out)
    if out.exists() and not replace and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"export directory {str(out)!r} exists and is not empty; choose another --out")
    tmp = out.parent / f".tmp_{out.name}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        if is_sharded_checkpoint(checkpoint_dir):
            _export_sharded(checkpoint_dir, tmp)
        else:
            _copy_replicated(checkpoint_dir, tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %s to %s", checkpoint_dir, out)
    return out


def _copy_replicated(checkpoint_dir: Path, tmp: Path) -> None:
    """The Hugging Face files of a replicated checkpoint, byte for byte (not the trainer state or critic)."""
    tmp.mkdir()
    for file in sorted(checkpoint_dir.iterdir()):
        if file.is_file() and file.name not in _TRAINER_FILES:
            shutil.copy2(file, tmp / file.name)


def _export_sharded(checkpoint_dir: Path, tmp: Path) -> None:
    """Gather a sharded checkpoint's weights into the model its config.json describes; save_pretrained."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    state = read_model_state_dict(checkpoint_dir)
    config = AutoConfig.from_pretrained(checkpoint_dir)
    dtype = next((t.dtype for t in state.values() if t.is_floating_point()), torch.float32)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if unexpected or set(missing) - tied:
        raise ValueError(
            f"checkpoint {str(checkpoint_dir)!r} does not match its config.json: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    model.save_pretrained(tmp, safe_serialization=True)
    AutoTokenizer.from_pretrained(checkpoint_dir).save_pretrained(tmp)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="r1zero export", description="Write a run's checkpoint as one Hugging Face model directory."
    )
    parser.add_argument("run_dir", type=Path, help="a run directory that 'r1zero train' wrote")
    parser.add_argument("--step", type=int, default=None, help="the checkpoint's step (default: the newest)")
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default RUN_DIR/export/step_N)"
    )
    args = parser.parse_args(argv)
    checkpoint = find_checkpoint(args.run_dir, args.step)
    out = args.out or args.run_dir / "export" / f"step_{checkpoint.step:06d}"
    export_checkpoint(checkpoint.path, out)
    print(f"exported {checkpoint.path} (step {checkpoint.step}) to {out}")
    return 0
