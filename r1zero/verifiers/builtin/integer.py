"""``integer``: exact integer answers (synthetic tasks, GSM8K-style golds).

Strict on purpose: the answer must be one integer, written plainly (``1,234``, ``-5``, ``12.0``, ``$12``,
``12 apples``). Hedged answers ("12 or 13", "about 12", "12-13") and answers with several numbers are
rejected rather than guessed at, since a policy that lists candidates would otherwise be paid for it.
A gold that is not an integer is ``bad_gold`` (reward 0), never a free reward.
"""

from __future__ import annotations

import re
from fractions import Fraction

from r1zero.verifiers.base import Verdict, register
from r1zero.verifiers.extract import extract_answer
from r1zero.verifiers.format import check_format
from r1zero.verifiers.reward import compose_reward

__all__ = ["parse_integer", "parse_plain_number", "verify_integer"]

#: Longest answer text looked at; a longer one is rejected.
MAX_ANSWER_CHARS = 200

_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_ONE_NUMBER = re.compile(rf"^\$?\s*({_NUMBER})\s*(?:%|[a-zA-Z][a-zA-Z ]*)?$")
_ANY_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_HEDGE = re.compile(
    r"\b(?:or|and|to|between|about|around|approx\w*|roughly|nearly|almost|maybe|perhaps|probably|"
    r"at least|at most|more|less|than|either)\b|[~≈±<>≤≥]|\d\s*-\s*\d",
    re.IGNORECASE,
)
_LATEX_NOISE = re.compile(r"\\[,!;: ]|\\(?:left|right)|\\\$|\\text\{([^{}]*)\}|\\mathrm\{([^{}]*)\}")
_ASSIGNMENT = re.compile(r"^[a-zA-Z]\w{0,10}\s*=\s*")


def parse_integer(text: str) -> int | None:
    """The integer ``text`` states plainly, or None.

    >>> [parse_integer(t) for t in ["1,234", "−5", "12.0", "$12", "12 apples", "12.5", "1,23", "x"]]
    [1234, -5, 12, 12, 12, None, None, None]
    """
    value = parse_plain_number(text)
    return int(value) if value is not None and value.denominator == 1 else None


def parse_plain_number(text: str) -> Fraction | None:
    """The one decimal number ``text`` states plainly (sign, thousands commas, ``$``, a unit), or None.

    >>> parse_plain_number("$1,234.50 dollars")
    Fraction(2469, 2)
    """
    text = text.replace("−", "-").replace("\u2009", "").replace("\u202f", "").strip().rstrip(".").strip()
    text = _LATEX_NOISE.sub(lambda m: m.group(1) or m.group(2) or "", text).replace("$", "").strip()
    match = _ONE_NUMBER.match(_ASSIGNMENT.sub("", text))
    return Fraction(match.group(1).replace(",", "")) if match else None


@register("integer")
def verify_integer(response: str, gold: str, **meta) -> Verdict:
    """Score ``response`` against an integer ``gold``; reward 1 for the right integer.

    >>> verify_integer("<think>5+7=12</think> <answer>12</answer>", "12").reason
    'correct'
    >>> verify_integer("<think>hm</think> <answer>12 or 13</answer>", "12").reason
    'rejected'
    >>> verify_integer("<answer>12</answer>", "twelve").reason
    'bad_gold'
    """
    gold_value = parse_integer(gold) if isinstance(gold, str) and len(gold) <= MAX_ANSWER_CHARS else None
    if gold_value is None:
        return Verdict(0.0, False, False, "bad_gold", None, {"accuracy": 0.0})
    if not isinstance(response, str):
        return Verdict(0.0, False, False, "no_answer", None, {"accuracy": 0.0})
    formatted = check_format(response).ok
    extraction = extract_answer(response)
    answer = extraction.answer
    if answer is None:
        return _verdict(False, formatted, "no_answer", None)
    if extraction.conflicting or len(answer) > MAX_ANSWER_CHARS or _is_hedged(answer):
        return _verdict(False, formatted, "rejected", answer)
    value = parse_plain_number(answer)
    if value is None:
        reason = "rejected" if len(_ANY_NUMBER.findall(answer)) > 1 else "unparseable"
        return _verdict(False, formatted, reason, answer)
    correct = value == gold_value
    return _verdict(correct, formatted, "correct" if correct else "wrong", answer)


def _is_hedged(answer: str) -> bool:
    return bool(_HEDGE.search(answer.replace("−", "-").lstrip("-+ ")))


def _verdict(correct: bool, formatted: bool, reason: str, extracted: str | None) -> Verdict:
    reward, parts = compose_reward(correct, formatted)
    return Verdict(reward, correct, formatted, reason, extracted, parts)
