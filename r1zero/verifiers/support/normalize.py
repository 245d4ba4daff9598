"""Answer normalisation and the exact fast path (no sympy) for numbers and simple structures.

``normalize`` rewrites the surface forms that mean the same answer into one: unicode minus, thousands
separators, ``\\text{}`` units, degrees, ``\\dfrac``, mixed numbers (``7 3/4``), ``x = 3``, ordinal
suffixes, "3 million". ``parse_exact`` then reads numbers, fractions, decimals, percentages and
sets/lists/tuples/intervals of them into exact :class:`fractions.Fraction` values, so that most
answers are checked in microseconds without sympy.

Semantics (documented choices):

- Decimals are exact: ``0.5 == 1/2`` but ``0.333 != 1/3`` (MATH-style answers are exact).
- ``\\{…\\}`` and bare comma lists (``1, 2``) are unordered sets; every element is required.
- ``(a, b)`` / ``[a, b)`` etc. are ordered and the bracket types must match (a tuple or an interval).
- ``50%`` equals ``50`` and ``0.5``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "ExactValue",
    "choice_letter",
    "encloses",
    "evaluate_arithmetic",
    "exact_equal",
    "normalize",
    "parse_exact",
    "split_top_level",
]

_CHAR_MAP = str.maketrans(
    {
        "−": "-",
        "–": "-",
        "—": "-",
        "﹣": "-",
        "－": "-",
        "，": ",",
        "×": r"\times ",
        "·": r"\cdot ",
        "÷": r"\div ",
        "√": r"\sqrt",
        "π": r"\pi ",
        "∞": r"\infty ",
        "°": r"^\circ",
        "²": "^2",
        "³": "^3",
        "⁄": "/",
        **{chr(0xFF10 + i): str(i) for i in range(10)},
    }
)
_DROP = re.compile(
    r"\\left|\\right|\\displaystyle|(?<!\\)\\[!,;: ]|\\q?quad\b|~|\$|\\\(|\\\)|\\\[|\\\]|\\bigl|\\bigr|\\Bigl|\\Bigr"
)
_TEXT_CMD = re.compile(
    r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}"
)
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree|\bdegrees?\b")
_TRIG = re.compile(r"\\(?:sin|cos|tan|cot|sec|csc)")
_TRIG_DEGREES = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*\^\s*\{?\s*\\circ\s*\}?")
_ORDINAL = re.compile(r"(\d)\s*(?:\^\s*\{?\s*)?(?:st|nd|rd|th)\b\}?")
_SCALE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(thousand|million|billion|trillion)\b", re.IGNORECASE)
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_THOUSANDS = re.compile(r"(?<![\d.])[1-9]\d{0,2}(?:,\d{3})+(?![\d])")
# "x = 3", "m_{\max} = n^2-1", "\frac{dM}{dt} = kM": a named left-hand side; the value is the right-hand side.
_ASSIGNMENT = re.compile(
    r"^\s*(?:(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?|_\{\s*\\?[a-zA-Z]+\s*\})?(?:\([a-z]\))?"
    r"|\\frac\{d[a-zA-Z]\}\{d[a-zA-Z]\})\s*=\s*(?P<rhs>[^=]+)$"
)
_MIXED = re.compile(
    r"^(?P<sign>-?)(?P<whole>\d+)\s*(?:\s(?P<n1>\d+)/(?P<d1>\d+)|\\frac\{(?P<n2>\d+)\}\{(?P<d2>\d+)\})$"
)
# A number and unit words: each word must be followed by a separator, so matching is linear (no ReDoS).
_UNITS_TAIL = re.compile(
    r"^(?P<num>[-+]?[\d./]+%?)\s*[a-zA-Z]{2,}\.?(?:\^?\d)?(?:[\s/]+[a-zA-Z]+\.?(?:\^?\d)?)*$"
)
_CURRENCY = re.compile(r"\\?\$|\bdollars?\b|\bUSD\b|\bcents?\b|€|£|\\euro\b|\\pounds\b")
# A unit with a superscript after a number: "1,000.99m²", "12 km³".
_SUPERSCRIPT_UNIT = re.compile(r"(?<=\d)\s*[a-zA-Z]{1,3}[²³]\s*$")
_SEPARATOR_SPACE = re.compile(r"(?<=\d),\s*(?:\\[!,]\s*)+(?=\d{3}(?!\d))")
_SPACE_THOUSANDS = re.compile(r"-?\d{1,3}(?: \d{3})+(?:\.\d+)?")
_RELATION_ASCII = re.compile(r"<=|>=|!=|=<|=>|=/=")
_RELATION_LATEX = {
    "<=": r" \le ",
    "=<": r" \le ",
    ">=": r" \ge ",
    "=>": r" \ge ",
    "!=": r" \ne ",
    "=/=": r" \ne ",
}
_SQRT_PARENS = re.compile(r"\\sqrt\s*\(([^()]*)\)")
_MATRIX_ENV = re.compile(r"\\(begin|end)\{(?:bmatrix|Bmatrix|smallmatrix|matrix)\}|\\(end)\{array\}")
_ARRAY_SPEC = re.compile(r"\\begin\{array\}\s*\{[lcr|\s]*\}")
# A lone matrix in brackets left by \left[ … \right]: the brackets are the matrix's own.
_BRACKETED_MATRIX = re.compile(r"^[\[(]\s*(\\begin\{pmatrix\}.*\\end\{pmatrix\})\s*[\])]$", re.DOTALL)
# A unit in text after a value: "\frac{1}{3} \text{meters}", "12 \textbf{cm}^2" (not a text answer alone).
_UNIT_TEXT = re.compile(
    r"(?<=[\d}])\s*\\(?:text|textbf|textit|textrm|mathrm|mbox)\s*\{\s*[a-zA-Z]{1,12}(?:\s+[a-zA-Z]{1,12}){0,2}\s*\}"
    r"(?:\s*\^\s*\{?\d\}?)?\s*$"
)
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_FRACTION = re.compile(
    r"^(?P<sign>[+-]?)(?:(?P<n1>-?\d+(?:\.\d+)?)/(?P<d1>\d+(?:\.\d+)?)"
    r"|\\frac\{(?P<n2>-?\d+(?:\.\d+)?)\}\{(?P<d2>\d+(?:\.\d+)?)\}|\\frac(?P<n3>\d)(?P<d3>\d))$"
)
_REPEATING = re.compile(r"^(?P<sign>[+-]?)(?P<whole>\d*)\.(?P<fixed>\d*)\\overline\{?(?P<cycle>\d+)\}?$")
_INFINITY = re.compile(r"^(?P<sign>[+-]?)\\infty$")
_CHOICE = re.compile(r"^\(?\s*(?P<letter>[A-J])\s*\)?(?:[.:)]|\s|$)")

Number = Fraction | float  # float only for ±inf
_MAX_EXPONENT = 4096  # 2^4096 has 1234 digits: exact and instant; larger powers go to the guards and sympy
_MAX_FACTORIAL = 1000
_MAX_TOKENS = 200  # longer arithmetic goes to sympy (recursion depth stays small)
_MAX_BITS = 40_000  # largest power computed exactly here (about 12,000 digits)


@dataclass(frozen=True)
class ExactValue:
    """An answer read exactly.

    Attributes:
        kind: ``"number"``, ``"set"`` (unordered; also bare comma lists) or ``"sequence"`` (ordered,
            brackets matter: tuples and intervals).
        items: The numbers (one for ``"number"``); ``float("inf")`` for infinity.
        brackets: Opening and closing bracket of a sequence, e.g. ``"[)"``.
        percent: The number was written with ``%``.
    """

    kind: str
    items: tuple[Number, ...]
    brackets: str = ""
    percent: bool = False


def normalize(text: str, *, keep_assignment: bool = False) -> str:
    """Rewrite equivalent surface forms of an answer into one form (still LaTeX-ish text).

    >>> normalize(r"\\$1{,}234.50")
    '1234.50'
    >>> normalize(r"x = \\dfrac{3}{4}")
    '\\\\frac{3}{4}'
    >>> normalize("7 3/4"), normalize("−5"), normalize("3 million"), normalize("21st")
    ('31/4', '-5', '3000000', '21')
    >>> normalize(r"45^\\circ"), normalize(r"12\\text{ cm}^2"), normalize(r"50\\%")
    ('45', '12', '50%')
    """
    text = _SUPERSCRIPT_UNIT.sub("", text).translate(_CHAR_MAP)
    text = text.replace("{,}", ",").replace(r"\dfrac", r"\frac").replace(r"\tfrac", r"\frac")
    text = text.replace(r"\%", "%").replace(r"\dbinom", r"\binom").replace(r"\tbinom", r"\binom")
    text = re.sub(r"(\d)\\,(?=\d{3}\b)", r"\1", text)  # thin-space thousands separator: 1\,234
    text = _SEPARATOR_SPACE.sub(",", text)  # 12,\!345 and 3,\! 141,\! 592: a comma plus a LaTeX space
    text = _RELATION_ASCII.sub(lambda m: _RELATION_LATEX[m.group(0)], text)
    text = _SQRT_PARENS.sub(r"\\sqrt{\1}", text)
    text = _MATRIX_ENV.sub(_pmatrix, _ARRAY_SPEC.sub(r"\\begin{pmatrix}", text))
    text = _UNIT_TEXT.sub("", text)
    text = _CURRENCY.sub("", text)
    text = _DROP.sub(" ", text)
    for _ in range(3):
        text = _TEXT_CMD.sub(r"\1", text)
    if _TRIG.search(text):  # sin 30^\circ: degrees become radians for the symbolic path
        text = _TRIG_DEGREES.sub(r"{\\frac{\1\\pi}{180}}", text)
    text = _DEGREES.sub("", text)
    text = re.sub(r"\bpercent\b", "%", text)
    text = _ORDINAL.sub(r"\1", text)
    if not text.lstrip().startswith(("(", "[", r"\{", "{")):
        text = _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), text)
    text = _SCALE.sub(lambda m: _scaled(m.group(1), m.group(2)), text)
    text = " ".join(text.split()).rstrip(".").strip().replace(" %", "%")
    if _SPACE_THOUSANDS.fullmatch(text):  # "2 500", "1 000 000.5"
        text = text.replace(" ", "")
    text = _BRACKETED_MATRIX.sub(r"\1", text)
    if not keep_assignment and (assignment := _ASSIGNMENT.match(text)) is not None:
        text = assignment.group("rhs").strip()
    if (units := _UNITS_TAIL.match(text)) is not None:
        text = units.group("num")
    if (mixed := _MIXED.match(text)) is not None:
        text = _mixed(mixed)
    return text


def _pmatrix(match: re.Match) -> str:
    return "\\" + (match.group(1) or match.group(2)) + "{pmatrix}"


def _scaled(number: str, word: str) -> str:
    value = Fraction(number) * _SCALES[word.lower()]
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _mixed(match: re.Match) -> str:
    numerator = int(match.group("n1") or match.group("n2"))
    denominator = int(match.group("d1") or match.group("d2"))
    if denominator == 0 or numerator >= denominator:  # "2 3/2" is not a mixed number
        return match.group(0)
    value = int(match.group("whole")) + Fraction(numerator, denominator)
    value = -value if match.group("sign") else value
    return f"{value.numerator}/{value.denominator}"


def choice_letter(text: str) -> str | None:
    """The multiple-choice letter an answer starts with, if any.

    >>> choice_letter(r"(B)"), choice_letter("C) 12"), choice_letter("D"), choice_letter("Dog")
    ('B', 'C', 'D', None)
    """
    match = _CHOICE.match(normalize(text))
    return match.group("letter") if match else None


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets and braces.

    >>> split_top_level(r"(1,2), \\frac{1}{2}, [3,4)")
    ['(1,2)', '\\\\frac{1}{2}', '[3,4)']
    """
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def parse_exact(text: str) -> ExactValue | None:
    """Read a normalised answer exactly, or None when it needs symbolic maths.

    >>> parse_exact("-3/4")
    ExactValue(kind='number', items=(Fraction(-3, 4),), brackets='', percent=False)
    >>> parse_exact(r"\\{2, 1\\}").kind, parse_exact("[1, 2)").brackets, parse_exact(r"\\sqrt{2}")
    ('set', '[)', None)
    """
    text = text.strip()
    if text.startswith(r"\{") and text.endswith(r"\}"):
        items = _parse_items(text[2:-2])
        return None if items is None else ExactValue("set", items, brackets="{}")
    if text[:1] in "([" and text[-1:] in ")]" and encloses(text):
        items = _parse_items(text[1:-1])
        if items is not None and len(items) == 1 and text[0] + text[-1] == "()":  # redundant parentheses
            return ExactValue("number", items)
        if items is None or len(items) < 2:
            return None
        return ExactValue("sequence", items, brackets=text[0] + text[-1])
    if "," in text:
        items = _parse_items(text)
        return None if items is None else ExactValue("set", items)
    percent = text.endswith("%")
    body = text[:-1].strip() if percent else text
    number = parse_number(body)
    if number is None:
        number = evaluate_arithmetic(body)
    return None if number is None else ExactValue("number", (number,), percent=percent)


def encloses(text: str) -> bool:
    """True when the first bracket closes at the last character.

    >>> encloses("(1, (2))"), encloses(r"(0,1)\\cup(2,3)")
    (True, False)
    """
    depth = 0
    for i, char in enumerate(text):
        depth += char in "([{"
        depth -= char in ")]}"
        if depth == 0:
            return i == len(text) - 1
    return False


def _parse_items(text: str) -> tuple[Number, ...] | None:
    items = []
    for part in split_top_level(text):
        number = parse_number(part)
        if number is None and "=" not in part:
            number = evaluate_arithmetic(part)
        if number is None:
            return None
        items.append(number)
    return tuple(items)


def parse_number(text: str) -> Number | None:
    """An integer, decimal, repeating decimal, fraction (``a/b``, ``\\frac{a}{b}``, ``\\frac12``) or ±infinity.

    >>> parse_number(r"-\\frac{6}{8}"), parse_number("2.50"), parse_number("1/0"), parse_number(r"0.1\\overline{6}")
    (Fraction(-3, 4), Fraction(5, 2), None, Fraction(1, 6))
    """
    text = text.strip().replace(" ", "")
    if _NUMBER.match(text):
        return Fraction(text)
    if (repeating := _REPEATING.match(text)) is not None:
        return _repeating_decimal(repeating)
    if (inf := _INFINITY.match(text)) is not None:
        return float("-inf") if inf.group("sign") == "-" else float("inf")
    fraction = _FRACTION.match(text)
    if fraction is None:
        return None
    groups = fraction.groupdict()
    numerator = groups["n1"] or groups["n2"] or groups["n3"]
    denominator = groups["d1"] or groups["d2"] or groups["d3"]
    if Fraction(denominator) == 0:
        return None
    value = Fraction(numerator) / Fraction(denominator)
    return -value if groups["sign"] == "-" else value


_TOKEN = re.compile(r"\s*(\d+(?:\.\d+)?|\\(?:frac|sqrt|binom|cdot|times|div)\b|[-+*/^!(){}])")
_OPERATOR_WORDS = {r"\cdot": "*", r"\times": "*", r"\div": "/"}


def evaluate_arithmetic(text: str) -> Fraction | None:
    """Exact value of plain arithmetic (``+ - * / ^ !``, ``\\frac``, ``\\sqrt`` of a perfect square,
    ``\\binom``), or None for anything else (symbols, irrational roots, huge powers): sympy decides those.

    An equation chain whose sides all agree (``8 * 5 + 8 * 3 = 64``) has that value.

    >>> evaluate_arithmetic(r"2^{10} - 4!"), evaluate_arithmetic(r"\\frac{\\sqrt{16}}{6}"), evaluate_arithmetic("2x")
    (Fraction(1000, 1), Fraction(2, 3), None)
    >>> evaluate_arithmetic("3 * 4 = 12"), evaluate_arithmetic("3 * 4 = 13"), evaluate_arithmetic(r"\\sqrt{2}")
    (Fraction(12, 1), None, None)
    """
    values = {_evaluate_side(side) for side in text.split("=")}
    return values.pop() if len(values) == 1 else None


def _evaluate_side(text: str) -> Fraction | None:
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if match is None:
            return None
        tokens.append(_OPERATOR_WORDS.get(match.group(1), match.group(1)))
        pos = match.end()
    if not tokens or len(tokens) > _MAX_TOKENS:
        return None
    try:
        value, end = _expr(tokens, 0)
    except (ArithmeticError, IndexError, ValueError, TypeError, RecursionError):
        return None
    return value if end == len(tokens) else None


def _expr(tokens: list[str], i: int) -> tuple[Fraction, int]:
    value, i = _term(tokens, i)
    while i < len(tokens) and tokens[i] in "+-":
        right, j = _term(tokens, i + 1)
        value, i = (value + right if tokens[i] == "+" else value - right), j
    return value, i


def _term(tokens: list[str], i: int) -> tuple[Fraction, int]:
    value, i = _unary(tokens, i)
    while i < len(tokens) and tokens[i] in ("*", "/"):
        right, j = _unary(tokens, i + 1)
        value, i = (value * right if tokens[i] == "*" else value / right), j
    return value, i


def _unary(tokens: list[str], i: int) -> tuple[Fraction, int]:
    if tokens[i] in "+-":
        value, j = _unary(tokens, i + 1)
        return (-value if tokens[i] == "-" else value), j
    return _power(tokens, i)


def _power(tokens: list[str], i: int) -> tuple[Fraction, int]:
    base, i = _postfix(tokens, i)
    if i < len(tokens) and tokens[i] == "^":
        exponent, i = _unary(tokens, i + 1)  # right-associative: 2^3^2 = 2^9
        bits = base.numerator.bit_length() + base.denominator.bit_length()
        if exponent.denominator != 1 or abs(exponent) > _MAX_EXPONENT or bits * abs(exponent) > _MAX_BITS:
            raise ValueError("not a small integer exponent")
        base = base**exponent
    return base, i


def _postfix(tokens: list[str], i: int) -> tuple[Fraction, int]:
    value, i = _atom(tokens, i)
    while i < len(tokens) and tokens[i] == "!":
        if value.denominator != 1 or not 0 <= value <= _MAX_FACTORIAL:
            raise ValueError("factorial of a non-integer or huge number")
        value, i = Fraction(math.factorial(int(value))), i + 1
    return value, i


def _atom(tokens: list[str], i: int) -> tuple[Fraction, int]:
    token = tokens[i]
    if token[0].isdigit():
        return Fraction(token), i + 1
    if token in "({":
        value, i = _expr(tokens, i + 1)
        if tokens[i] != {"(": ")", "{": "}"}[token]:
            raise ValueError("unbalanced")
        return value, i + 1
    if token == r"\frac":
        numerator, i = _atom(tokens, i + 1)
        denominator, i = _atom(tokens, i)
        return numerator / denominator, i
    if token == r"\binom":
        n, i = _atom(tokens, i + 1)
        k, i = _atom(tokens, i)
        if n.denominator != 1 or k.denominator != 1 or not 0 <= n <= _MAX_FACTORIAL:
            raise ValueError("binomial of non-integers")
        return Fraction(math.comb(int(n), int(k)) if k >= 0 else 0), i
    if token == r"\sqrt":
        value, i = _atom(tokens, i + 1)
        root = Fraction(math.isqrt(value.numerator), math.isqrt(value.denominator))
        if value < 0 or root * root != value:
            raise ValueError("irrational root")
        return root, i
    raise ValueError(f"unexpected token {token!r}")


def _repeating_decimal(match: re.Match) -> Fraction:
    """``A.B\\overline{C}`` = (ABC - AB) / (10^len(B) * (10^len(C) - 1)), e.g. 0.1(6) = 1/6."""
    whole, fixed, cycle = match.group("whole") or "0", match.group("fixed"), match.group("cycle")
    value = Fraction(
        int(whole + fixed + cycle) - int(whole + fixed), 10 ** len(fixed) * (10 ** len(cycle) - 1)
    )
    return -value if match.group("sign") == "-" else value


def exact_equal(gold: ExactValue, answer: ExactValue) -> bool:
    """Whether two exactly-read answers are the same, with the semantics in the module docstring.

    >>> exact_equal(parse_exact("1, 2"), parse_exact(r"\\{2, 1\\}"))
    True
    >>> exact_equal(parse_exact("(1, 2)"), parse_exact("(2, 1)")), exact_equal(parse_exact("[1,2)"), parse_exact("[1,2]"))
    (False, False)
    >>> exact_equal(parse_exact("0.5"), parse_exact("50%"))
    True
    """
    if gold.kind == "number" or answer.kind == "number":
        if len(gold.items) != 1 or len(answer.items) != 1 or "sequence" in (gold.kind, answer.kind):
            return False
        return _numbers_equal(gold, answer)
    if gold.kind == "sequence" or answer.kind == "sequence":
        return gold.kind == answer.kind and gold.brackets == answer.brackets and gold.items == answer.items
    if "{}" in (gold.brackets, answer.brackets):  # a set: \{1, 2\} = \{1, 2, 2\}
        return set(gold.items) == set(answer.items)
    return Counter(gold.items) == Counter(answer.items)  # a list: "16, 3, 1" is not "16, 3, 1, 1"


def _numbers_equal(gold: ExactValue, answer: ExactValue) -> bool:
    """Percent on both sides compares the written numbers (``0.4%`` is not ``40%``); on one side only, the
    number may be written either way (``40%`` answers ``0.4`` and ``40``, as math-verify reads it)."""
    g, a = gold.items[0], answer.items[0]
    if gold.percent == answer.percent or not (isinstance(g, Fraction) and isinstance(a, Fraction)):
        return g == a
    if gold.percent:
        return a in (g, g / 100)
    return g in (a, a / 100)
