"""Writing the run directory (docs/run_format.md): config.json, metrics/samples/eval JSONL, TB/W&B.

Only rank 0 builds a ``RunLog``. JSONL files are appended one line per call and flushed, so a crash
loses at most the line being written; on resume, lines past the checkpoint's step are dropped first, so
the resumed run appends exactly the lines an uninterrupted run would have written. That cut is atomic: the
kept lines go to a temporary file beside the log, which replaces it only once written and synced, so a
crash or a full disk during it leaves the whole original log.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["RunLog", "truncate_jsonl"]

log = logging.getLogger(__name__)

JSONL_FILES = ("metrics.jsonl", "samples.jsonl", "eval.jsonl", "heldout.jsonl", "groups.jsonl")


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None, so every line parses with strict JSON readers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def truncate_jsonl(path: Path, max_step: int) -> int:
    """Keep only lines whose ``step`` is <= ``max_step`` (and drop a torn last line); return lines kept.

    The file is replaced atomically (a temporary file in its directory, fsynced, then ``os.replace``)
    and only when a line is dropped."""
    if not path.is_file():
        return 0
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a crash mid-write
        if int(record.get("step", 0)) <= max_step:
            kept.append(line)
    if len(kept) == len(lines) and (not text or text.endswith("\n")):
        return len(kept)
    _replace_atomically(path, "".join(line + "\n" for line in kept))
    return len(kept)


def _replace_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a crash) sees the old file or the new, never part."""
    tmp = path.with_name(f".{path.name}.tmp_{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RunLog:
    """Appends metrics, samples and eval lines to a run directory; mirrors metrics to TB/W&B if asked."""

    def __init__(
        self, run_dir: Path, tensorboard: bool = False, wandb_project: str = "", config: dict | None = None
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._tb = None
        self._wandb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ValueError(
                    "run.tensorboard needs the tensorboard package: pip install 'r1zero[tensorboard]'"
                ) from exc
            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
        if wandb_project:
            try:
                import wandb
            except ImportError as exc:
                raise ValueError(
                    "run.wandb_project needs the wandb package: pip install 'r1zero[wandb]'"
                ) from exc
            self._wandb = wandb.init(
                project=wandb_project, name=self.run_dir.name, config=config, resume="allow"
            )

    def resume_at(self, step: int) -> None:
        for name in JSONL_FILES:
            truncate_jsonl(self.run_dir / name, step)

    def _append(self, name: str, record: dict[str, Any]) -> None:
        with open(self.run_dir / name, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(_clean(record)) + "\n")
            handle.flush()

    def metrics(self, record: dict[str, Any]) -> None:
        self._append("metrics.jsonl", record)
        step = int(record["step"])
        scalars = {k: v for k, v in record.items() if k != "step" and isinstance(v, int | float)}
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, value, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def samples(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self._append("samples.jsonl", record)

    def eval(self, record: dict[str, Any]) -> None:
        self._append("eval.jsonl", record)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
