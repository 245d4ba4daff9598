"""The task registry: a named generator, its verifier and difficulty knob, registered by decorator.

Task modules (``arithmetic``, ``countdown``, or a user's own) import ``register_generator`` from here;
``r1zero.data.generators`` loads the built-in ones and makes problems from them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["GENERATORS", "Difficulty", "MakeOne", "TaskGenerator", "register_generator"]

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


GENERATORS: dict[str, TaskGenerator] = {}


def register_generator(
    name: str, *, verifier: str, default_difficulty: Difficulty, levels: tuple[int, int], knob: str
) -> Callable[[MakeOne], MakeOne]:
    """Decorator registering ``make_one`` as task ``name``; a duplicate name is an error."""

    def decorate(make_one: MakeOne) -> MakeOne:
        if name in GENERATORS and GENERATORS[name].make_one is not make_one:
            raise ValueError(f"task generator {name!r} is already registered")
        GENERATORS[name] = TaskGenerator(name, make_one, verifier, default_difficulty, levels, knob)
        return make_one

    return decorate
