"""Size and complexity guards that run before sympy sees an answer, so hostile text is refused instantly.

sympy will happily try to expand ``9^{9^{9^9}}`` or ``1000000!`` and never come back; a wall-clock limit
stops the damage, but only after the limit has been spent and a worker process killed. These checks are
pure regex/arithmetic on the text and take microseconds. Limits are generous for real answers (the longest
MATH answers are a few hundred characters).
"""

from __future__ import annotations

import math
import re

__all__ = [
    "MAX_ANSWER_CHARS",
    "MAX_DIGITS",
    "MAX_FACTORIAL",
    "MAX_NESTING",
    "MAX_VALUE_DIGITS",
    "guard_answer",
    "magnitude_digits",
    "malformed",
]

#: Longest answer text accepted.
MAX_ANSWER_CHARS = 1000
#: Largest number of decimal digits a power of integer literals may have.
MAX_DIGITS = 10_000
#: Largest number of digits any value built by an answer's arithmetic may have (5000! has 16,326).
MAX_VALUE_DIGITS = 20_000
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
    if magnitude_digits(text) > MAX_VALUE_DIGITS:  # (10^{10})^{(10^{10})}, \binom{10^9}{10^5}, (10^{10})!
        return "huge_value"
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


_MAGNITUDE_TOKEN = re.compile(r"\d+(?:\.\d+)?|\\[a-zA-Z]+|[a-zA-Z]|[-+*/^!(){}]|\S")
_SKIPPED = frozenset([r"\left", r"\right", r"\displaystyle", r"\bigl", r"\bigr", r"\Bigl", r"\Bigr"])
_TIMES = frozenset(["*", r"\cdot", r"\times", "/", r"\div"])
_TWO_ARGS = frozenset([r"\frac", r"\dfrac", r"\tfrac", r"\binom", r"\dbinom", r"\tbinom"])
_LOG_SYMBOL = math.log10(4)  # a symbol (x, \pi) counts as a value of about 4


def magnitude_digits(text: str) -> float:
    """An upper bound on the decimal digits of the largest value a formula's arithmetic may build, with
    powers of powers, factorials and binomials of powers estimated in log space (never computed).

    Symbols count as small values (about 4), so ``(x+1)^{10^{10}}``, which sympy would try to expand, is
    as huge as ``5^{10^{10}}``. Text that is not arithmetic (commas, relations) splits the formula into
    pieces, each bounded on its own.

    >>> magnitude_digits(r"(10^{10})^{(10^{10})}") > 1e10, magnitude_digits(r"\\binom{10^9}{10^5}") > 1e5
    (True, True)
    >>> round(magnitude_digits(r"2^{10} + \\frac{3}{4}")), magnitude_digits(r"\\binom{100}{50}") < 200
    (3, True)
    """
    tokens = [t for t in _MAGNITUDE_TOKEN.findall(text) if t not in _SKIPPED]
    position, largest = 0, 0.0
    while position < len(tokens):
        try:
            value, end = _sum(tokens, position)
        except (IndexError, ValueError, OverflowError, RecursionError, _NotArithmetic):
            value, end = 0.0, position
        largest = max(largest, value)
        position = max(end, position + 1)
    return largest


class _NotArithmetic(Exception):
    pass


def _sum(tokens: list[str], i: int) -> tuple[float, int]:
    value, i = _product(tokens, i)
    while i < len(tokens) and tokens[i] in "+-":
        right, i = _product(tokens, i + 1)
        value = max(value, right) + math.log10(2)
    return value, i


def _product(tokens: list[str], i: int) -> tuple[float, int]:
    value, i = _power(tokens, i)
    while i < len(tokens) and (tokens[i] in _TIMES or _starts_atom(tokens[i])):
        if tokens[i] in _TIMES:
            i += 1
        right, i = _power(tokens, i)
        value = value + abs(right)
    return value, i


def _power(tokens: list[str], i: int) -> tuple[float, int]:
    base, i = _postfix(tokens, i)
    if i < len(tokens) and tokens[i] == "^":
        exponent, i = _power(tokens, i + 1)
        if base <= 0:
            return 0.0, i
        return (math.inf if exponent > 300 else base * 10**exponent), i
    return base, i


def _postfix(tokens: list[str], i: int) -> tuple[float, int]:
    value, i = _atom(tokens, i)
    while i < len(tokens) and tokens[i] == "!":
        n = math.inf if value > 300 else 10**value
        value, i = (n * max(value, 0.0)), i + 1  # log10(n!) <= n log10(n)
    return value, i


def _starts_atom(token: str) -> bool:
    return (
        token[0] in "0123456789"
        or token.isalpha()
        or token in "({"
        or (token[0] == "\\" and token not in _TIMES)
    )


def _atom(tokens: list[str], i: int) -> tuple[float, int]:
    token = tokens[i]
    if token in "-+":
        return _atom(tokens, i + 1)
    if token[0] in "0123456789":
        return math.log10(max(float(token), 1.0)), i + 1
    if token in "({":
        value, i = _sum(tokens, i + 1)
        if i >= len(tokens) or tokens[i] not in ")}":
            raise _NotArithmetic(token)
        return value, i + 1
    if token in _TWO_ARGS:
        top, i = _atom(tokens, i + 1)
        bottom, i = _atom(tokens, i)
        if "binom" in token:  # log10 C(n, k) <= min(k, n - k) log10(n) <= k log10(n)
            return (math.inf if bottom > 300 else 10**bottom * max(top, 0.0)), i
        return top + abs(bottom), i
    if token == r"\sqrt":
        value, i = _atom(tokens, i + 1)
        return value / 2, i
    if token.isalpha() or (token[0] == "\\" and token not in _TIMES):
        return _LOG_SYMBOL, i + 1
    raise _NotArithmetic(token)


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
