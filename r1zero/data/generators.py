"""Registry of seeded procedural task generators, and ``generate`` that turns one into problems.

A generator is registered by name with its verifier and default difficulty, so a trainer can say
``task="list_sum"`` and the rows it gets name their own verifier. Given the same (name, n, difficulty,
seed), ``generate`` returns the same problems on every machine and Python version (``random.Random``
seeded with a string is stable), and ``generate(n=10)`` is a prefix of ``generate(n=1000)``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from r1zero.data.problem import Problem

__all__ = [
    "Difficulty",
    "TaskGenerator",
    "available_generators",
    "generate",
    "get_generator",
    "parse_difficulty",
    "register_generator",
]

#: one difficulty level, or an inclusive range drawn uniformly per problem
Difficulty = int | tuple[int, int]

#: (rng, difficulty level) -> (question, gold answer, meta)
MakeOne = Callable[[random.Random, int], tuple[str, str, dict[str, Any]]]


@dataclass(frozen=True)
class TaskGenerator:
    """A named task: how to make one instance, which verifier checks it, and its difficulty knob.

    Attributes:
        name: Registry name (``"countdown"``).
        make_one: ``(rng, level) -> (question, answer, meta)``.
        verifier: Registry name of the verifier that scores answers.
        default_difficulty: Level (or inclusive range) used when none is given.
        levels: Inclusive range of allowed levels.
        knob: What the difficulty level means, for help texts (``"count of numbers"``).
    """

    name: str
    make_one: MakeOne
    verifier: str
    default_difficulty: Difficulty
    levels: tuple[int, int]
    knob: str


_GENERATORS: dict[str, TaskGenerator] = {}


def register_generator(
    name: str, *, verifier: str, default_difficulty: Difficulty, levels: tuple[int, int], knob: str
) -> Callable[[MakeOne], MakeOne]:
    """Decorator registering ``make_one`` as task ``name``; a duplicate name is an error."""

    def decorate(make_one: MakeOne) -> MakeOne:
        if name in _GENERATORS and _GENERATORS[name].make_one is not make_one:
            raise ValueError(f"task generator {name!r} is already registered")
        _GENERATORS[name] = TaskGenerator(name, make_one, verifier, default_difficulty, levels, knob)
        return make_one

    return decorate


def available_generators() -> list[str]:
    """Names of the registered task generators."""
    _load_builtins()
    return sorted(_GENERATORS)


def get_generator(name: str) -> TaskGenerator:
    """The registered generator called ``name``; unknown names list the valid ones."""
    _load_builtins()
    if name not in _GENERATORS:
        raise ValueError(f"unknown task generator {name!r}; registered: {', '.join(sorted(_GENERATORS))}")
    return _GENERATORS[name]


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


def _load_builtins() -> None:
    # The built-in tasks register themselves on import.
    from r1zero.data import arithmetic, countdown  # noqa: F401
