"""What the trainer keeps for the report beyond metrics: held-out completions and one whole group per step.

``heldout.jsonl``: one line per (evaluation step, held-out problem): ``{"step", "id", "completion",
"correct", "reason", "extracted", "length"}``, plus ``"question"`` and ``"gold"`` the first time the file
is written, so a problem can be followed across steps after the checkpoints are gone.
``groups.jsonl``: the first group of each training step, all G completions with reward and advantage
(recomputed from the rewards with the run's ``algo.advantage``; PPO's token advantages are not kept).

Both functions also return behaviour-type rates (``r1zero.eval.behaviour_types``) to add to the step's
metrics.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from r1zero.eval.behaviour_types import behaviour_rates

__all__ = ["GROUPS_FILE", "HELDOUT_FILE", "append_group", "append_heldout", "group_advantages"]

HELDOUT_FILE = "heldout.jsonl"
GROUPS_FILE = "groups.jsonl"


def _append(path: Path, lines: Sequence[dict[str, Any]]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(_finite(line)) + "\n" for line in lines))


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinite floats as None (strict JSON, which browsers parse).

    >>> _finite({"reward": float("nan"), "xs": [1.0, float("inf")]})
    {'reward': None, 'xs': [1.0, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def append_heldout(
    run_dir: Path | None, step: int, problems: Sequence[Any], records: Sequence[dict[str, Any]]
) -> dict[str, float]:
    """Append one held-out evaluation to ``run_dir/heldout.jsonl`` (``None``: write nothing); returns
    ``heldout/behaviour/*`` rates of the same completions."""
    if len(problems) != len(records):
        raise ValueError(f"append_heldout: {len(records)} records for {len(problems)} problems")
    if run_dir is not None:
        first = not (Path(run_dir) / HELDOUT_FILE).exists()
        lines = []
        for problem, r in zip(problems, records, strict=True):
            line = {"step": step, "id": problem.id}
            line.update({k: r.get(k) for k in ("completion", "correct", "reason", "extracted", "length")})
            if first:
                line.update({"question": problem.question, "gold": problem.answer})
            lines.append(line)
        _append(Path(run_dir) / HELDOUT_FILE, lines)
    return behaviour_rates(
        [str(r["completion"]) for r in records], [bool(r["correct"]) for r in records], "heldout/behaviour/"
    )


def group_advantages(rewards: Sequence[float], scale: str = "group") -> list[float | None]:
    """The advantages of one group as the trace shows them: reward minus the group mean, divided by the
    group std for ``"group"``; ``"none"`` leaves the difference unscaled; ``"rloo"`` subtracts the mean of
    the other rewards. The estimators with batch statistics (``"batch"``, ``"reinforce_pp"``,
    ``"reinforce_pp_baseline"``) are shown with the group's statistics, as ``"group"``.

    >>> group_advantages([1.0, 0.0, 0.0, 1.0])
    [0.866, -0.866, -0.866, 0.866]
    >>> group_advantages([1.0, 0.0], "none"), group_advantages([1.0, 0.0, 0.0], "rloo")
    ([0.5, -0.5], [1.0, -0.5, -0.5])
    >>> group_advantages([1.0, float("nan")])
    [None, None]
    """
    if scale not in _SCALES:
        raise ValueError(f"advantage scale must be one of {', '.join(_SCALES)}; got {scale!r}")
    if not all(math.isfinite(r) for r in rewards):  # a NaN/inf reward: the step's update was skipped
        return [None] * len(rewards)
    n, total = len(rewards), sum(rewards)
    if scale == "rloo":
        return [round(r - (total - r) / max(n - 1, 1), 3) for r in rewards]
    std = statistics.stdev(rewards) if n > 1 else 0.0
    div = 1.0 if scale == "none" else std + 1e-6
    return [round((r - total / n) / div, 3) for r in rewards]


_SCALES = ("group", "batch", "none", "rloo", "reinforce_pp", "reinforce_pp_baseline")


def append_group(
    run_dir: Path | None, step: int, records: Sequence[dict[str, Any]], group_size: int, scale: str
) -> dict[str, float]:
    """Append the step's first group (``group_size`` records) to ``run_dir/groups.jsonl``; returns
    ``behaviour/*`` rates of all the step's completions."""
    if run_dir is not None and len(records) >= group_size:
        group = records[:group_size]
        advantages = group_advantages([float(r["reward"]) for r in group], scale)
        line = {"step": step, "prompt": group[0]["prompt"], "gold": group[0]["gold"], "completions": []}
        for r, a in zip(group, advantages, strict=True):
            keep = ("completion", "reward", "correct", "reason", "extracted", "length", "reflection_hits")
            line["completions"].append({**{k: r.get(k) for k in keep}, "advantage": a})
        _append(Path(run_dir) / GROUPS_FILE, [line])
    if not records:
        return {}
    return behaviour_rates([str(r["completion"]) for r in records], [bool(r["correct"]) for r in records])
