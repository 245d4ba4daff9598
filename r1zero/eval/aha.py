"""The aha detector: the first training step where the reflection rate rises significantly above its
step-0 baseline and stays up.

The test (pure, documented in ``docs/evaluation.md``). Let ``p0`` be the step-0 (base model) rate of
completions with at least one reflection keyword, and ``N_t`` the number of completions behind the rate
of step ``t``. For a candidate step ``s`` and window ``w``:

1. **Rise.** Pool the hits of steps ``s .. s+w-1`` (``H`` hits out of ``N``); a one-sided exact binomial
   test gives ``P(X >= H | N, p0) < alpha``; and step ``s`` on its own is above ``p0`` at the loose level
   ``first_step_alpha`` (0.1), so that the mark lands at the rise, not a few noisy steps before it.
2. **Stays up.** Every later full window of ``w`` steps has a pooled rate above ``p0``, and the pooled rate
   of all steps from ``s`` to the end is also significant at ``alpha``.

The aha step is the smallest ``s`` passing both. ``p0`` is treated as known (it is measured on its own
samples; a floor of ``1 / (2 N_0)`` keeps a zero baseline from making every single hit significant).
Since every start is tested, ``alpha`` defaults to a strict 0.01, and the stays-up condition guards
against a lone noisy window. Base models already reflect at step 0 (Dr. GRPO / oat-zero), which is why the
test is against the baseline, not against zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["AhaResult", "LengthPhases", "binomial_sf", "detect_aha", "length_phases"]


def binomial_sf(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``, summed in log space (exact, stable for n in the thousands).

    >>> round(binomial_sf(3, 3, 0.5), 6), binomial_sf(0, 10, 0.3)
    (0.125, 1.0)
    >>> round(binomial_sf(8, 10, 0.5), 6)
    0.054688
    """
    if not (0 <= p <= 1) or n < 0:
        raise ValueError(f"need n >= 0 and p in [0, 1], got n={n}, p={p}")
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p == 0.0:
        return 0.0
    if p == 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        for i in range(k, n + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


@dataclass(frozen=True)
class AhaResult:
    """Outcome of the aha test.

    Attributes:
        step: The aha step, or None when the rate never rose significantly and stayed up.
        baseline: The step-0 rate ``p0`` used (after the floor).
        p_value: One-sided binomial p-value of the rise window at ``step`` (None without a step).
        rate_before: Mean rate of the steps before ``step`` (None without a step or with no steps before).
        rate_after: Pooled rate from ``step`` to the end (None without a step).
        window: Window length in steps.
        alpha: Significance level.
    """

    step: int | None
    baseline: float
    p_value: float | None
    rate_before: float | None
    rate_after: float | None
    window: int
    alpha: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def detect_aha(
    steps: Sequence[int],
    rates: Sequence[float],
    counts: Sequence[int] | int,
    baseline: float,
    baseline_count: int = 64,
    window: int = 5,
    alpha: float = 0.01,
    first_step_alpha: float = 0.1,
) -> AhaResult:
    """First step whose reflection rate rises significantly above ``baseline`` and stays up.

    Args:
        steps: Training steps in increasing order (step 0 excluded: it is the baseline).
        rates: Fraction of completions with a reflection keyword at each step.
        counts: Completions behind each rate (one int for all steps, or one per step).
        baseline: The step-0 rate.
        baseline_count: Completions behind the baseline (sets the floor ``1 / (2 N_0)``).
        window: Steps pooled per test.
        alpha: One-sided significance level.
        first_step_alpha: Level at which step ``s`` alone must exceed the baseline.

    >>> r = detect_aha(list(range(1, 21)), [0.05] * 8 + [0.4] * 12, 64, baseline=0.05)
    >>> r.step, round(r.rate_after, 1)
    (9, 0.4)
    >>> detect_aha(list(range(1, 21)), [0.05] * 20, 64, baseline=0.05).step is None
    True
    """
    if len(steps) != len(rates):
        raise ValueError(f"{len(steps)} steps but {len(rates)} rates")
    if window < 1 or not 0 < alpha < 1:
        raise ValueError(f"need window >= 1 and alpha in (0, 1), got window={window}, alpha={alpha}")
    ns = [counts] * len(steps) if isinstance(counts, int) else list(counts)
    if len(ns) != len(steps):
        raise ValueError(f"{len(steps)} steps but {len(ns)} counts")
    p0 = max(baseline, 1.0 / (2 * max(baseline_count, 1)))
    hits = [round(r * n) for r, n in zip(rates, ns, strict=True)]

    def pooled(lo: int, hi: int) -> tuple[int, int]:
        return sum(hits[lo:hi]), sum(ns[lo:hi])

    none = AhaResult(None, p0, None, None, None, window, alpha)
    for s in range(len(steps) - window + 1):
        if rates[s] <= p0 or binomial_sf(hits[s], ns[s], p0) >= first_step_alpha:
            continue
        h, n = pooled(s, s + window)
        p_value = binomial_sf(h, n, p0)
        if p_value >= alpha:
            continue
        later_ok = all(
            pooled(j, j + window)[0] > p0 * pooled(j, j + window)[1]
            for j in range(s + window, len(steps) - window + 1, window)
        )
        tail_h, tail_n = pooled(s, len(steps))
        if later_ok and binomial_sf(tail_h, tail_n, p0) < alpha:
            before = sum(rates[:s]) / s if s else None
            return AhaResult(steps[s], p0, p_value, before, tail_h / tail_n, window, alpha)
    return none


@dataclass(frozen=True)
class LengthPhases:
    """Response length over a run, in phases (held-out lengths at each evaluation).

    Attributes:
        step0_length: Length at the first evaluation (the base model).
        jump_step: The evaluation that ends the first jump: the length has risen by at least ``rise``
            over step 0 and stops growing there (the next evaluation grows by less than ``settle``).
            None when the length never rose that much.
        jump_length: Length at ``jump_step`` (the plateau after the jump), or None.
        final_step: The last evaluation.
        final_length: Length at the last evaluation.
        second_rise: ``final_length / jump_length - 1`` (a second rise after the plateau when > 0), or None.
    """

    step0_length: float
    jump_step: int | None
    jump_length: float | None
    final_step: int
    final_length: float
    second_rise: float | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def length_phases(
    steps: Sequence[int], lengths: Sequence[float], rise: float = 0.15, settle: float = 0.05
) -> LengthPhases:
    """Split a run's held-out length curve into the first jump, its plateau and what follows.

    >>> p = length_phases([0, 10, 20, 30, 40, 50], [40.0, 70.0, 74.0, 75.0, 80.0, 90.0])
    >>> p.jump_step, p.jump_length, round(p.second_rise, 3)
    (20, 74.0, 0.216)
    >>> length_phases([0, 10, 20], [40.0, 41.0, 40.0]).jump_step is None
    True
    """
    if len(steps) != len(lengths) or not steps:
        raise ValueError(f"need as many lengths as steps (at least one), got {len(steps)} and {len(lengths)}")
    if rise < 0 or settle < 0:
        raise ValueError(f"rise and settle must be >= 0, got rise={rise}, settle={settle}")
    start = lengths[0]
    jump = None
    for i, value in enumerate(lengths):
        if i == 0 or value < (1 + rise) * start:
            continue
        if i + 1 == len(lengths) or lengths[i + 1] < (1 + settle) * value:
            jump = i
            break
    final = lengths[-1]
    if jump is None:
        return LengthPhases(start, None, None, steps[-1], final, None)
    plateau = lengths[jump]
    return LengthPhases(start, steps[jump], plateau, steps[-1], final, final / plateau - 1)
