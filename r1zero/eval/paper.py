"""Published figures in a suite file, and "paper vs this checkpoint" side by side.

A suite that reproduces a paper's evaluation carries the paper's numbers in a ``paper`` block::

    "paper": {
      "title": "Understanding R1-Zero-Like Training (Dr. GRPO, Oat-Zero)",
      "citation": "https://arxiv.org/abs/2503.20783",
      "metric": "pass@1",
      "note": "greedy decoding, 3,000 new tokens",
      "models": {"sail/Qwen2.5-Math-7B-Oat-Zero": {"aime24": 43.3, "amc23": 62.7, "average": 51.4}}
    }

Figures are percentages. ``average`` is the paper's mean over its other figures' benchmarks; this
checkpoint's average is the mean of the same benchmarks. ``r1zero eval`` compares its results with the
row named like the model it evaluates (full name or last path component, any case), the row named by
``--paper_model``, or the only row; ``paper_table`` is the pure function that prints the comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["AVERAGE", "Paper", "load_paper", "paper_table", "parse_paper", "pick_row"]

#: the figure name of a paper's mean over its other benchmarks
AVERAGE = "average"
_KEYS = ("title", "citation", "metric", "note", "models")


@dataclass(frozen=True)
class Paper:
    """A paper's published figures for the suite's benchmarks.

    Attributes:
        title: What the figures come from.
        citation: URL of the paper, README or model card that prints them.
        metric: The result key they compare with (``pass@1``: avg@n, or the single sample when n = 1).
        models: ``{model name: {benchmark or "average": figure in %}}``.
        note: How the paper evaluated, where it differs from the suite or between rows.
    """

    title: str
    citation: str
    models: dict[str, dict[str, float]]
    metric: str = "pass@1"
    note: str = ""


def parse_paper(block: Mapping[str, Any], benchmarks: Sequence[str] = ()) -> Paper:
    """A ``paper`` block checked: known keys, a citation, numbers in [0, 100], benchmarks of the suite.

    >>> parse_paper({"title": "t", "citation": "u", "models": {"m": {"aime24": 43.3}}}, ["aime24"]).models
    {'m': {'aime24': 43.3}}
    >>> parse_paper({"title": "t", "citation": "u", "models": {"m": {"gsm8k": 1}}}, ["aime24"])
    Traceback (most recent call last):
    ...
    ValueError: paper.models.m: 'gsm8k' is not a benchmark of this suite; valid: aime24, average
    """
    if not isinstance(block, Mapping):
        raise ValueError(f"paper must be a mapping with keys {', '.join(_KEYS)}; got {block!r}")
    if unknown := sorted(set(block) - set(_KEYS)):
        raise ValueError(f"paper: unknown key {unknown[0]!r}; valid: {', '.join(_KEYS)}")
    for key in ("title", "citation"):
        if not isinstance(block.get(key), str) or not block[key]:
            raise ValueError(f"paper.{key} must be a non-empty string; got {block.get(key)!r}")
    models = block.get("models")
    if not isinstance(models, Mapping) or not models:
        raise ValueError(f"paper.models must map model names to {{benchmark: figure}}; got {models!r}")
    valid = [*benchmarks, AVERAGE]
    rows: dict[str, dict[str, float]] = {}
    for model, figures in models.items():
        if not isinstance(figures, Mapping) or not figures:
            raise ValueError(f"paper.models.{model} must map benchmarks to figures; got {figures!r}")
        for name, value in figures.items():
            if benchmarks and name not in valid:
                raise ValueError(
                    f"paper.models.{model}: {name!r} is not a benchmark of this suite; valid: {', '.join(valid)}"
                )
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
                raise ValueError(
                    f"paper.models.{model}.{name} must be a percentage in [0, 100]; got {value!r}"
                )
        rows[str(model)] = {str(k): float(v) for k, v in figures.items()}
    return Paper(
        title=block["title"],
        citation=block["citation"],
        models=rows,
        metric=str(block.get("metric", "pass@1")),
        note=str(block.get("note", "")),
    )


def load_paper(path: str | Path) -> Paper | None:
    """The ``paper`` block of a suite file (``None`` when it has none), checked against its benchmarks."""
    from r1zero.eval.config import find_config_file
    from r1zero.options import read_config_file

    path = find_config_file(str(path))
    data = read_config_file(path)
    if "paper" not in data:
        return None
    benchmarks = data.get("benchmarks", ())
    if isinstance(benchmarks, str):
        benchmarks = [b for b in benchmarks.split(",") if b]
    try:
        return parse_paper(data["paper"], list(benchmarks))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def pick_row(paper: Paper, model: str, wanted: str = "") -> str | None:
    """The paper's row to compare ``model`` with: ``wanted`` if given, else the row named like ``model``
    (full name, or last path component, any case), else the only row; None when several rows fit none.

    >>> paper = Paper("t", "u", {"Qwen/Qwen2.5-Math-7B": {"aime24": 13.3}, "org/RL-7B": {"aime24": 40.0}})
    >>> pick_row(paper, "/models/qwen2.5-math-7b"), pick_row(paper, "mine", "org/RL-7B"), pick_row(paper, "x")
    ('Qwen/Qwen2.5-Math-7B', 'org/RL-7B', None)
    """
    if wanted:
        if wanted not in paper.models:
            raise ValueError(
                f"paper_model {wanted!r} is not in the suite's paper; valid: {', '.join(paper.models)}"
            )
        return wanted

    def short(name: str) -> str:
        return name.rstrip("/").rsplit("/", 1)[-1].lower()

    for row in paper.models:
        if row.lower() == model.lower() or short(row) == short(model):
            return row
    return next(iter(paper.models)) if len(paper.models) == 1 else None


def paper_table(results: Sequence[Mapping[str, Any]], paper: Paper, row: str) -> str:
    """The paper's figures of ``row`` beside this checkpoint's (``results`` as ``r1zero eval`` returns them,
    one per benchmark, with ``step`` when a run is evaluated), in %: benchmark, paper, this, its 95% CI,
    difference (this - paper), and whether the paper's figure lies inside the CI.

    >>> paper = Paper("Oat", "https://arxiv.org/abs/2503.20783", {"oat": {"aime24": 43.3, "amc23": 62.7,
    ...     "average": 53.0}})
    >>> results = [{"benchmark": "aime24", "n": 1, "pass@1": 0.4, "pass@1_ci": [0.233, 0.567]},
    ...            {"benchmark": "amc23", "n": 1, "pass@1": 0.6, "pass@1_ci": [0.45, 0.75]}]
    >>> print(paper_table(results, paper, "oat"))
    paper vs this checkpoint: oat, Oat (https://arxiv.org/abs/2503.20783); pass@1 in %
    benchmark        paper    this  95% CI            diff  in CI
    aime24            43.3    40.0  [23.3, 56.7]      -3.3  yes
    amc23             62.7    60.0  [45.0, 75.0]      -2.7  yes
    average           53.0    50.0  -                 -3.0  -
    """
    figures = paper.models[row]
    metric = paper.metric
    benchmarks = [b for b in figures if b != AVERAGE]
    head = f"{'benchmark':<14} {'paper':>7} {'this':>7}  {'95% CI':<15} {'diff':>6}  in CI"
    lines = [f"paper vs this checkpoint: {row}, {paper.title} ({paper.citation}); {metric} in %", head]
    steps = sorted({r.get("step") for r in results}, key=lambda s: -1 if s is None else s)
    for step in steps:
        ours = {r["benchmark"]: r for r in results if r.get("step") == step}
        suffix = "" if step is None else f"@{step}"
        for name in benchmarks:
            lines.append(_row(name + suffix, figures[name], ours.get(name), metric))
        if AVERAGE in figures:
            have = [100 * ours[b][metric] for b in benchmarks if b in ours]
            mean = sum(have) / len(have) if have and len(have) == len(benchmarks) else None
            lines.append(_cells(AVERAGE + suffix, figures[AVERAGE], mean, "-", "-"))
    if paper.note:
        lines.append(f"paper's protocol: {paper.note}")
    return "\n".join(lines)


def _row(name: str, figure: float, result: Mapping[str, Any] | None, metric: str) -> str:
    if result is None or metric not in result:
        return _cells(name, figure, None, "not run", "-")
    value = 100 * result[metric]
    low, high = (100 * x for x in result.get(f"{metric}_ci", (float("nan"), float("nan"))))
    inside = "yes" if low - 0.05 <= figure <= high + 0.05 else "no"  # figures are printed to 0.1
    return _cells(name, figure, value, f"[{low:.1f}, {high:.1f}]", inside)


def _cells(name: str, figure: float, value: float | None, ci: str, inside: str) -> str:
    this = f"{value:7.1f}" if value is not None else f"{'-':>7}"
    diff = f"{value - figure:+6.1f}" if value is not None else f"{'-':>6}"
    return f"{name:<14} {figure:7.1f} {this}  {ci:<15} {diff}  {inside}"
