"""``numeric_tolerance``: a number within a relative tolerance of the gold (measured or rounded answers).

Load it by path: ``r1zero verify --verifier verifiers/numeric_tolerance.py --gold 9.81 --response ...``.

For physics- or statistics-style answers where the last digit depends on rounding (SciBench-style grading
uses a relative tolerance too). Correct when ``math.isclose(answer, gold, rel_tol, abs_tol)``: 1% by
default, per problem through the ``rel_tol`` / ``abs_tol`` meta keys. An answer is one number, written
plainly or in LaTeX: ``1,234.5``, ``-0.25``, ``3.0e8``, ``3 \\times 10^{8}``, ``\\frac{1}{3}``, ``7/8``,
with an optional unit (``9.8 m/s^2``, ``\\text{ kg}``). Hedged answers ("about 3", "3 or 4", "3-4", "± 0.1")
are ``rejected``; a gold that is not one number is ``bad_gold``.
"""

from __future__ import annotations

import math
import re

from r1zero.verifiers import Verdict, register
from r1zero.verifiers.extract import extract_answer
from r1zero.verifiers.format import check_format
from r1zero.verifiers.reward import compose_reward

#: Default relative tolerance, and the absolute one that decides near a gold of 0.
REL_TOL = 1e-2
ABS_TOL = 1e-9
#: Longest answer text looked at; a longer one is rejected.
MAX_ANSWER_CHARS = 100

_DECIMAL = r"[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)"
_UNIT_WORD = r"[a-zA-Z°µΩ]+(?:\^\{?-?\d\}?)?"  # m, s^2, s^{-1}
# An optional unit after the number: %, or words joined by spaces, "/", "*" or "·" ("e5" is an exponent).
# The separator is never empty, so a run of letters splits into words one way only (no backtracking blow-up).
_UNIT = rf"(?:\s*%|\s*(?![eE][-+]?\d){_UNIT_WORD}(?:(?:\s+|\s*[/*·]\s*){_UNIT_WORD})*)?"
_SCIENTIFIC = re.compile(
    rf"({_DECIMAL})(?:\s*[eE]([-+]?\d{{1,4}})|\s*(?:\\times|\\cdot|×|\*)\s*10\s*\^\s*\{{?([-+]?\d{{1,4}})\}}?)?{_UNIT}"
)
_FRACTION = re.compile(
    rf"([-+]?)(?:\\[dt]?frac\{{(\d{{1,30}})\}}\{{(\d{{1,30}})\}}|(\d{{1,30}})\s*/\s*(\d{{1,30}})){_UNIT}"
)
_LATEX_NOISE = re.compile(r"\\[,!;: ]|\\left|\\right|\\\$|\$|\\(?:text|mathrm)\s*\{([^{}]*)\}")
_HEDGE = re.compile(
    r"\b(?:or|and|to|between|about|around|approx\w*|roughly|nearly|almost|maybe|at least|at most)\b"
    r"|[~≈±<>≤≥]|\\(?:pm|approx|sim|le|ge)\b|\d\s*-\s*\d",
    re.IGNORECASE,
)


def parse_value(text: str) -> float | None:
    """The one finite number ``text`` states, or None.

    >>> [parse_value(t) for t in ["1,234.5", "3 \\\\times 10^{8} m/s", "\\\\frac{1}{4}", "7/8", "2.5e-3", "x"]]
    [1234.5, 300000000.0, 0.25, 0.875, 0.0025, None]
    """
    text = _LATEX_NOISE.sub(lambda m: m.group(1) or "", text.replace("−", "-")).strip().rstrip(".").strip()
    if (match := _SCIENTIFIC.fullmatch(text)) is not None:
        mantissa, exponent = match.group(1).replace(",", ""), match.group(2) or match.group(3) or "0"
        value = float(f"{mantissa}e{exponent}")
    elif (match := _FRACTION.fullmatch(text)) is not None:
        numerator, denominator = int(match.group(2) or match.group(4)), int(match.group(3) or match.group(5))
        value = (-1 if match.group(1) == "-" else 1) * numerator / denominator if denominator else math.inf
    else:
        return None
    return value if math.isfinite(value) else None


@register("numeric_tolerance")
def verify_numeric_tolerance(response: str, gold: str, **meta) -> Verdict:
    """Score ``response`` against a numeric ``gold``; reward 1 within ``rel_tol`` (meta, default 1%).

    >>> verify_numeric_tolerance("<think>g</think> <answer>9.8 m/s^2</answer>", "9.81").reason
    'correct'
    >>> verify_numeric_tolerance("<think>g</think> <answer>9.5</answer>", "9.81").reason
    'wrong'
    >>> verify_numeric_tolerance("<think>g</think> <answer>9.5</answer>", "9.81", rel_tol=0.05).reason
    'correct'
    >>> verify_numeric_tolerance("<think>g</think> <answer>about 10</answer>", "9.81").reason
    'rejected'
    """
    gold_value = parse_value(gold) if isinstance(gold, str) and len(gold) <= MAX_ANSWER_CHARS else None
    if gold_value is None:
        return Verdict(0.0, False, False, "bad_gold", None, {"accuracy": 0.0})
    if not isinstance(response, str):
        return Verdict(0.0, False, False, "no_answer", None, {"accuracy": 0.0})
    formatted = check_format(response).ok
    extraction = extract_answer(response)
    answer = extraction.answer
    if answer is None:
        return _verdict(False, formatted, "no_answer", None)
    if extraction.conflicting or len(answer) > MAX_ANSWER_CHARS or _HEDGE.search(answer.lstrip("-+ ")):
        return _verdict(False, formatted, "rejected", answer)
    value = parse_value(answer)
    if value is None:
        return _verdict(False, formatted, "unparseable", answer)
    rel_tol, abs_tol = _tolerance(meta.get("rel_tol"), REL_TOL), _tolerance(meta.get("abs_tol"), ABS_TOL)
    correct = math.isclose(value, gold_value, rel_tol=rel_tol, abs_tol=abs_tol)
    return _verdict(correct, formatted, "correct" if correct else "wrong", answer)


def _tolerance(value: object, default: float) -> float:
    """A usable tolerance from a meta value (a number in [0, 1)), else the default."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1
    return float(value) if ok else default


def _verdict(correct: bool, formatted: bool, reason: str, extracted: str | None) -> Verdict:
    reward, parts = compose_reward(correct, formatted)
    return Verdict(reward, correct, formatted, reason, extracted, parts)
