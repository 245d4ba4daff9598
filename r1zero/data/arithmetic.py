"""Arithmetic tasks: multi-digit +, -, *; sums of single-digit lists; mixed +/- chains.

``list_sum`` is the CPU demo's task (preset ``cpu-demo``): its direct answer is hard for a tiny model
while a running-sum chain (``3+5=8, 8+2=10, ...``) is learnable, so multi-step work pays. Each problem
carries that worked chain in ``meta["worked"]`` for building pretraining documents.
"""

from __future__ import annotations

import random
from typing import Any

from r1zero.data.registry import register_generator

__all__ = ["make_arithmetic", "make_chain", "make_list_sum"]

_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@register_generator(
    "arithmetic", verifier="integer", default_difficulty=3, levels=(1, 12), knob="digits per operand"
)
def make_arithmetic(rng: random.Random, level: int) -> tuple[str, str, dict[str, Any]]:
    """Two ``level``-digit operands and one of +, -, * (the first operand is the larger for -).

    >>> make_arithmetic(random.Random(1), 2)[0]
    'What is 27 * 82?'
    """
    lo, hi = (0 if level == 1 else 10 ** (level - 1)), 10**level - 1
    a, b = rng.randint(lo, hi), rng.randint(lo, hi)
    op = rng.choice(sorted(_OPS))
    if op == "-" and b > a:
        a, b = b, a
    return f"What is {a} {op} {b}?", str(_OPS[op](a, b)), {"operands": [a, b], "op": op}


@register_generator(
    "list_sum", verifier="integer", default_difficulty=(5, 8), levels=(2, 30), knob="length of the list"
)
def make_list_sum(rng: random.Random, level: int) -> tuple[str, str, dict[str, Any]]:
    """The sum of ``level`` digits 1-9, with its running-sum chain.

    >>> question, answer, meta = make_list_sum(random.Random(0), 4)
    >>> question, answer, meta["worked"]
    ('What is 7+7+1+5?', '20', '7+7=14, 14+1=15, 15+5=20')
    """
    numbers = [rng.randint(1, 9) for _ in range(level)]
    return _chain(numbers, ["+"] * (level - 1))


@register_generator(
    "chain", verifier="integer", default_difficulty=(5, 8), levels=(2, 30), knob="count of operands"
)
def make_chain(rng: random.Random, level: int) -> tuple[str, str, dict[str, Any]]:
    """A mixed +/- chain of ``level`` digits 1-9 whose running total never goes below zero.

    >>> make_chain(random.Random(3), 4)[2]["worked"]
    '4+9=13, 13+3=16, 16-6=10'
    """
    numbers = [rng.randint(1, 9) for _ in range(level)]
    ops, total = [], numbers[0]
    for n in numbers[1:]:
        op = "-" if total - n >= 0 and rng.random() < 0.5 else "+"
        total = _OPS[op](total, n)
        ops.append(op)
    return _chain(numbers, ops)


def _chain(numbers: list[int], ops: list[str]) -> tuple[str, str, dict[str, Any]]:
    """Question, answer and meta (numbers, ops, running-total chain) for a left-to-right chain."""
    steps, total = [], numbers[0]
    for op, n in zip(ops, numbers[1:], strict=True):
        new_total = _OPS[op](total, n)
        steps.append(f"{total}{op}{n}={new_total}")
        total = new_total
    expression = str(numbers[0]) + "".join(f"{op}{n}" for op, n in zip(ops, numbers[1:], strict=True))
    meta = {"numbers": numbers, "ops": ops, "worked": ", ".join(steps)}
    return f"What is {expression}?", str(total), meta
