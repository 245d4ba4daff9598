"""Reflection that matters: did a response re-check a step, and did the check fix or break the answer?

Keyword rates (``r1zero.eval.behaviour``) count words; they cannot tell a ``wait`` that repairs a slipped
step from one that changes nothing or turns a right step wrong. On running-sum tasks (``list_sum``,
``chain``) the truth of every intermediate value is known from the problem's own numbers, so the effect of
a check is computed exactly, with no judge. Pure functions on strings; no torch, no I/O.

How a completion is read:

- **Steps** are ``a+b=c`` / ``a-b=c`` items (a direct answer such as ``3+5+9=17`` is not a step). The
  first time a left side ``a op b`` appears it fills the next position of the chain; position ``k``
  should hold the true running sum ``t0 + ... + t(k+1)`` of the problem's terms.
- A **redo** is a step whose left side ``a op b`` was already written, or a step right after a check
  word that starts from a running value already written (``30+1=31, wait, 30+4=34``: base models often
  re-do a step with another term): it re-computes that position (a check). The chain then continues
  after it, so the steps that follow overwrite the later positions.
- A **marker** is a check word: ``wait``, ``recheck`` (``re-check``), ``check``, ``verify`` and their
  ``-ing`` forms (so ``let me recheck`` and ``double-check`` count).
- A re-stated answer (``the answer is 14, wait, the answer is 13``) is a check of the final value.

Per response (``CheckReport``): ``checked`` (a redo, a re-stated answer or a marker), ``changed`` (a check
gave a value different from the one it re-did), ``fixed`` (a check replaced a wrong value by the true
one, and the final answer is right: wrong -> right) and ``broke`` (a check replaced a true value by a
wrong one, and the final answer is wrong: right -> wrong).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "CheckEvent",
    "CheckReport",
    "analyze_checks",
    "check_stats",
    "heldout_checks",
    "problem_terms",
    "record_checks",
    "running_sums",
]

_QUESTION = re.compile(r"What is\s+(\d+(?:\s*[+-]\s*\d+)+)\s*\?")
_TERM = re.compile(r"([+-]?)\s*(\d+)")
# a step is not part of a longer expression: ``3+5+9=17`` (a direct answer) holds no step
_STEP = re.compile(r"(?<![\d+\-=])(\d{1,9})\s*([+-])\s*(\d{1,9})\s*=\s*(-?\d{1,10})(?![\d+\-])")
_MARKER = re.compile(r"\b(?:wait|re-?check(?:ing)?|check(?:ing)?|verif(?:y|ying|ied))\b", re.IGNORECASE)
_STATED = re.compile(r"the answer is\s*(-?\d{1,10})", re.IGNORECASE)
_TAGGED = re.compile(r"<answer>\s*(-?\d{1,10})\s*</answer>")


def problem_terms(prompt: str) -> list[int] | None:
    """The signed terms of the last ``What is a+b-c...?`` question in ``prompt``, or None if it has none.

    >>> problem_terms("User: What is 3+5-2?\\nAssistant:")
    [3, 5, -2]
    >>> problem_terms("What is 7?") is None, problem_terms("What is 12 * 3?") is None
    (True, True)
    """
    matches = _QUESTION.findall(prompt)
    if not matches:
        return None
    return [int(digits) * (-1 if sign == "-" else 1) for sign, digits in _TERM.findall(matches[-1])]


def running_sums(terms: Sequence[int]) -> list[int]:
    """The true value of each chain position: position ``k`` is ``terms[0] + ... + terms[k + 1]``.

    >>> running_sums([3, 5, 2])
    [8, 10]
    """
    out, total = [], terms[0] if terms else 0
    for term in terms[1:]:
        total += term
        out.append(total)
    return out


@dataclass(frozen=True)
class CheckEvent:
    """One check that re-computed a value.

    Attributes:
        position: Chain position re-done (0 = the first step), or -1 for a re-stated final answer.
        before: The value written before the check.
        after: The value the check wrote.
        truth: The true running sum at that position (the gold answer for -1), or None when the position
            lies past the end of the problem.
        marked: Whether a check word came right before it.
    """

    position: int
    before: int
    after: int
    truth: int | None
    marked: bool

    @property
    def changed(self) -> bool:
        return self.before != self.after

    @property
    def wrong_to_right(self) -> bool:
        return self.truth is not None and self.before != self.truth and self.after == self.truth

    @property
    def right_to_wrong(self) -> bool:
        return self.truth is not None and self.before == self.truth and self.after != self.truth


@dataclass(frozen=True)
class CheckReport:
    """What the checks of one response did.

    Attributes:
        checked: A redo, a re-stated answer or a check word occurred.
        changed: Some check wrote a value different from the one it re-did.
        fixed: Some check turned a wrong value into the true one, and the final answer is right.
        broke: Some check turned a true value into a wrong one, and the final answer is wrong.
        final: The final answer (last ``<answer>N</answer>``, else last ``the answer is N``), or None.
        final_correct: Whether ``final`` equals the gold answer.
        markers: Number of check words.
        events: Every redo and re-stated answer, in order.
    """

    checked: bool
    changed: bool
    fixed: bool
    broke: bool
    final: int | None
    final_correct: bool
    markers: int
    events: tuple[CheckEvent, ...]


def _final_answer(text: str) -> int | None:
    for pattern in (_TAGGED, _STATED):
        found = pattern.findall(text)
        if found:
            return int(found[-1])
    return None


def _chain_events(text: str, truth: list[int]) -> list[CheckEvent]:
    """Redo events of the running-sum steps in ``text`` (``truth`` from ``running_sums``)."""
    events: list[CheckEvent] = []
    seen: dict[tuple[int, str, int], int] = {}  # left side -> its position
    lefts: dict[tuple[int, str], int] = {}  # running value and op -> the last position starting there
    values: dict[int, int] = {}
    position, last_end = 0, 0
    for match in _STEP.finditer(text):
        left, op, right, value = int(match[1]), match[2], int(match[3]), int(match[4])
        marked = _MARKER.search(text, last_end, match.start()) is not None
        last_end = match.end()
        key = (left, op, right)
        if key in seen or (marked and (left, op) in lefts):
            k = seen[key] if key in seen else lefts[(left, op)]
            events.append(CheckEvent(k, values[k], value, truth[k] if k < len(truth) else None, marked))
            values[k] = value
            position = k + 1
        else:
            seen[key], lefts[(left, op)] = position, position
            values[position] = value
            position += 1
    return events


def _answer_events(text: str, gold: int | None) -> list[CheckEvent]:
    events, previous, last_end = [], None, 0
    for match in _STATED.finditer(text):
        value = int(match[1])
        if previous is not None:
            marked = _MARKER.search(text, last_end, match.start()) is not None
            events.append(CheckEvent(-1, previous, value, gold, marked))
        previous, last_end = value, match.end()
    return events


def analyze_checks(completion: str, terms: Sequence[int], gold: int | str | None = None) -> CheckReport:
    """Parse the running-sum chain of ``completion`` and report what its checks did.

    Args:
        completion: The response text.
        terms: The problem's signed terms (``problem_terms``).
        gold: The gold answer; defaults to ``sum(terms)``.

    >>> r = analyze_checks("3+5=8, 8+2=11, wait, 8+2=10, the answer is 10.", [3, 5, 2])
    >>> r.checked, r.changed, r.fixed, r.broke, r.final
    (True, True, True, False, 10)
    >>> r = analyze_checks("3+5=8, 8+2=10, wait, 8+2=11, the answer is 11.", [3, 5, 2])
    >>> r.fixed, r.broke
    (False, True)
    >>> analyze_checks("3+5=8, 8+2=10, the answer is 10.", [3, 5, 2]).checked
    False
    """
    gold_value = sum(terms) if gold is None else _as_int(gold)
    truth = running_sums(terms)
    events = _chain_events(completion, truth) + _answer_events(completion, gold_value)
    markers = len(_MARKER.findall(completion))
    final = _final_answer(completion)
    final_correct = final is not None and final == gold_value
    return CheckReport(
        checked=bool(events) or markers > 0,
        changed=any(e.changed for e in events),
        fixed=final_correct and any(e.wrong_to_right for e in events),
        broke=not final_correct and any(e.right_to_wrong for e in events),
        final=final,
        final_correct=final_correct,
        markers=markers,
        events=tuple(events),
    )


def _as_int(gold: int | str) -> int | None:
    text = str(gold).strip()
    return int(text) if text.lstrip("-").isdigit() else None


def check_stats(reports: Sequence[CheckReport], prefix: str = "checks/") -> dict[str, float]:
    """Check rate over all responses; changed, fixed and broke shares among the responses that check.

    ``{prefix}n`` is the number of checking responses (to pool the shares over steps). The shares are
    left out when no response checks (no NaN in ``metrics.jsonl``).

    >>> fix = analyze_checks("3+5=8, 8+2=11, wait, 8+2=10, the answer is 10.", [3, 5, 2])
    >>> plain = analyze_checks("3+5=8, 8+2=10, the answer is 10.", [3, 5, 2])
    >>> check_stats([fix, plain, plain, plain])
    {'checks/rate': 0.25, 'checks/n': 1.0, 'checks/changed': 1.0, 'checks/fixed': 1.0, 'checks/broke': 0.0}
    """
    if not reports:
        raise ValueError("check_stats needs at least one report")
    checking = [r for r in reports if r.checked]
    out = {f"{prefix}rate": len(checking) / len(reports), f"{prefix}n": float(len(checking))}
    if checking:
        for name in ("changed", "fixed", "broke"):
            out[f"{prefix}{name}"] = sum(getattr(r, name) for r in checking) / len(checking)
    return out


def record_checks(records: Sequence[Mapping], prefix: str = "checks/") -> dict[str, float]:
    """``check_stats`` of scored records (``prompt``, ``completion``, ``gold``) whose prompt is a chain sum.

    Records whose prompt holds no ``What is a+b...?`` question are skipped; with none left the result is
    empty, so other tasks log no ``checks/*`` keys.

    >>> recs = [{"prompt": "User: What is 3+5+2?\\nAssistant:", "gold": "10",
    ...          "completion": " 3+5=8, 8+2=11, wait, 8+2=10, the answer is 10."}]
    >>> record_checks(recs)["checks/fixed"], record_checks([{"prompt": "Hi", "completion": "", "gold": "1"}])
    (1.0, {})
    """
    reports = []
    for record in records:
        terms = problem_terms(str(record.get("prompt", "")))
        if terms is not None:
            reports.append(analyze_checks(str(record.get("completion", "")), terms, record.get("gold")))
    return check_stats(reports, prefix) if reports else {}


def heldout_checks(rows: Sequence[Mapping], prefix: str = "heldout/checks/") -> dict[int, dict[str, float]]:
    """``check_stats`` per evaluation step of a run's ``heldout.jsonl`` rows (step 0 is the base model).

    The question and gold of each held-out problem are written once, keyed by ``id``; rows of problems
    without a running-sum question are skipped.

    >>> rows = [{"step": 0, "id": "a", "question": "What is 3+5+2?", "gold": "10",
    ...          "completion": "3+5=8, 8+2=11, wait, 8+2=10, the answer is 10."},
    ...         {"step": 10, "id": "a", "completion": "3+5=8, 8+2=10, the answer is 10."}]
    >>> heldout_checks(rows)[0]["heldout/checks/fixed"], heldout_checks(rows)[10]["heldout/checks/rate"]
    (1.0, 0.0)
    """
    problems = {
        row["id"]: (problem_terms(str(row["question"])), row.get("gold")) for row in rows if "question" in row
    }
    by_step: dict[int, list[CheckReport]] = defaultdict(list)
    for row in rows:
        terms, gold = problems.get(row.get("id"), (None, None))
        if terms is not None:
            by_step[int(row.get("step", 0))].append(
                analyze_checks(str(row.get("completion", "")), terms, gold)
            )
    return {step: check_stats(reports, prefix) for step, reports in sorted(by_step.items())}
