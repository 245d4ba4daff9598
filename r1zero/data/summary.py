"""What ``r1zero data inspect`` reports about a problem set: counts, answer types, prompt lengths,
and which golds the verifier cannot read (a gold the verifier cannot parse is a silent zero-reward trap).
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from r1zero.data.answers import classify_answer
from r1zero.data.problem import Problem

__all__ = ["DataSummary", "GoldFailure", "describe_lengths", "format_summary", "gold_parses", "summarize"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GoldFailure:
    """A gold its verifier could not confirm: the problem id, the gold, the verifier and its reason."""

    id: str
    gold: str
    verifier: str
    reason: str


@dataclass(frozen=True)
class DataSummary:
    """Summary of a problem set (see ``summarize``)."""

    source: str
    count: int
    verifiers: dict[str, int]
    answer_types: dict[str, int]
    length_unit: str
    lengths: dict[str, float]
    template: str
    checked: int = 0
    parseable: int = 0
    failures: list[GoldFailure] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_lengths(values: Sequence[int]) -> dict[str, float]:
    """Min, mean, median, 90th percentile (nearest rank) and max.

    >>> describe_lengths([1, 2, 3, 4, 10])
    {'min': 1, 'mean': 4.0, 'median': 3, 'p90': 10, 'max': 10}
    """
    if not values:
        return {}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, max(0, -(-9 * len(ordered) // 10) - 1))]
    return {
        "min": ordered[0],
        "mean": round(statistics.fmean(ordered), 2),
        "median": ordered[(len(ordered) - 1) // 2],
        "p90": p90,
        "max": ordered[-1],
    }


def gold_parses(verifier: Callable[..., Any], problem: Problem) -> tuple[bool, str]:
    """Whether ``verifier`` accepts the gold as an answer to its own problem, and the verdict's reason.

    The gold is offered in the R1-Zero tags, in ``\\boxed{}`` and bare; tasks whose gold is not itself
    an answer (Countdown: the gold is the target) may carry a known-correct answer in ``meta["witness"]``,
    which is offered too. A ``bad_gold`` verdict ends the check at once.
    """
    bodies = [problem.answer]
    if isinstance(problem.meta.get("witness"), str):
        bodies.append(problem.meta["witness"])
    first_reason = None
    for body in bodies:
        for response in (f"<think>\n</think>\n<answer>{body}</answer>", f"\\boxed{{{body}}}", body):
            verdict = verifier(response, problem.answer, **problem.meta)
            if verdict.correct:
                return True, verdict.reason
            if verdict.reason == "bad_gold":
                return False, "bad_gold"
            first_reason = first_reason or verdict.reason
    return False, first_reason or "wrong"


def summarize(
    problems: Sequence[Problem],
    source: str,
    verifier: str | None = None,
    check_golds: bool = True,
    tokenizer: Any = None,
    template: str = "none",
    progress: bool = True,
) -> DataSummary:
    """Counts, answer types, prompt lengths and gold parseability of ``problems``.

    Args:
        problems: The set to describe.
        source: Where it came from (printed).
        verifier: Check every gold with this verifier; None uses each problem's own.
        check_golds: Whether to run the verifier at all.
        tokenizer: Count prompt lengths in its tokens; None counts characters.
        template: Template name the prompts are rendered with before measuring.
        progress: Show a progress bar for long sets.
    """
    from tqdm.auto import tqdm

    from r1zero.data.templates import get_template
    from r1zero.verifiers import get_verifier

    chosen = get_template(template)
    prompts = [chosen.render(p.question, tokenizer=tokenizer) for p in problems]
    if tokenizer is not None:
        lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    else:
        lengths = [len(text) for text in prompts]
    failures: list[GoldFailure] = []
    parseable = 0
    if check_golds:
        bar = tqdm(problems, desc="checking golds", unit="gold", disable=not progress or len(problems) < 200)
        for problem in bar:
            name = verifier or problem.verifier
            ok, reason = gold_parses(get_verifier(name), problem)
            parseable += ok
            if not ok:
                failures.append(GoldFailure(problem.id, problem.answer, name, reason))
    return DataSummary(
        source=source,
        count=len(problems),
        verifiers=dict(Counter(p.verifier for p in problems).most_common()),
        answer_types=dict(Counter(classify_answer(p.answer) for p in problems).most_common()),
        length_unit="tokens" if tokenizer is not None else "characters",
        lengths=describe_lengths(lengths),
        template=chosen.name,
        checked=len(problems) if check_golds else 0,
        parseable=parseable,
        failures=failures,
    )


def format_summary(summary: DataSummary, max_failures: int = 50) -> str:
    """Plain-text report of a summary."""
    lines = [f"source: {summary.source}", f"problems: {summary.count}"]
    lines.append("verifiers: " + ", ".join(f"{k} {v}" for k, v in summary.verifiers.items()))
    lines.append("answer types:")
    lines += [f"  {name:<15} {n:>6}  ({n / summary.count:.1%})" for name, n in summary.answer_types.items()]
    stats = ", ".join(f"{k} {v}" for k, v in summary.lengths.items())
    lines.append(f"prompt length ({summary.length_unit}, template {summary.template!r}): {stats}")
    if summary.checked:
        share = summary.parseable / summary.checked
        lines.append(f"golds the verifier accepts: {summary.parseable}/{summary.checked} ({share:.2%})")
        for failure in summary.failures[:max_failures]:
            lines.append(f"  {failure.id}: {failure.gold!r} ({failure.verifier}: {failure.reason})")
        if len(summary.failures) > max_failures:
            lines.append(f"  ... and {len(summary.failures) - max_failures} more (--json for all)")
    return "\n".join(lines)
