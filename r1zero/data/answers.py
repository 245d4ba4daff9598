"""Answer rules (how a dataset stores its gold answer) and a coarse answer-type classifier.

Each rule turns a raw field value into the gold string. They live in one table, ``ANSWER_RULES``,
so a dataset spec names its rule instead of code branching on dataset names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "ANSWER_RULES",
    "ANSWER_TYPES",
    "QUESTION_RULES",
    "apply_answer_rule",
    "classify_answer",
    "last_boxed",
]


def as_is(value: Any) -> str:
    """The field is already the gold string.

    >>> as_is(" 42 ")
    '42'
    """
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__} {value!r}")
    return value.strip()


def after_hashes(value: Any) -> str:
    """GSM8K: the text after the last ``####``, commas removed.

    >>> after_hashes("She makes 9 * 2 = $18.\\n#### 1,018")
    '1018'
    """
    text = as_is(value)
    if "####" not in text:
        raise ValueError(f"no '####' in {_short(text)!r}")
    return text.rsplit("####", 1)[1].strip().replace(",", "")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces matched; None if absent.

    >>> last_boxed(r"so $x = \\boxed{\\frac{1}{2}}$, not \\boxed{3")
    '\\\\frac{1}{2}'
    >>> last_boxed(r"the answer is \\boxed 7.") is None
    False
    """
    best: str | None = None
    for match in re.finditer(r"\\(?:boxed|fbox)\s*", text):
        start = match.end()
        if start < len(text) and text[start] == "{":
            content = _braced(text, start)
            if content is not None:
                best = content
        else:  # "\boxed 7": a single token, as MATH occasionally writes it
            token = re.match(r"[^\s$.,]+", text[start:])
            if token:
                best = token.group(0)
    return best.strip() if best is not None else None


def _braced(text: str, open_at: int) -> str | None:
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "\\":
            continue
        if text[i] == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif text[i] == "}" and text[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
    return None


def boxed_in_solution(value: Any) -> str:
    """MATH-style: the gold is the last ``\\boxed{}`` of the worked solution.

    >>> boxed_in_solution(r"Thus $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$")
    '\\\\left( 3, \\\\frac{\\\\pi}{2} \\\\right)'
    """
    content = last_boxed(as_is(value))
    if not content:
        raise ValueError(f"no \\boxed{{...}} in solution {_short(as_is(value))!r}")
    return content


def number(value: Any) -> str:
    """A numeric field (AMC stores ``27.0``); whole floats are written as integers.

    >>> number(27.0), number(7), number("0.5"), number(2.5)
    ('27', '7', '0.5', '2.5')
    """
    if isinstance(value, bool):
        raise TypeError(f"expected a number, got bool {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite number {value!r}")
        return str(int(value)) if value.is_integer() else repr(value)
    return as_is(value)


def join_list(value: Any) -> str:
    """OlympiadBench: a list of ``$...$`` answers, joined with ", " after stripping the dollars.

    >>> join_list(["$3$", "$-\\\\frac{1}{2}$"])
    '3, -\\\\frac{1}{2}'
    """
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"expected a list of strings, got {value!r}")
    return ", ".join(v.strip().strip("$").strip() for v in value)


#: rule name -> function(raw field value) -> gold string
ANSWER_RULES: dict[str, Callable[[Any], str]] = {
    "as_is": as_is,
    "after_hashes": after_hashes,
    "last_boxed": boxed_in_solution,
    "number": number,
    "join_list": join_list,
}


def apply_answer_rule(rule: str, value: Any) -> str:
    """Apply the named rule; unknown names are an error listing the valid ones."""
    if rule not in ANSWER_RULES:
        raise ValueError(f"unknown answer rule {rule!r}; valid: {', '.join(ANSWER_RULES)}")
    return ANSWER_RULES[rule](value)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_INTEGER = re.compile(r"-?(\d{1,3}(,\d{3})+|\d+)")
_DECIMAL = re.compile(r"-?\d*\.\d+")
_SCIENTIFIC = re.compile(r"-?\d+(\.\d+)?\s*(e[+-]?\d+|\\times\s*10\^\{?-?\d+\}?)", re.IGNORECASE)
_FRACTION = re.compile(r"-?(\d+\s*/\s*\d+|\\[dt]?frac\s*\{\s*-?\d+\s*\}\s*\{\s*\d+\s*\}|\\[dt]?frac\d\d)")
_CHOICE = re.compile(r"\(?[A-E]\)?")
_TEXT = re.compile(r"(\\(text|mathrm|textbf)\{)?[A-Za-z][A-Za-z ,'-]+\}?")
_TUPLE = re.compile(r"(\\left)?[(\[].*,.*(\\right)?[)\]]", re.DOTALL)

#: the categories ``classify_answer`` returns, in the order it tries them
ANSWER_TYPES = (
    "integer",
    "decimal",
    "scientific",
    "fraction",
    "choice",
    "tuple/interval",
    "text",
    "expression",
)


def classify_answer(gold: str) -> str:
    """A coarse type for a gold answer, for dataset summaries (not used for scoring).

    >>> [classify_answer(g) for g in ["1,000", "-0.5", "4.5e33", "\\\\frac{3}{4}", "(C)", "Evelyn"]]
    ['integer', 'decimal', 'scientific', 'fraction', 'choice', 'text']
    >>> [classify_answer(g) for g in ["\\\\left( 3, \\\\frac{\\\\pi}{2} \\\\right)", "p - q", "2\\\\sqrt{5}"]]
    ['tuple/interval', 'expression', 'expression']
    """
    text = gold.strip().strip("$").strip()
    checks = (
        ("integer", _INTEGER),
        ("decimal", _DECIMAL),
        ("scientific", _SCIENTIFIC),
        ("fraction", _FRACTION),
        ("choice", _CHOICE),
        ("tuple/interval", _TUPLE),
    )
    for name, pattern in checks:
        if pattern.fullmatch(text):
            return name
    words = re.findall(r"[A-Za-z]{2,}", text)
    if _TEXT.fullmatch(text) and any(len(w) > 2 and w.lower() not in _MATH_WORDS for w in words):
        return "text"
    return "expression"


_MATH_WORDS = {
    "sqrt",
    "frac",
    "dfrac",
    "pi",
    "infty",
    "cdot",
    "times",
    "left",
    "right",
    "circ",
    "log",
    "sin",
    "cos",
}


_DAPO_PREFIX = (
    "Solve the following math problem step by step. The last line of your response should be of the form "
    "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n"
)
_DAPO_SUFFIX = '\n\nRemember to put your answer on its own line after "Answer:".'


def strip_dapo_instruction(value: Any) -> str:
    """DAPO-Math-17k wraps each problem in its own answer-format instruction; keep the problem only.

    >>> strip_dapo_instruction(_DAPO_PREFIX + "What is 1+1?" + _DAPO_SUFFIX)
    'What is 1+1?'
    """
    text = as_is(value)
    text = text[len(_DAPO_PREFIX) :] if text.startswith(_DAPO_PREFIX) else text
    return (text[: -len(_DAPO_SUFFIX)] if text.endswith(_DAPO_SUFFIX) else text).strip()


#: rule name -> function(raw question field) -> question text
QUESTION_RULES: dict[str, Callable[[Any], str]] = {
    "as_is": as_is,
    "strip_dapo_instruction": strip_dapo_instruction,
}
