"""``exact_string``: reward 1 when the extracted answer equals the gold, ignoring case and outer spaces.

The example of the README's "Adding a verifier", as a file to load by path (this folder is never
imported as a package)::

    r1zero verify --verifier verifiers/exact_string.py --gold a --response '<think>x</think> <answer>A</answer>'
    r1zero train --reward.verifier verifiers/exact_string.py ...

For answers that are names, labels or words, where "the same answer" means the same text. Nothing is
normalised beyond case and outer whitespace ("New York" does not match "New York City"). A gold that
could not be a finished answer (blank, no letter or digit, unbalanced brackets) is ``bad_gold``: a
response that copies it would otherwise be paid for the copy. Several ``<answer>`` blocks that disagree
are ``rejected`` rather than matched one by one.
"""

from __future__ import annotations

from r1zero.verifiers import Verdict, register
from r1zero.verifiers.extract import extract_answer
from r1zero.verifiers.format import check_format
from r1zero.verifiers.reward import compose_reward

_BRACKETS = {")": "(", "]": "[", "}": "{"}


@register("exact_string")
def verify_exact_string(response: str, gold: str, **meta) -> Verdict:
    """Score ``response`` against ``gold`` by exact text, ignoring case and outer spaces.

    >>> verify_exact_string("<think>x</think> <answer> Paris </answer>", "paris").reason
    'correct'
    >>> verify_exact_string("<think>x</think> <answer>Lyon</answer>", "Paris").reason
    'wrong'
    >>> verify_exact_string("<answer>Paris</answer> <answer>Lyon</answer>", "Paris").reason
    'rejected'
    >>> verify_exact_string("<answer>???</answer>", "???").reason
    'bad_gold'
    """
    if not isinstance(gold, str) or not _usable_gold(gold.strip()):
        return Verdict(0.0, False, False, "bad_gold", None, {"accuracy": 0.0})
    if not isinstance(response, str):
        return Verdict(0.0, False, False, "no_answer", None, {"accuracy": 0.0})
    formatted = check_format(response).ok
    extraction = extract_answer(response)
    if extraction.answer is None:
        return _verdict(False, formatted, "no_answer", None)
    if extraction.conflicting:
        return _verdict(False, formatted, "rejected", extraction.answer)
    correct = extraction.answer.strip().casefold() == gold.strip().casefold()
    return _verdict(correct, formatted, "correct" if correct else "wrong", extraction.answer)


def _usable_gold(gold: str) -> bool:
    """Whether ``gold`` could be a finished answer: some letter or digit, brackets balanced.

    >>> [_usable_gold(g) for g in ["Paris", "f(x)", "", "???", "\\\\frac{"]]
    [True, True, False, False, False]
    """
    if not any(ch.isalnum() for ch in gold):
        return False
    stack: list[str] = []
    for ch in gold:
        if ch in "([{":
            stack.append(ch)
        elif ch in _BRACKETS and (not stack or stack.pop() != _BRACKETS[ch]):
            return False
    return not stack


def _verdict(correct: bool, formatted: bool, reason: str, extracted: str | None) -> Verdict:
    reward, parts = compose_reward(correct, formatted)
    return Verdict(reward, correct, formatted, reason, extracted, parts)
