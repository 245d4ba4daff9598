"""Countdown: reach a target from 3-6 numbers with + - * /, each number used exactly once.

The task of TinyZero and nano-aha-moment. Every target is reachable by construction (it is the value
of a random expression over the numbers), and ``solve_countdown`` re-checks that by exhaustive search
over exact rationals, the same space a Countdown verifier accepts.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from r1zero.data.registry import register_generator

__all__ = ["make_countdown", "solve_countdown"]

MAX_NUMBER = 99
MAX_TARGET = 999


@register_generator(
    "countdown", verifier="countdown", default_difficulty=(3, 4), levels=(3, 6), knob="count of numbers"
)
def make_countdown(rng: random.Random, level: int) -> tuple[str, str, dict[str, Any]]:
    """One Countdown problem with ``level`` numbers in 1..99 and a target in 1..999.

    >>> question, answer, meta = make_countdown(random.Random(0), 3)
    >>> len(meta["numbers"]), meta["target"] == int(answer), solve_countdown(meta["numbers"], meta["target"]) is not None
    (3, True, True)
    """
    while True:
        numbers = [rng.randint(1, MAX_NUMBER) for _ in range(level)]
        built = _random_expression(rng, numbers)
        if built is not None:
            target, witness = built
            break
    question = (
        f"Using the numbers {numbers}, create an equation that equals {target}. "
        "You can use basic arithmetic operations (+, -, *, /) and each number must be used exactly once."
    )
    return question, str(target), {"numbers": numbers, "target": target, "witness": witness}


def _random_expression(rng: random.Random, numbers: list[int]) -> tuple[int, str] | None:
    """Combine random pairs with random valid operations (positive integer results) until one value is left."""
    items = [(n, str(n)) for n in numbers]
    while len(items) > 1:
        i, j = rng.sample(range(len(items)), 2)
        (a, ea), (b, eb) = items[i], items[j]
        choices = [(a + b, f"({ea} + {eb})")]
        if a > b:
            choices.append((a - b, f"({ea} - {eb})"))
        if a * b <= MAX_TARGET * 10:
            choices.append((a * b, f"({ea} * {eb})"))
        if b > 1 and a % b == 0:
            choices.append((a // b, f"({ea} / {eb})"))
        value = rng.choice(choices)
        items = [item for k, item in enumerate(items) if k not in (i, j)] + [value]
    target, expression = items[0]
    if not 1 <= target <= MAX_TARGET:
        return None
    return target, expression[1:-1] if expression.startswith("(") else expression


def solve_countdown(numbers: list[int], target: int) -> str | None:
    """An expression using every number exactly once that equals ``target``, or None if there is none.

    Exhaustive depth-first search on values, with a memo of multisets already shown not to reach the
    target. A first pass keeps every intermediate a positive integer (the space targets are built in,
    and fast); only if it fails does a second pass search all of + - * / over exact fractions (so
    ``8 / (3 - 8 / 3)`` counts), the space a Countdown verifier accepts. None means both found nothing.

    >>> solve_countdown([4, 6, 2], 14)
    '(4 * 2) + 6'
    >>> solve_countdown([3, 3, 8, 8], 24)
    '8 / (3 - (8 / 3))'
    >>> solve_countdown([1, 1, 1], 100) is None
    True
    """
    for ops, kind in ((_positive_integer_ops, int), (_rational_ops, Fraction)):
        values = [kind(n) for n in numbers]
        steps = _search(values, kind(target), ops, set()) if len(values) > 1 else None
        if len(values) == 1 and values[0] == target:
            return str(numbers[0])
        if steps is not None:
            return _replay(values, steps)
    return None


Step = tuple[Any, str, Any, Any]  # (left value, op, right value, result)
Ops = Callable[[Any, Any], list[Step]]


def _search(values: list[Any], target: Any, ops: Ops, failed: set[tuple]) -> list[Step] | None:
    """Steps combining ``values`` (all of them) into ``target``, top-down order; None if impossible."""
    if len(values) == 2:
        for step in ops(values[0], values[1]):
            if step[3] == target:
                return [step]
        return None
    key = tuple(sorted(values))
    if key in failed:
        return None
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            rest = values[:i] + values[i + 1 : j] + values[j + 1 :]
            for step in ops(values[i], values[j]):
                found = _search([*rest, step[3]], target, ops, failed)
                if found is not None:
                    return [step, *found]
    failed.add(key)
    return None


def _replay(values: list[Any], steps: list[Step]) -> str:
    """Rebuild the expression: each step consumes two items of the given values (equal values are
    interchangeable) and adds their combination."""
    items = [(v, str(v)) for v in values]
    for left, op, right, result in steps:
        for wanted in (left, right):
            index = next(k for k, (v, _) in enumerate(items) if v == wanted)
            items.append(items.pop(index))
        (_, a), (_, b) = items.pop(-2), items.pop()
        items.append((result, f"({a} {op} {b})"))
    text = items[0][1]
    return text[1:-1] if _balanced(text[1:-1]) else text


def _positive_integer_ops(x: int, y: int) -> list[Step]:
    a, b = (x, y) if x >= y else (y, x)
    out = [(a, "+", b, a + b), (a, "*", b, a * b)]
    if a > b:
        out.append((a, "-", b, a - b))
    if a % b == 0:
        out.append((a, "/", b, a // b))
    return out


def _rational_ops(a: Fraction, b: Fraction) -> list[Step]:
    out = [(a, "+", b, a + b), (a, "*", b, a * b), (a, "-", b, a - b), (b, "-", a, b - a)]
    if b != 0:
        out.append((a, "/", b, a / b))
    if a != 0:
        out.append((b, "/", a, b / a))
    return out


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0
