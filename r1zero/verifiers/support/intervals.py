"""Sets of reals written as intervals, unions of intervals or one-variable inequalities, read exactly.

``-2 \\le x < 7`` and ``[-2, 7)`` are the same answer; math-verify decides that with sympy's ``as_set``
(~10-30 ms a pair); here both are read into :class:`~r1zero.verifiers.support.normalize.ExactValue` intervals
(exact fractions, ``float("inf")``) in microseconds. Pure: no sympy.
"""

from __future__ import annotations

import itertools
import re

from r1zero.verifiers.support.normalize import (
    ExactValue,
    Number,
    evaluate_arithmetic,
    parse_exact,
    parse_number,
)

__all__ = ["IntervalSet", "interval_set", "relation_interval"]

# "-2 \le x < 7", "x \ge 3", "3 < x": one variable between number bounds (math-verify reads these as sets
# with sympy's ``as_set``, ~10 ms each; here they are read exactly in microseconds).
_LESS = {"<": ")", r"\lt": ")", r"\le": "]", r"\leq": "]"}
_GREATER = {">": ")", r"\gt": ")", r"\ge": "]", r"\geq": "]"}
_REL = r"(<|>|\\(?:lt|gt|leq?|geq?)(?![A-Za-z]))"
_VARIABLE = r"([a-df-hj-zA-DF-HJ-Z])"  # one letter; not e, i, E, I (numbers or special to math-verify)
_CHAIN = re.compile(rf"^([^<>]*?)\s*{_REL}\s*{_VARIABLE}\s*{_REL}\s*(.+)$")
_MAX_RELATION_CHARS = 120
_BOUND = re.compile(rf"^{_VARIABLE}\s*{_REL}\s*(.+)$|^(.+?)\s*{_REL}\s*{_VARIABLE}$")


def relation_interval(text: str) -> ExactValue | None:
    """The interval a one-variable inequality with exact number bounds describes, or None.

    The result has the shape ``parse_exact`` gives an interval (``"sequence"``, brackets matter), with
    open brackets at infinity; an empty or one-point range is None (left to sympy).

    >>> relation_interval(r"-2 \\le x < 7").brackets, relation_interval(r"x \\ge 3")
    ('[)', ExactValue(kind='sequence', items=(Fraction(3, 1), inf), brackets='[)', percent=False))
    >>> relation_interval("3 > t").items, relation_interval("x < y < 3"), relation_interval("2 < x > 1")
    ((-inf, Fraction(3, 1)), None, None)
    """
    if len(text) > _MAX_RELATION_CHARS:
        return None
    if (chain := _CHAIN.match(text)) is not None:
        low, first, _, second, high = chain.groups()
        if first in _GREATER and second in _GREATER:
            (low, first), (high, second) = (high, _GREATER[second]), (low, _GREATER[first])
        elif first in _LESS and second in _LESS:
            first, second = _LESS[first], _LESS[second]
        else:
            return None
        return _interval(_bound(low), _bound(high), "(" if first == ")" else "[", second)
    if (bound := _BOUND.match(text)) is None:
        return None
    if bound.group(1) is not None:  # x < 3
        relation, number = bound.group(2), bound.group(3)
    else:  # 3 > x is x < 3
        relation, number = _FLIPPED.get(bound.group(5)), bound.group(4)
    value = _bound(number)
    if relation in _LESS:
        return _interval(float("-inf"), value, "(", _LESS[relation])
    if relation in _GREATER:
        return _interval(value, float("inf"), "(" if _GREATER[relation] == ")" else "[", ")")
    return None


_FLIPPED = {"<": ">", ">": "<", r"\lt": r"\gt", r"\gt": r"\lt", r"\le": r"\ge", r"\leq": r"\geq"}
_FLIPPED.update({r"\ge": r"\le", r"\geq": r"\leq"})


IntervalSet = tuple[tuple[ExactValue, ...], bool]


def interval_set(text: str, exact: ExactValue | None = None) -> IntervalSet | None:
    """The set of reals an answer describes as disjoint intervals, sorted, and whether it was written as
    an inequality; None when it is not one of: an interval (``exact``, its ``parse_exact``), a union of
    intervals (``\\cup``) or a one-variable inequality (``relation_interval``).

    Two such sets are equal exactly when their interval lists are. Intervals that touch or overlap
    (sympy would merge them), empty ones and closed infinite ends (sympy opens them) give None.

    >>> [(i.brackets, i.items) for i in interval_set(r"(2,3) \\cup (-\\infty, 1]")[0]]
    [('(]', (-inf, Fraction(1, 1))), ('()', (Fraction(2, 1), Fraction(3, 1)))]
    >>> interval_set(r"x \\ge 3")[1], interval_set(r"(0,2) \\cup (1,3)"), interval_set("(1, 2, 3)")
    (True, None, None)
    """
    if (interval := relation_interval(text)) is not None:
        return (interval,), True
    if text.count(r"\cup") >= _MAX_UNION:
        return None
    parts = [exact] if exact is not None else [parse_exact(part) for part in text.split(r"\cup")]
    if any(not _is_interval(part) for part in parts):
        return None
    parts.sort(key=lambda part: part.items[0])
    if any(left.items[1] >= right.items[0] for left, right in itertools.pairwise(parts)):
        return None
    return tuple(parts), False


_MAX_UNION = 16


def _is_interval(value: ExactValue | None) -> bool:
    if value is None or value.kind != "sequence" or len(value.items) != 2:
        return False
    (low, high), brackets = value.items, value.brackets
    return (
        low < high
        and not (low == float("-inf") and brackets[0] == "[")
        and not (high == float("inf") and brackets[1] == "]")
    )


def _bound(text: str | None) -> Number | None:
    if text is None or "=" in text:
        return None
    number = parse_number(text)
    return evaluate_arithmetic(text) if number is None else number


def _interval(low: Number | None, high: Number | None, left: str, right: str) -> ExactValue | None:
    if low is None or high is None or not low < high:
        return None
    if (low == float("-inf") and left == "[") or (high == float("inf") and right == "]"):
        return None  # "x \le \infty" and the like: left to sympy
    return ExactValue("sequence", (low, high), brackets=left + right)
