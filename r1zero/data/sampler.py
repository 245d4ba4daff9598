"""Per-step prompt batches: deterministic by seed, reshuffled every epoch, resumable exactly.

The order of epoch ``e`` is a pure function of ``(seed, e)``, so the whole state is two integers
(epoch, position); ``state_dict`` adds a fingerprint of the problem ids so resuming on different data
is an error instead of a silent change of curriculum.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Any

from r1zero.data.problem import Problem

__all__ = ["PromptSampler"]


class PromptSampler:
    """Batches of problems for training steps.

    A batch that runs past the end of an epoch is completed from the next epoch's order, so every
    problem is seen once per epoch and every batch is full.

    >>> problems = [Problem(str(i), f"q{i}", str(i), "integer") for i in range(5)]
    >>> sampler = PromptSampler(problems, batch_size=2, seed=0)
    >>> [[p.id for p in sampler.next_batch()] for _ in range(3)]
    [['1', '3'], ['2', '4'], ['0', '2']]
    >>> sampler.epoch, sampler.position
    (1, 1)
    """

    def __init__(self, problems: Sequence[Problem], batch_size: int, seed: int = 0, shuffle: bool = True):
        if not problems:
            raise ValueError("PromptSampler needs at least one problem, got none")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.problems = list(problems)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.position = 0
        self.batches = 0
        self._order: list[int] = self._epoch_order(0)
        self._fingerprint = _fingerprint(self.problems)

    def _epoch_order(self, epoch: int) -> list[int]:
        order = list(range(len(self.problems)))
        if self.shuffle:
            random.Random(f"r1zero/sampler/{self.seed}/{epoch}").shuffle(order)
        return order

    def next_batch(self) -> list[Problem]:
        """The next ``batch_size`` problems."""
        batch = []
        while len(batch) < self.batch_size:
            if self.position == len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._epoch_order(self.epoch)
            take = min(self.batch_size - len(batch), len(self._order) - self.position)
            batch += [self.problems[i] for i in self._order[self.position : self.position + take]]
            self.position += take
        self.batches += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (JSON-serialisable)."""
        return {
            "seed": self.seed,
            "shuffle": self.shuffle,
            "batch_size": self.batch_size,
            "epoch": self.epoch,
            "position": self.position,
            "batches": self.batches,
            "num_problems": len(self.problems),
            "fingerprint": self._fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state_dict()``; the problems and seed must be the ones it was saved with."""
        mine = self.state_dict()
        for key in ("seed", "shuffle", "num_problems", "fingerprint"):
            if state.get(key) != mine[key]:
                raise ValueError(
                    f"sampler state does not match this sampler: {key} is {state.get(key)!r} in the saved "
                    f"state and {mine[key]!r} here (same problems, seed and shuffle are needed to resume)"
                )
        if not 0 <= state["position"] <= len(self.problems):
            raise ValueError(f"sampler state position {state['position']} is outside 0..{len(self.problems)}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.batches = int(state.get("batches", 0))
        self._order = self._epoch_order(self.epoch)


def _fingerprint(problems: list[Problem]) -> str:
    digest = hashlib.sha256("\n".join(p.id for p in problems).encode("utf-8"))
    return digest.hexdigest()[:16]
