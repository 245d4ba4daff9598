"""Per-sample records and the per-benchmark summary built from them (pure: no model, no I/O).

``summarize`` turns ``n`` scored samples per problem into every number ``r1zero eval`` reports: pass@1 as
avg@n, unbiased pass@k for k = 1, 2, 4, ..., n, maj@k, bootstrap 95% intervals over problems, format
rate, lengths in tokens (correct vs incorrect), truncation, reflection rates, repetition and, on
running-sum tasks, what the checks did (``checks/*``, ``r1zero.eval.checks``). Keys are the
``/``-namespaced names of ``docs/run_format.md`` so a summary is also one line of a run's ``eval.jsonl``.
``average_results`` is the macro average of several benchmarks' summaries, with intervals.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from r1zero.eval.behaviour import find_reflection, length_stats, ngram_repetition, reflection_stats
from r1zero.eval.checks import record_checks
from r1zero.eval.metrics import (
    bootstrap_ci,
    default_ks,
    macro_mean_ci,
    maj_at_k,
    pass_at_k_problem,
    se_from_ci,
    standard_error,
)

__all__ = ["AVERAGE", "SampleRecord", "average_results", "result_se", "summarize"]

#: the ``benchmark`` name of the average row
AVERAGE = "average"
#: counts, bookkeeping and settings (an ``eval.jsonl`` line carries a few), not metrics: never averaged
_NOT_AVERAGED = {
    "problems",
    "n",
    "samples",
    "seconds",
    "step",
    "seed",
    "temperature",
    "max_new_tokens",
    "checks/n",
}


@dataclass(frozen=True)
class SampleRecord:
    """One scored completion (one line of ``samples.jsonl`` written by ``r1zero eval``).

    Attributes:
        problem_id: Id of the problem.
        sample: Index of this sample among the problem's n samples.
        prompt: The rendered prompt.
        completion: The completion text.
        gold: The gold answer.
        correct: Verifier verdict.
        formatted: Whether the R1-Zero tag format was kept.
        reason: The verdict's reason code.
        extracted: The answer the verifier checked, if any.
        reward: The verdict's reward.
        length: Completion length in tokens.
        truncated: Whether max new tokens cut the completion.
        reflection_hits: Number of reflection keyword hits.
        reflection_spans: Character spans of the hits (for highlighting).
    """

    problem_id: str
    sample: int
    prompt: str
    completion: str
    gold: str
    correct: bool
    formatted: bool
    reason: str
    extracted: str | None
    reward: float
    length: int
    truncated: bool
    reflection_hits: int
    reflection_spans: tuple[tuple[int, int], ...] = ()

    def to_dict(self) -> dict:
        out = asdict(self)
        out["reflection_spans"] = [list(s) for s in self.reflection_spans]
        return out


def make_record(
    problem_id: str,
    sample: int,
    prompt: str,
    completion: str,
    gold: str,
    verdict,
    length: int,
    truncated: bool,
    preset: str = "r1zero",
) -> SampleRecord:
    """Build a ``SampleRecord`` from a verifier ``Verdict``, finding reflection hits with ``preset``."""
    spans = tuple(find_reflection(completion, preset))
    return SampleRecord(
        problem_id=problem_id,
        sample=sample,
        prompt=prompt,
        completion=completion,
        gold=gold,
        correct=bool(verdict.correct),
        formatted=bool(verdict.formatted),
        reason=str(verdict.reason),
        extracted=verdict.extracted,
        reward=float(verdict.reward),
        length=int(length),
        truncated=bool(truncated),
        reflection_hits=len(spans),
        reflection_spans=spans,
    )


def summarize(
    records: Sequence[Sequence[SampleRecord]],
    preset: str = "r1zero",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict:
    """Every benchmark-level number from ``records[problem][sample]`` (same n for every problem).

    Returns a flat dict: ``problems``, ``n``, ``pass@k`` with ``pass@k_ci`` (bootstrap) and ``pass@k_se``
    (standard error over problems) for each k, the same for ``maj@k``, ``accuracy/strict`` (correct and formatted), ``format_rate``, ``length/*``, ``reflection/*``, ``repetition/ngram4``, ``reasons``.
    """
    if not records or any(len(row) == 0 for row in records):
        raise ValueError("summarize needs at least one problem, each with at least one sample")
    n = len(records[0])
    if any(len(row) != n for row in records):
        raise ValueError(
            f"every problem needs the same number of samples; got {sorted({len(r) for r in records})}"
        )
    flat = [r for row in records for r in row]
    correct = [[r.correct for r in row] for row in records]
    answers = [[r.extracted for r in row] for row in records]
    out: dict = {"problems": len(records), "n": n, "samples": len(flat)}

    def with_ci(name: str, per_problem: list[float]) -> None:
        out[name] = sum(per_problem) / len(per_problem)
        out[f"{name}_ci"] = list(bootstrap_ci(per_problem, None, confidence, n_resamples, seed))
        out[f"{name}_se"] = standard_error(per_problem)

    for k in default_ks(n):
        with_ci(f"pass@{k}", [pass_at_k_problem(n, sum(row), k) for row in correct])
        with_ci(f"maj@{k}", [maj_at_k([a], [c], k) for a, c in zip(answers, correct, strict=True)])
    out["accuracy"] = out["pass@1"]
    # correct *and* in the R1-Zero tag format: free-form extraction can find a right number in garbage
    out["accuracy/strict"] = sum(r.correct and r.formatted for r in flat) / len(flat)
    out["format_rate"] = sum(r.formatted for r in flat) / len(flat)
    lengths = [r.length for r in flat]
    flags = [r.correct for r in flat]
    out.update(length_stats(lengths, flags, [r.truncated for r in flat]).to_dict())
    out.update(reflection_stats([r.completion for r in flat], lengths, flags, preset).to_dict())
    chain_view = [{"prompt": r.prompt, "completion": r.completion, "gold": r.gold} for r in flat]
    out.update(record_checks(chain_view))  # running-sum prompts only (r1zero.eval.checks)
    out["repetition/ngram4"] = sum(ngram_repetition(r.completion, 4) for r in flat) / len(flat)
    out["reasons"] = dict(Counter(r.reason for r in flat).most_common())
    return out


def average_results(results: Sequence[Mapping], confidence: float = 0.95) -> dict:
    """The macro average of benchmark results (each benchmark weighs the same, whatever its size).

    Every number all ``results`` have is averaged (counts are summed: ``problems``; ``n`` is kept when all
    agree). A metric with an interval (``pass@k``, ``maj@k``) gets ``_ci`` and ``_se`` by the normal
    approximation of ``metrics.macro_mean_ci``: ``se = sqrt(sum(se_b ** 2)) / B``, the interval
    ``mean +- z se`` clipped to [0, 1]. ``se_b`` is the benchmark's ``_se``, or for a result saved
    without one, the half-width of its ``_ci`` over z.

    >>> a = {"benchmark": "a", "problems": 30, "n": 4, "pass@1": 0.2, "pass@1_se": 0.03, "format_rate": 1.0}
    >>> b = {"benchmark": "b", "problems": 500, "n": 4, "pass@1": 0.6, "pass@1_se": 0.04, "format_rate": 0.5}
    >>> avg = average_results([a, b])
    >>> avg["pass@1"], [round(x, 3) for x in avg["pass@1_ci"]], avg["pass@1_se"], avg["format_rate"]
    (0.4, [0.351, 0.449], 0.025, 0.75)
    >>> avg["benchmark"], avg["benchmarks"], avg["problems"], avg["n"]
    ('average', ['a', 'b'], 530, 4)
    """
    if not results:
        raise ValueError("average_results needs at least one result")
    first = results[0]
    ns = {r.get("n") for r in results}
    out: dict = {
        "benchmark": AVERAGE,
        "benchmarks": [str(r["benchmark"]) for r in results],
        "problems": sum(int(r.get("problems", 0)) for r in results),
        "n": ns.pop() if len(ns) == 1 else None,
    }
    for key, value in first.items():
        if key in _NOT_AVERAGED or key.endswith(("_se", "_ci")) or not _is_number(value):
            continue
        values = [r.get(key) for r in results]
        if not all(_is_number(v) for v in values):
            continue
        ses = [result_se(r, key, confidence) for r in results]
        if all(se is not None for se in ses):
            mean, low, high = macro_mean_ci(values, ses, confidence)
            out[key], out[f"{key}_ci"] = mean, [low, high]
            out[f"{key}_se"] = math.sqrt(sum(se * se for se in ses)) / len(ses)
        else:
            out[key] = sum(values) / len(values)
    return out


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def result_se(result: Mapping, key: str, confidence: float = 0.95) -> float | None:
    """A result's standard error of ``key``: its ``_se``, else the half-width of its ``_ci`` over z (a
    result saved without ``_se``), else None (no interval).

    >>> result_se({"pass@1_se": 0.03}, "pass@1"), round(result_se({"pass@1_ci": [0.3, 0.7]}, "pass@1"), 4)
    (0.03, 0.102)
    """
    if _is_number(se := result.get(f"{key}_se")):
        return float(se)
    ci = result.get(f"{key}_ci")
    if isinstance(ci, Sequence) and len(ci) == 2 and all(_is_number(x) for x in ci):
        return se_from_ci(float(ci[0]), float(ci[1]), confidence)
    return None
