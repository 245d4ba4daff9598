"""What the report shows beyond curves, read from run directories (pure helpers and small readers).

- ``config_diff``: the settings in which runs differ (dotted ``config.json`` keys);
- ``heldout_timelines``: each held-out problem's completion at every evaluated step (``heldout.jsonl``);
- ``flip_step``: the evaluated step at which a problem turned from wrong to right and stayed right;
- ``read_groups``: whole groups of completions with reward and advantage (``groups.jsonl``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from r1zero.eval.rundir import read_jsonl
from r1zero.eval.trace import GROUPS_FILE, HELDOUT_FILE

__all__ = ["config_diff", "flatten", "flip_step", "heldout_timelines", "read_groups"]


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one dict with dotted keys.

    >>> flatten({"algo": {"beta": 0.01, "loss_agg": "dapo"}, "preset": "cpu-demo"})
    {'algo.beta': 0.01, 'algo.loss_agg': 'dapo', 'preset': 'cpu-demo'}
    """
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_diff(configs: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """``(dotted key, value per run as JSON text)`` for every key whose value is not the same in all runs
    (a key missing from a run shows as ``"–"``), sorted by key.

    >>> config_diff([{"algo": {"advantage": "group", "beta": 0.0}}, {"algo": {"advantage": "none", "beta": 0.0}}])
    [('algo.advantage', ['"group"', '"none"'])]
    """
    flat = [flatten(c) for c in configs]
    keys = sorted({k for f in flat for k in f})
    rows = []
    for key in keys:
        values = [json.dumps(f[key]) if key in f else "–" for f in flat]
        if len(set(values)) > 1:
            rows.append((key, values))
    return rows


def flip_step(steps: Sequence[int], correct: Sequence[bool]) -> int | None:
    """The first evaluated step from which a problem is solved at every later evaluation, after at least
    one evaluation where it was not; ``None`` if it never flips (always right, never right, or wrong at
    the end).

    >>> flip_step([0, 10, 20, 30], [False, True, False, True])
    30
    >>> flip_step([0, 10, 20], [False, True, True]), flip_step([0, 10], [True, True]), flip_step([0, 10], [False, False])
    (10, None, None)
    """
    if len(steps) != len(correct):
        raise ValueError(f"flip_step: {len(steps)} steps but {len(correct)} verdicts")
    if not correct or not correct[-1]:
        return None
    i = len(correct) - 1
    while i > 0 and correct[i - 1]:
        i -= 1
    return steps[i] if i > 0 else None


def heldout_timelines(run_dir: str | Path) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """``(problem id -> its heldout.jsonl rows sorted by step, problem id -> {"question", "gold"})``;
    both empty for a run without ``heldout.jsonl``."""
    rows = read_jsonl(Path(run_dir) / HELDOUT_FILE)
    timelines: dict[str, list[dict]] = {}
    info: dict[str, dict] = {}
    for row in rows:
        pid = str(row.get("id"))
        timelines.setdefault(pid, []).append(row)
        if "question" in row:
            info[pid] = {"question": row["question"], "gold": row.get("gold")}
    for line in timelines.values():
        line.sort(key=lambda r: int(r.get("step", 0)))
    return timelines, info


def read_groups(run_dir: str | Path) -> list[dict]:
    """The ``groups.jsonl`` lines of a run (empty when the run did not write them)."""
    return read_jsonl(Path(run_dir) / GROUPS_FILE)
