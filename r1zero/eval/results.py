"""Result files of ``r1zero eval``: one evaluation as one JSON file, where it goes, and "previous vs this".

One evaluation (a model, or one step of a run, on the benchmarks of a suite) is saved as::

    {"format": "r1zero-eval-result", "version": 1, "model": "...", "suite": "math6",
     "step": 40, "run_dir": "runs/demo",                      # only when a run is evaluated
     "settings": {...}, "template": ..., "versions": {...},
     "benchmarks": {"aime24": {"pass@1": ..., "pass@1_ci": [...], "pass@1_se": ..., ...}, ...},
     "average": {...}}                                        # macro average, when there are >= 2

Where (``result_dir``): ``RUN_DIR/eval/`` for a run; else ``--run.out_dir DIR`` if given; else
``MODEL_DIR/eval/`` for a local model directory this process may write; else ``./eval_results/<model>/``
(hub names and ``tiny-base``; ``/`` in a hub name becomes ``__``). The name is ``<suite>.result.json``,
or ``<suite>-stepNNNNNN.result.json`` for a run's step (``.result`` keeps it apart from the per-benchmark
``<benchmark>.json`` of ``--run.out_dir``); an existing file is never replaced: the next free
``<name>-2.result.json``, ``-3``, ... is taken (``save_result``).

``compare_table`` prints this evaluation beside an earlier result file: per benchmark and for the average
of the benchmarks both have, the difference and whether it lies outside the combined 95% interval
``z * sqrt(se_previous ** 2 + se_this ** 2)``. That treats the two as independent samples; on the same
problems they are positively correlated, so the interval is wider than a paired one: "yes" is a
conservative call, "no" does not mean "the same".
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from r1zero.eval.metrics import z_value
from r1zero.eval.summary import AVERAGE, average_results, result_se

__all__ = [
    "DEFAULT_DIR",
    "FORMAT",
    "SUFFIX",
    "build_result",
    "compare_table",
    "load_result",
    "result_dir",
    "result_name",
    "save_result",
    "suite_name",
]

#: the ``format`` field of a result file
FORMAT = "r1zero-eval-result"
#: how a result file's name ends
SUFFIX = ".result.json"
#: where results of hub models (and of directories that cannot be written) go, relative to the cwd
DEFAULT_DIR = "eval_results"
#: what a benchmark entry of a result file does not repeat (kept once at the top)
_TOP_LEVEL = ("settings", "template", "versions", "model", "step", "run_dir")


# ---------------------------------------------------------------------------------------------- names
def suite_name(spec: str | None, benchmarks: Sequence[str]) -> str:
    """A short name for an evaluation: the suite file's stem, else its benchmarks joined by ``+``.

    >>> suite_name("eval/math6.json", ["gsm8k"]), suite_name("oat-zero", []), suite_name(None, ["a", "b"])
    ('math6', 'oat-zero', 'a+b')
    >>> suite_name(None, ["gsm8k", "math500", "aime24", "amc23"])
    'gsm8k+3-more'
    """
    if spec:
        return Path(spec).stem
    names = list(benchmarks)
    return "+".join(names) if len(names) <= 3 else f"{names[0]}+{len(names) - 1}-more"


def result_name(suite: str, step: int | None = None) -> str:
    """The file name of a result.

    >>> result_name("demo"), result_name("demo", 40)
    ('demo.result.json', 'demo-step000040.result.json')
    """
    return f"{suite}{SUFFIX}" if step is None else f"{suite}-step{step:06d}{SUFFIX}"


def result_dir(model: str, run_dir: str = "", out_dir: str = "") -> Path:
    """Where a result is saved: ``RUN_DIR/eval``; ``out_dir``; a writable local ``MODEL_DIR/eval``; else
    ``./eval_results/<model>`` (``tiny-base`` is a name: its directory is inside the installed package).

    >>> str(result_dir("Qwen/Qwen2.5-Math-7B")), str(result_dir("m", run_dir="runs/a"))
    ('eval_results/Qwen__Qwen2.5-Math-7B', 'runs/a/eval')
    """
    if run_dir:
        return Path(run_dir) / "eval"
    if out_dir:
        return Path(out_dir)
    path = Path(model).expanduser()
    if model != "tiny-base" and path.is_dir() and os.access(path, os.W_OK | os.X_OK):
        return path / "eval"
    slug = path.name if path.is_dir() else model.strip("/").replace("/", "__")
    return Path(DEFAULT_DIR) / (re.sub(r"[^\w.+-]", "_", slug) or "model")


# ---------------------------------------------------------------------------------------------- files
def build_result(
    results: Sequence[Mapping[str, Any]], model: str, suite: str, step: int | None = None, run_dir: str = ""
) -> dict:
    """The result file of one evaluation from its per-benchmark results (``r1zero eval``'s result dicts
    or a run's ``eval.jsonl`` lines of one step): settings once, each benchmark, the macro average.

    >>> r = [{"benchmark": "a", "n": 1, "pass@1": 0.5, "settings": {"n": 1}}, {"benchmark": "b", "n": 1,
    ...      "pass@1": 0.25, "settings": {"n": 1}}]
    >>> out = build_result(r, "m", "s")
    >>> out["format"], list(out["benchmarks"]), out["benchmarks"]["a"], out["average"]["pass@1"]
    ('r1zero-eval-result', ['a', 'b'], {'n': 1, 'pass@1': 0.5}, 0.375)
    """
    if not results:
        raise ValueError("build_result needs at least one benchmark result")
    first = results[0]
    out: dict[str, Any] = {"format": FORMAT, "version": 1, "model": str(model), "suite": suite}
    if step is not None:
        out.update(step=int(step), run_dir=str(run_dir))
    for key in ("settings", "template", "versions"):
        if key in first:
            out[key] = first[key]
    benchmarks = {
        str(r["benchmark"]): {k: v for k, v in r.items() if k not in (*_TOP_LEVEL, "benchmark")}
        for r in results
    }
    out["benchmarks"] = benchmarks
    if len(benchmarks) >= 2:
        out["average"] = average_results([{"benchmark": name, **r} for name, r in benchmarks.items()])
    return out


def save_result(result: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``result`` to ``path``, or when it exists to the first free ``<name>-2.result.json``,
    ``-3``, ... (never replacing a file); return where it went."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    suffix = SUFFIX if path.name.endswith(SUFFIX) else path.suffix
    stem = path.name[: len(path.name) - len(suffix)]
    for i in range(1, 10_000):
        candidate = path if i == 1 else path.with_name(f"{stem}-{i}{suffix}")
        try:
            with candidate.open("x", encoding="utf-8") as f:  # "x": fails when it exists, even in a race
                f.write(text)
            return candidate
        except FileExistsError:
            continue
    raise OSError(f"{path}: 10,000 results of that name already exist; give --run.out_dir")


def load_result(path: str | Path) -> dict:
    """A result file as ``build_result`` makes it; a single benchmark's ``<benchmark>.json`` (written with
    ``--run.out_dir``) reads as a result of that one benchmark. Anything else is a one-line ValueError
    naming the file."""
    path = Path(path)
    what = f"{path} is not an r1zero eval result (a JSON file saved by r1zero eval"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what}; reading it: {str(exc).splitlines()[0]})") from None
    if isinstance(data, dict) and data.get("format") == FORMAT:
        if not isinstance(data.get("benchmarks"), dict) or not all(
            isinstance(r, dict) for r in data["benchmarks"].values()
        ):
            raise ValueError(f"{what}; its 'benchmarks' is not a mapping of benchmark results)")
        return data
    if isinstance(data, dict) and isinstance(data.get("benchmark"), str) and "pass@1" in data:
        return build_result([data], str(data.get("model", "")), data["benchmark"])
    raise ValueError(f'{what}, with "format": "{FORMAT}")')


# ---------------------------------------------------------------------------------------------- compare
def compare_table(
    results: Sequence[Mapping[str, Any]],
    previous: Mapping[str, Any],
    label: str,
    metric: str = "pass@1",
    confidence: float = 0.95,
) -> str:
    """``results`` (one per benchmark, with ``step`` when a run is evaluated) beside ``previous`` (a loaded
    result file), in %: previous, this, difference, the combined interval's half-width, and whether the
    difference lies outside it. The average row is over the benchmarks both have.

    >>> previous = {"model": "base", "settings": {"n": 4}, "benchmarks": {
    ...     "a": {"n": 4, "pass@1": 0.30, "pass@1_se": 0.03}, "b": {"n": 4, "pass@1": 0.50, "pass@1_se": 0.04}}}
    >>> results = [{"benchmark": "a", "n": 4, "pass@1": 0.45, "pass@1_se": 0.04, "settings": {"n": 4}},
    ...            {"benchmark": "b", "n": 4, "pass@1": 0.55, "pass@1_se": 0.03, "settings": {"n": 4}},
    ...            {"benchmark": "c", "n": 4, "pass@1": 0.10, "pass@1_se": 0.01, "settings": {"n": 4}}]
    >>> print(compare_table(results, previous, "old.json"))
    previous vs this: old.json (base); pass@1 in %
    benchmark        prev    this    diff  95% CI  outside
    a                30.0    45.0   +15.0    ±9.8  yes
    b                50.0    55.0    +5.0    ±9.8  no
    c                   -    10.0       -       -  -
    average of 2     40.0    50.0   +10.0    ±6.9  yes
    """
    z = z_value(confidence)
    before = {name: {"benchmark": name, **r} for name, r in previous.get("benchmarks", {}).items()}
    source = str(previous.get("model", ""))
    if previous.get("step") is not None:
        source += f" step {previous['step']}"
    lines = [
        f"previous vs this: {label}" + (f" ({source})" if source else "") + f"; {metric} in %",
        f"{'benchmark':<14} {'prev':>6} {'this':>7} {'diff':>7}  {round(100 * confidence)}% CI  outside",
    ]
    steps = sorted({r.get("step") for r in results}, key=lambda s: -1 if s is None else s)
    for step in steps:
        now = {str(r["benchmark"]): r for r in results if r.get("step") == step}
        suffix = "" if step is None else f"@{step}"
        for name in [*now, *(b for b in before if b not in now)]:
            lines.append(_compare_row(name + suffix, before.get(name), now.get(name), metric, z, confidence))
        common = [b for b in now if b in before]
        if len(common) >= 2:
            name = AVERAGE if len(common) == len(now) == len(before) else f"{AVERAGE} of {len(common)}"
            pair = (average_results([before[b] for b in common]), average_results([now[b] for b in common]))
            lines.append(_compare_row(name + suffix, *pair, metric, z, confidence))
    if changed := _settings_changes(
        previous.get("settings"), results[0].get("settings") if results else None
    ):
        lines.append(f"settings differ (previous -> this): {changed}")
    return "\n".join(lines)


def _compare_row(
    name: str, before: Mapping | None, now: Mapping | None, metric: str, z: float, confidence: float
) -> str:
    def cell(result: Mapping | None) -> float | None:
        value = None if result is None else result.get(metric)
        return 100 * float(value) if isinstance(value, int | float) else None

    old, new = cell(before), cell(now)
    shown = [f"{v:>6.1f}" if v is not None else f"{'-':>6}" for v in (old, new)]
    if old is None or new is None:
        return f"{name:<14} {shown[0]} {shown[1]:>7} {'-':>7}  {'-':>6}  -"
    ses = [result_se(r, metric, confidence) for r in (before, now)]
    diff = new - old
    if any(se is None for se in ses):
        return f"{name:<14} {shown[0]} {shown[1]:>7} {diff:>+7.1f}  {'-':>6}  -"
    half = 100 * z * math.sqrt(sum(se * se for se in ses))
    outside = "yes" if abs(diff) > half else "no"
    return f"{name:<14} {shown[0]} {shown[1]:>7} {diff:>+7.1f}  {'±' + format(half, '.1f'):>6}  {outside}"


def _settings_changes(before: Any, now: Any) -> str:
    """The result-changing settings that differ, ``key old -> new``, "; "-separated ("" when comparable).

    >>> _settings_changes({"n": 8, "seed": 0}, {"n": 16, "seed": 0})
    'n 8 -> 16'
    """
    if not isinstance(before, Mapping) or not isinstance(now, Mapping):
        return ""
    keys = [k for k in now if k in before and before[k] != now[k]]
    return "; ".join(f"{k} {before[k]!r} -> {now[k]!r}".replace("'", "") for k in keys)
