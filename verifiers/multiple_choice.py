"""``multiple_choice``: the answer is one option letter, A to E (AQuA, MMLU, GPQA-style sets).

Load it by path: ``r1zero verify --verifier verifiers/multiple_choice.py --gold B --response ...``.

An answer names one letter, alone or with the option's text: ``B``, ``(B)``, ``[b]``, ``B.``,
``B) 42 apples``, ``Option B``, ``\\text{(B)}``. A lowercase letter counts only when it cannot be the
article "a" in a sentence (``a`` or ``(a)`` alone, not "a triangle"). An answer that names several
letters ("A or B", "A, C") is ``rejected``: a policy that lists options would otherwise be paid for it.
A gold that is not one letter A-E is ``bad_gold``.
"""

from __future__ import annotations

import re

from r1zero.verifiers import Verdict, register
from r1zero.verifiers.extract import extract_answer
from r1zero.verifiers.format import check_format
from r1zero.verifiers.reward import compose_reward

#: Longest answer text looked at (a letter and its option's text); a longer one is rejected.
MAX_ANSWER_CHARS = 300

_LATEX_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_LEAD_WORD = re.compile(r"^(?:(?:the\s+)?(?:correct\s+)?(?:option|choice|answer)\s*(?:is\s*)?:?\s*)", re.I)
_WRAPPED = re.compile(r"[(\[]([A-Ea-e])[)\]](?:[\s.:].*)?", re.DOTALL)  # (B), [b], (B) 42
_BARE_UPPER = re.compile(r"([A-E])(?:[.:)](?:\s.*)?)?", re.DOTALL)  # B, B., B: 42, B) 42
_BARE_LOWER = re.compile(r"([a-e])[.:)]?")  # b, b. -- alone only
_ANY_LETTER = re.compile(r"(?<![A-Za-z])[A-E](?![A-Za-z])")
_OPTION_MARKER = re.compile(r"(?<![A-Za-z])[(\[]?([A-E])[)\].:]")  # "A)", "(B)", "C." starting an option


def parse_choice(text: str) -> str | None:
    """The one option letter ``text`` names (upper case), or None.

    >>> [parse_choice(t) for t in ["B", "(c)", "Option D", "E) 42 apples", "a", "a triangle", "A) 3 B) 4"]]
    ['B', 'C', 'D', 'E', 'A', None, None]
    """
    text = _LATEX_WRAPPER.sub(r"\1", text.replace("$", "")).strip()
    text = _LEAD_WORD.sub("", text).strip()
    for pattern in (_WRAPPED, _BARE_UPPER, _BARE_LOWER):
        match = pattern.fullmatch(text)
        if match:
            several = len(set(_OPTION_MARKER.findall(text)) | {match.group(1).upper()}) > 1
            return None if several else match.group(1).upper()
    return None


@register("multiple_choice")
def verify_multiple_choice(response: str, gold: str, **meta) -> Verdict:
    """Score ``response`` against a gold option letter; reward 1 for the same letter.

    >>> verify_multiple_choice("<think>x</think> <answer>(b)</answer>", "B").reason
    'correct'
    >>> verify_multiple_choice("<think>x</think> <answer>B or C</answer>", "B").reason
    'rejected'
    >>> verify_multiple_choice("<answer>B</answer>", "42").reason
    'bad_gold'
    """
    gold_letter = parse_choice(gold) if isinstance(gold, str) and len(gold) <= MAX_ANSWER_CHARS else None
    if gold_letter is None:
        return Verdict(0.0, False, False, "bad_gold", None, {"accuracy": 0.0})
    if not isinstance(response, str):
        return Verdict(0.0, False, False, "no_answer", None, {"accuracy": 0.0})
    formatted = check_format(response).ok
    extraction = extract_answer(response)
    answer = extraction.answer
    if answer is None:
        return _verdict(False, formatted, "no_answer", None)
    if extraction.conflicting or len(answer) > MAX_ANSWER_CHARS:
        return _verdict(False, formatted, "rejected", answer)
    letter = parse_choice(answer)
    if letter is None:
        several = len(set(_ANY_LETTER.findall(answer))) > 1
        return _verdict(False, formatted, "rejected" if several else "unparseable", answer)
    correct = letter == gold_letter
    return _verdict(correct, formatted, "correct" if correct else "wrong", answer)


def _verdict(correct: bool, formatted: bool, reason: str, extracted: str | None) -> Verdict:
    reward, parts = compose_reward(correct, formatted)
    return Verdict(reward, correct, formatted, reason, extracted, parts)
