"""Per-step metrics from the step's scored rollouts, under the keys of docs/run_format.md (pure).

A *record* is one scored completion as a plain dict (what ``samples.jsonl`` stores): ``prompt``,
``completion``, ``gold``, ``reward``, ``parts``, ``correct``, ``formatted``, ``reason``, ``extracted``,
``length`` (tokens), ``truncated`` and ``reflection_hits``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from r1zero.eval.behaviour import length_stats, reflection_stats
from r1zero.eval.checks import record_checks

__all__ = ["SAMPLE_KEYS", "rollout_metrics", "sample_records"]

#: keys of one samples.jsonl line (besides ``step``), in order
SAMPLE_KEYS = (
    "prompt",
    "completion",
    "gold",
    "reward",
    "correct",
    "formatted",
    "reason",
    "extracted",
    "length",
    "reflection_hits",
)


def rollout_metrics(
    records: Sequence[dict[str, Any]], reflection: str = "r1zero", prefix: str = "train/"
) -> dict[str, float]:
    """Reward, accuracy, format, length and reflection metrics of a set of scored completions.

    On running-sum tasks (a ``What is a+b+...?`` prompt) also ``checks/*`` (``r1zero.eval.checks``): the
    share of responses that re-check a step, and among those the shares whose check changed a value,
    fixed a wrong answer or broke a right one.

    >>> recs = [
    ...     {"reward": 1.0, "parts": {"accuracy": 1.0}, "correct": True, "formatted": True,
    ...      "completion": "3+4=7 wait", "length": 10, "truncated": False},
    ...     {"reward": 0.0, "parts": {"accuracy": 0.0}, "correct": False, "formatted": False,
    ...      "completion": "9", "length": 30, "truncated": True},
    ... ]
    >>> m = rollout_metrics(recs)
    >>> m["train/reward"], m["train/accuracy"], m["length/mean"], m["length/clip_ratio"], m["reflection/per_response"]
    (0.5, 0.5, 20.0, 0.5, 0.5)
    """
    if not records:
        raise ValueError("rollout_metrics needs at least one record")
    n = len(records)
    correct = [bool(r["correct"]) for r in records]
    lengths = [int(r["length"]) for r in records]
    out: dict[str, float] = {
        f"{prefix}reward": sum(float(r["reward"]) for r in records) / n,
        f"{prefix}accuracy": sum(correct) / n,
        f"{prefix}format_rate": sum(bool(r["formatted"]) for r in records) / n,
    }
    for part in sorted({p for r in records for p in r.get("parts", {})}):
        out[f"{prefix}reward/{part}"] = sum(float(r.get("parts", {}).get(part, 0.0)) for r in records) / n
    out.update(length_stats(lengths, correct, [bool(r["truncated"]) for r in records]).to_dict("length/"))
    stats = reflection_stats([r["completion"] for r in records], lengths, None, reflection)
    out["reflection/per_response"] = stats.per_response
    out["reflection/per_1k_tokens"] = stats.per_1k_tokens
    out.update(record_checks(records))  # chain-sum prompts only: what the checks did, exactly
    return out


def sample_records(records: Sequence[dict[str, Any]], step: int, k: int) -> list[dict[str, Any]]:
    """The first ``k`` records of a step as samples.jsonl lines (``step`` plus ``SAMPLE_KEYS``).

    The first records are one from each of the first groups when records are group-major and
    ``k`` is small, which is what a reader browsing samples wants: different prompts.
    """
    if not records or k <= 0:
        return []
    group = max(1, len(records) // max(1, len({r["prompt"] for r in records})))
    picked = [records[i] for i in range(0, len(records), group)][:k]
    return [{"step": step, **{key: r.get(key) for key in SAMPLE_KEYS}} for r in picked]
