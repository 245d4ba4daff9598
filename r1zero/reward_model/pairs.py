"""Preference pairs on disk, and how well a reward model orders them (pairwise accuracy, per kind)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["PAIR_COLUMNS", "evaluate_pairs", "load_pairs", "pairwise_accuracy"]

#: Columns every preference file needs (``kind`` is optional: accuracy is then also reported per kind).
PAIR_COLUMNS = ("prompt", "chosen", "rejected")
#: File suffix -> ``datasets`` builder.
_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def load_pairs(path: str | Path) -> Any:
    """Read a JSON, JSONL or Parquet preference file as a ``datasets.Dataset`` and check its columns."""
    import datasets

    path = Path(path)
    builder = _BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(
            f"{path}: unknown preference file type {path.suffix!r}; allowed: {', '.join(_BUILDERS)}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"no preference file at {path}")
    data = datasets.load_dataset(builder, data_files=str(path), split="train")
    missing = [c for c in PAIR_COLUMNS if c not in data.column_names]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)}; a preference file needs "
            f"{', '.join(PAIR_COLUMNS)} (and optionally kind); it has {', '.join(data.column_names)}"
        )
    if len(data) == 0:
        raise ValueError(f"{path}: no preference pairs")
    return data


def pairwise_accuracy(
    chosen: Sequence[float], rejected: Sequence[float], kinds: Sequence[str] | None = None
) -> dict[str, Any]:
    """Share of pairs where ``chosen`` scores above ``rejected`` (a tie counts half), overall and per kind.

    >>> pairwise_accuracy([2.0, 0.0, 1.0], [1.0, 0.5, 1.0], kinds=["a", "a", "b"])
    {'accuracy': 0.5, 'mean_margin': 0.1667, 'pairs': 3, 'by_kind': {'a': 0.5, 'b': 0.5}}
    """
    if len(chosen) != len(rejected) or (kinds is not None and len(kinds) != len(chosen)):
        raise ValueError(f"lengths differ: {len(chosen)} chosen, {len(rejected)} rejected scores")
    if not chosen:
        raise ValueError("no pairs to score")
    wins = [1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected, strict=True)]
    out: dict[str, Any] = {
        "accuracy": round(sum(wins) / len(wins), 4),
        "mean_margin": round(sum(c - r for c, r in zip(chosen, rejected, strict=True)) / len(wins), 4),
        "pairs": len(wins),
    }
    if kinds is not None:
        by_kind: dict[str, list[float]] = {}
        for kind, win in zip(kinds, wins, strict=True):
            by_kind.setdefault(kind, []).append(win)
        out["by_kind"] = {k: round(sum(v) / len(v), 4) for k, v in sorted(by_kind.items())}
    return out


def evaluate_pairs(reward: Any, rows: Any, batch_size: int = 64) -> dict[str, Any]:
    """Pairwise accuracy of ``reward`` (a ``LearnedReward``) on rows with prompt/chosen/rejected[/kind]."""
    prompts = list(rows["prompt"])
    chosen = reward.score(prompts, list(rows["chosen"]), batch_size=batch_size)
    rejected = reward.score(prompts, list(rows["rejected"]), batch_size=batch_size)
    kinds = list(rows["kind"]) if "kind" in _columns(rows) else None
    return pairwise_accuracy(chosen, rejected, kinds)


def _columns(rows: Any) -> list[str]:
    return list(rows.column_names) if hasattr(rows, "column_names") else list(rows)
