"""Read a run directory (``docs/run_format.md``) for plots and reports: tolerant of a crash mid-write.

A half-written last line (a run killed while appending) is skipped with a warning, so plots work on a
live or crashed run.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from r1zero.eval.aha import AhaResult, detect_aha
from r1zero.eval.checks import heldout_checks

logger = logging.getLogger(__name__)

__all__ = ["Run", "aha_for_run", "ema", "heldout_check_series", "load_run", "read_jsonl", "series"]


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file; [] when it does not exist. A truncated last line (a run killed mid-write) is
    skipped with a warning; any other line that is not a JSON object is a ValueError naming the line."""
    if not path.is_file():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    last = max((n for n, line in enumerate(lines, start=1) if line.strip()), default=0)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == last:
                logger.warning(
                    "%s line %d is not valid JSON (a run killed mid-write?); skipped", path, number
                )
                continue
            raise ValueError(f"{path} line {number} is not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path} line {number} is not a JSON object")
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Run:
    """The readable contents of one run directory."""

    path: Path
    config: dict
    metrics: list[dict]
    samples: list[dict]
    evals: list[dict]

    @property
    def name(self) -> str:
        return str(self.config.get("run", {}).get("name") or self.path.name)

    @property
    def variant(self) -> str:
        """Legend label: the run name and the preset it started from."""
        preset = self.config.get("preset")
        return f"{self.name} ({preset})" if preset and preset != self.name else self.name

    @property
    def rollouts_per_step(self) -> int:
        rollout = self.config.get("rollout", {})
        return int(rollout.get("prompts_per_step", 16)) * int(rollout.get("group_size", 8))

    @property
    def heldout_size(self) -> int:
        return int(self.config.get("data", {}).get("heldout_size", 64))


def load_run(path: str | Path) -> Run:
    """Load a run directory; a missing directory, one without ``config.json`` or ``metrics.jsonl``, or
    one with no metrics or eval rows yet is an error."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"{str(path)!r} is not a directory" if path.exists() else f"{str(path)!r} does not exist"
        )
    if not (path / "config.json").is_file() and not (path / "metrics.jsonl").is_file():
        raise ValueError(
            f"{str(path)!r} is not a run directory: it has neither config.json nor metrics.jsonl"
        )
    config_path = path / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    metrics = sorted(read_jsonl(path / "metrics.jsonl"), key=lambda r: r.get("step", 0))
    evals = read_jsonl(path / "eval.jsonl")
    if not metrics and not evals:
        raise ValueError(f"{str(path / 'metrics.jsonl')!r} has no rows yet: nothing to show")
    return Run(path, config, metrics, read_jsonl(path / "samples.jsonl"), evals)


def series(rows: Sequence[dict], key: str, min_step: int = 0) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of rows that have a finite ``key``, from ``min_step`` on.

    >>> series([{"step": 0, "a": 1.0}, {"step": 1}, {"step": 2, "a": float("nan")}, {"step": 3, "a": 2}], "a")
    ([0, 3], [1.0, 2.0])
    """
    steps, values = [], []
    for row in rows:
        value = row.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value) and row.get("step", 0) >= min_step:
            steps.append(int(row["step"]))
            values.append(float(value))
    return steps, values


def ema(values: Sequence[float], alpha: float = 0.2) -> list[float]:
    """Exponential moving average with bias correction (as TensorBoard's smoothing), ``alpha`` = new weight.

    >>> ema([1.0, 1.0, 1.0])
    [1.0, 1.0, 1.0]
    >>> [round(v, 3) for v in ema([0.0, 1.0], alpha=0.5)]
    [0.0, 0.667]
    """
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    out, acc, weight = [], 0.0, 0.0
    for v in values:
        acc = (1 - alpha) * acc + alpha * v
        weight = (1 - alpha) * weight + alpha
        out.append(acc / weight)
    return out


def heldout_check_series(run: Run) -> dict[int, dict[str, float]]:
    """Per evaluation step, the exact check metrics of the run's held-out completions (``heldout.jsonl``;
    ``r1zero.eval.checks.heldout_checks``); empty for a run without it or a task without running sums."""
    return heldout_checks(read_jsonl(run.path / "heldout.jsonl"))


def reflection_baseline(run: Run) -> tuple[float | None, int]:
    """The step-0 reflection rate and the number of completions behind it, from the best source present."""
    for row in run.metrics:
        if row.get("step") == 0 and "heldout/reflection_per_response" in row:
            return float(row["heldout/reflection_per_response"]), run.heldout_size
    for row in run.evals:
        if row.get("step") == 0 and "reflection/per_response" in row:
            return float(row["reflection/per_response"]), int(row.get("samples", row.get("n", 1) * 64))
    return None, 0


def aha_for_run(run: Run, window: int = 5, alpha: float = 0.01) -> AhaResult | None:
    """Run the aha test on a run's per-step reflection rate against its step-0 baseline (None: no baseline)."""
    baseline, baseline_count = reflection_baseline(run)
    steps, rates = series(run.metrics, "reflection/per_response", min_step=1)
    if baseline is None or len(steps) < window:
        return None
    return detect_aha(steps, rates, run.rollouts_per_step, baseline, baseline_count, window, alpha)
