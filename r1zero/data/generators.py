"""Registry of seeded procedural task generators, and ``generate`` that turns one into problems.

A generator is registered by name with its verifier and default difficulty, so a trainer can say
``task="list_sum"`` and the rows it gets name their own verifier. Given the same (name, n, difficulty,
seed), ``generate`` returns the same problems on every machine and Python version (``random.Random``
seeded with a string is stable), and ``generate(n=10)`` is a prefix of ``generate(n=1000)``.
"""

from __future__ import annotations

import random

from r1zero.data import arithmetic, countdown  # noqa: F401  (the built-in tasks register on import)
from r1zero.data.problem import Problem
from r1zero.data.registry import GENERATORS, Difficulty, TaskGenerator, register_generator

__all__ = [
    "Difficulty",
    "TaskGenerator",
    "available_generators",
    "generate",
    "get_generator",
    "parse_difficulty",
    "register_generator",
]


def available_generators() -> list[str]:
    """Names of the registered task generators."""
    return sorted(GENERATORS)


def get_generator(name: str) -> TaskGenerator:
    """The registered generator called ``name``; unknown names list the valid ones."""
    if name not in GENERATORS:
        raise ValueError(f"unknown task generator {name!r}; registered: {', '.join(sorted(GENERATORS))}")
    return GENERATORS[name]


def parse_difficulty(text: str | int | tuple[int, int]) -> Difficulty:
    """Parse ``"3"`` or ``"5-8"`` (inclusive range) into a difficulty.

    >>> parse_difficulty("5-8"), parse_difficulty("3"), parse_difficulty(4)
    ((5, 8), 3, 4)
    """
    if isinstance(text, (int, tuple)):
        return text
    lo, sep, hi = text.partition("-")
    try:
        return (int(lo), int(hi)) if sep else int(lo)
    except ValueError:
        raise ValueError(f"difficulty must be an integer or a range like '5-8', got {text!r}") from None


def generate(name: str, n: int, difficulty: Difficulty | str | None = None, seed: int = 0) -> list[Problem]:
    """Make ``n`` problems of task ``name``; deterministic in (name, difficulty, seed).

    >>> [p.answer for p in generate("list_sum", 3, difficulty=2, seed=0)] == [
    ...     p.answer for p in generate("list_sum", 3, difficulty=2, seed=0)]
    True
    >>> generate("list_sum", 1, difficulty=2, seed=0)[0].id
    'list_sum-d2-s0-000000'
    """
    task = get_generator(name)
    level = task.default_difficulty if difficulty is None else parse_difficulty(difficulty)
    lo, hi = level if isinstance(level, tuple) else (level, level)
    if not task.levels[0] <= lo <= hi <= task.levels[1]:
        raise ValueError(
            f"difficulty {lo}-{hi} is out of range for {name!r} ({task.knob}): "
            f"allowed {task.levels[0]}-{task.levels[1]}"
        )
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"r1zero/{name}/{lo}-{hi}/{seed}")
    tag = f"d{lo}" if lo == hi else f"d{lo}-{hi}"
    problems = []
    for i in range(n):
        d = rng.randint(lo, hi)
        question, answer, meta = task.make_one(rng, d)
        meta = {"source": name, "difficulty": d, "seed": seed, **meta}
        problems.append(Problem(f"{name}-{tag}-s{seed}-{i:06d}", question, answer, task.verifier, meta))
    return problems
