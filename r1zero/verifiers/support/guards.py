"""Size and complexity guards that run before sympy sees an answer, so hostile text is refused instantly.

sympy will happily try to expand ``9^{9^{9^9}}`` or ``1000000!`` and never come back; a wall-clock limit
stops the damage, but only after the limit has been spent and a worker process killed. These checks are
pure regex/arithmetic on the text and take microseconds. Limits are generous for real answers (the longest
MATH answers are a few hundred characters).
"""

from __future__ import annotations

import math
import re

__all__ = ["MAX_ANSWER_CHARS", "MAX_DIGITS", "MAX_FACTORIAL", "MAX_NESTING", "guard_answer", "malformed"]

#: Longest answer text accepted.
MAX_ANSWER_CHARS = 1000
#: Largest number of decimal digits a power of integer literals may have.
MAX_DIGITS = 10_000
#: Largest integer whose factorial may be taken.
MAX_FACTORIAL = 5000
#: Deepest nesting of brackets/braces.
MAX_NESTING = 40

# A chain of integer literals joined by ^ or ** (braces/parentheses allowed around each): 9^{9^9}, 2**3**4.
_POWER_CHAIN = re.compile(r"(?<!\d)\d+(?:\s*(?:\^|\*\*)\s*[({]*\s*\d+)+")
# "--------" or "+++++" is not maths, and sympy can take seconds to refuse 900 of them.
_OPERATOR_RUN = re.compile(r"[-+*/^=]{8,}")
_FACTORIAL = re.compile(r"(?<!\d)(\d+)\s*!")
# Lowercase \gamma is a symbol (math.py makes sympy read it as one), not the gamma function.
_NESTED_FACTORIAL = re.compile(r"!\s*[)}]*\s*!|\\(?:Gamma|factorial)\b")
_BRACKET = re.compile(r"\\[{}]|(?<!\\)[{}]|[()\[\]]")
_HUGE_LITERAL = re.compile(r"(?<!\d)\d{" + str(MAX_DIGITS + 1) + ",}")


def guard_answer(text: str) -> str | None:
    """Return why ``text`` is refused before symbolic parsing, or None when it may be parsed.

    >>> guard_answer("2^{10}") is None
    True
    >>> guard_answer("9^{9^{9^{9}}}")
    'power_tower'
    >>> guard_answer("100000!")
    'huge_factorial'
    >>> guard_answer("(" * 100 + "1" + ")" * 100)
    'deep_nesting'
    """
    if len(text) > MAX_ANSWER_CHARS:
        return "too_long"
    if _HUGE_LITERAL.search(text):
        return "huge_number"
    if _nesting_depth(text) > MAX_NESTING:
        return "deep_nesting"
    if _OPERATOR_RUN.search(text):
        return "operator_run"
    for chain in _POWER_CHAIN.finditer(text):
        if _power_digits(chain.group(0)) > MAX_DIGITS:
            return "power_tower"
    if _NESTED_FACTORIAL.search(text):
        return "huge_factorial"
    if any(int(n) > MAX_FACTORIAL for n in _FACTORIAL.findall(text)):
        return "huge_factorial"
    return None


def malformed(text: str) -> bool:
    """Whether ``text`` is not a complete formula: unbalanced braces/brackets or a dangling operator.

    math-verify parses the longest piece it can, so ``2i\\}--`` would otherwise be read as ``2``.
    Round and square brackets are counted together: ``[1, 2)`` is an interval.

    >>> malformed("[1, 2)"), malformed(r"\\{1, 2\\}"), malformed(r"\\frac{1}{2"), malformed("3+"), malformed(")(")
    (False, False, True, True, True)
    """
    text = text.strip()
    if not text or text[-1] in "+-*/^=,." or text[0] in "*/^=,":
        return True
    depths = {"{": 0, "\\{": 0, "(": 0}
    for token in _BRACKET.findall(text):
        key = {"}": "{", "\\}": "\\{", ")": "(", "]": "(", "[": "("}.get(token, token)
        depths[key] += 1 if token in ("{", "\\{", "(", "[") else -1
        if depths[key] < 0:
            return True
    return any(depths.values())


def _nesting_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char in "({[":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")}]":
            depth = max(depth - 1, 0)
    return deepest


def _power_digits(chain: str) -> float:
    """Decimal digits of the right-associative power tower of the integer literals in ``chain``.

    >>> _power_digits("10^{3}")
    4.0
    >>> _power_digits("9^9^9") > 10**8
    True
    """
    numbers = [int(n) for n in re.findall(r"\d+", chain)]
    exponent = numbers[-1]
    for base in reversed(numbers[:-1]):
        if base <= 1:
            exponent = base
            continue
        if exponent > 10 * MAX_DIGITS:
            return math.inf
        digits = exponent * math.log10(base)
        if digits > MAX_DIGITS:
            return math.inf
        exponent = base**exponent
    return float(math.floor(math.log10(exponent)) + 1) if exponent > 0 else 1.0
