"""Per-sample records and the per-benchmark summary built from them (pure: no model, no I/O).

``summarize`` turns ``n`` scored samples per problem into every number ``r1zero eval`` reports: pass@1 as
avg@n, unbiased pass@k for k = 1, 2, 4, ..., n, maj@k, bootstrap 95% intervals over problems, format
rate, lengths in tokens (correct vs incorrect), truncation, reflection rates and repetition. Keys are the
``/``-namespaced names of ``docs/run_format.md`` so a summary is also one line of a run's ``eval.jsonl``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from r1zero.eval.behaviour import find_reflection, length_stats, ngram_repetition, reflection_stats
from r1zero.eval.metrics import bootstrap_ci, default_ks, maj_at_k, pass_at_k_problem

__all__ = ["SampleRecord", "summarize"]


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

    Returns a flat dict: ``problems``, ``n``, ``pass@k`` and ``pass@k_ci`` for each k, ``maj@k`` and
    ``maj@k_ci``, ``accuracy/strict`` (correct and formatted), ``format_rate``, ``length/*``, ``reflection/*``, ``repetition/ngram4``, ``reasons``.
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
    out["repetition/ngram4"] = sum(ngram_repetition(r.completion, 4) for r in flat) / len(flat)
    out["reasons"] = dict(Counter(r.reason for r in flat).most_common())
    return out
