"""Evaluation metrics over n samples per problem: pass@k, maj@k, avg@n, and bootstrap intervals.

Pure functions, no torch and no I/O. Conventions (see ``docs/evaluation.md``):

- **pass@1 = avg@n**: the mean over problems of the fraction of a problem's n samples that are correct.
- **pass@k** is the unbiased estimator of Chen et al. 2021 (Codex paper):
  ``1 - C(n-c, k) / C(n, k)`` per problem, averaged over problems, computed in the numerically stable
  product form ``1 - prod_{i=n-c+1}^{n} (1 - k / i)``.
- **maj@k** (cons@k): per problem, the majority answer over its first k samples (ties broken by first
  appearance) is scored; samples with no extracted answer do not vote.
- **Confidence intervals**: percentile bootstrap over problems (problems are the unit that varies between
  benchmarks; AIME has 30), seeded so that the same inputs always give the same interval.
- **Averages over benchmarks** (macro: each benchmark weighs the same) get a normal-approximation interval:
  benchmarks are independent samples of problems, so the variance of the mean of B benchmark means is
  ``sum(se_b ** 2) / B ** 2`` with ``se_b`` each benchmark's standard error over its problems.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from statistics import NormalDist

import numpy as np

__all__ = [
    "avg_at_n",
    "bootstrap_ci",
    "default_ks",
    "macro_mean_ci",
    "maj_at_k",
    "majority_vote",
    "normalize_answer",
    "pass_at_k",
    "pass_at_k_problem",
    "se_from_ci",
    "standard_error",
    "z_value",
]


def pass_at_k_problem(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``c`` correct out of ``n`` samples.

    Stable product form of ``1 - C(n-c, k) / C(n, k)`` (Chen et al. 2021).

    >>> pass_at_k_problem(4, 1, 1)
    0.25
    >>> pass_at_k_problem(4, 1, 2)
    0.5
    >>> pass_at_k_problem(5, 0, 3), pass_at_k_problem(5, 3, 3)
    (0.0, 1.0)
    """
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def pass_at_k(correct_counts: Sequence[int], n: int | Sequence[int], k: int) -> float:
    """Mean unbiased pass@k over problems.

    Args:
        correct_counts: Number of correct samples per problem.
        n: Samples per problem (one int for all, or one per problem).
        k: The k of pass@k; at most the smallest n.

    >>> pass_at_k([1, 4, 0], 4, 2)
    0.5
    """
    ns = [n] * len(correct_counts) if isinstance(n, int) else list(n)
    if len(ns) != len(correct_counts):
        raise ValueError(f"{len(correct_counts)} correct counts but {len(ns)} sample counts")
    if not ns:
        raise ValueError("pass_at_k needs at least one problem")
    return sum(pass_at_k_problem(ni, c, k) for ni, c in zip(ns, correct_counts, strict=True)) / len(ns)


def avg_at_n(correct: Sequence[Sequence[bool]]) -> float:
    """pass@1 as avg@n: mean over problems of each problem's fraction of correct samples.

    >>> avg_at_n([[True, False], [True, True, True, False]])
    0.625
    """
    if not correct or any(len(row) == 0 for row in correct):
        raise ValueError("avg_at_n needs at least one problem, each with at least one sample")
    return sum(sum(row) / len(row) for row in correct) / len(correct)


def default_ks(n: int) -> list[int]:
    """k = 1, 2, 4, ... up to n, with n itself always included.

    >>> default_ks(16), default_ks(6), default_ks(1)
    ([1, 2, 4, 8, 16], [1, 2, 4, 6], [1])
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return [*ks, n]


def normalize_answer(answer: str | None) -> str | None:
    """A cheap canonical form for grouping answers in majority voting (not a correctness check).

    Strips whitespace, ``$``, a surrounding ``\\boxed{}``/``\\text{}``, trailing periods, thousands
    separators, and writes integral numbers and simple fractions as numbers, so "1,000", "1000.0" and
    "$1000$" vote together.

    >>> normalize_answer(" $1,000$. "), normalize_answer("\\\\boxed{\\\\frac{1}{2}}"), normalize_answer("x = 3")
    ('1000', '0.5', '3')
    >>> normalize_answer("") is None
    True
    """
    if answer is None:
        return None
    s = answer
    while s != (stripped := s.strip().strip("$").rstrip(".")):
        s = stripped
    for wrapper in ("\\boxed{", "\\text{", "\\mathrm{"):
        if s.startswith(wrapper) and s.endswith("}"):
            s = s[len(wrapper) : -1].strip()
    if len(s) > 2 and s[0].isalpha() and s[1:].lstrip().startswith("="):
        s = s[1:].lstrip()[1:].strip()
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace(" ", "")
    if not s:
        return None
    number = _as_number(s)
    return _format_number(number) if number is not None else s


def _as_number(s: str) -> float | None:
    plain = s.replace(",", "") if all(len(p) == 3 for p in s.split(",")[1:]) else s
    if plain.startswith("\\frac{") and plain.endswith("}") and "}{" in plain:
        num, _, den = plain[len("\\frac{") : -1].partition("}{")
        plain = f"{num}/{den}"
    try:
        if "/" in plain:
            num, den = plain.split("/")
            return float(num) / float(den)
        return float(plain)
    except (ValueError, ZeroDivisionError):
        return None


def _format_number(x: float) -> str:
    if math.isfinite(x) and x == int(x):
        return str(int(x))
    return repr(round(x, 12))


def majority_vote(answers: Sequence[Hashable | None]) -> Hashable | None:
    """The most frequent non-None answer; ties go to the answer seen first; None if nobody voted.

    >>> majority_vote(["3", None, "4", "4", "3"]), majority_vote([None, None])
    ('3', None)
    """
    counts: dict[Hashable, int] = {}
    for a in answers:
        if a is not None:
            counts[a] = counts.get(a, 0) + 1
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in counts if counts[a] == best)


def maj_at_k(
    answers: Sequence[Sequence[str | None]],
    correct: Sequence[Sequence[bool]],
    k: int,
    normalize: Callable[[str | None], Hashable | None] = normalize_answer,
) -> float:
    """maj@k (cons@k): fraction of problems whose majority answer over the first k samples is correct.

    A voted answer is correct if any of the samples that gave it (after ``normalize``) was judged
    correct by the verifier, so the verifier stays the only judge of correctness.

    >>> maj_at_k([["4", "5", "4"], ["1", "2", "2"]], [[True, False, True], [True, False, False]], k=3)
    0.5
    """
    if len(answers) != len(correct) or not answers:
        raise ValueError(f"need the same non-zero number of problems, got {len(answers)} and {len(correct)}")
    hits = 0
    for row_a, row_c in zip(answers, correct, strict=True):
        if k > len(row_a) or len(row_a) != len(row_c):
            raise ValueError(f"k={k} but a problem has {len(row_a)} answers and {len(row_c)} verdicts")
        keys = [normalize(a) for a in row_a[:k]]
        winner = majority_vote(keys)
        if winner is not None and any(key == winner and ok for key, ok in zip(keys, row_c[:k], strict=True)):
            hits += 1
    return hits / len(answers)


def bootstrap_ci(
    per_problem: Sequence[float],
    statistic: Callable[[Sequence[float]], float] | None = None,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a statistic (default: the mean) over problems, seeded.

    Args:
        per_problem: One value per problem (e.g. its fraction of correct samples).
        statistic: Function of a resample; the mean when None.
        confidence: Two-sided level, e.g. 0.95.
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling RNG (same inputs and seed give the same interval).

    >>> bootstrap_ci([1.0] * 10)
    (1.0, 1.0)
    >>> lo, hi = bootstrap_ci([0.0, 1.0] * 20, seed=1); 0.3 < lo < 0.5 < hi < 0.7
    True
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if len(per_problem) == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    values = np.asarray(per_problem, dtype=float)  # [P]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_resamples, len(values)))  # [R, P]
    if statistic is None:
        stats = values[idx].mean(axis=1)  # [R]
    else:
        stats = np.array([statistic(list(values[row])) for row in idx])  # [R]
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def z_value(confidence: float = 0.95) -> float:
    """The two-sided standard normal quantile of ``confidence``.

    >>> round(z_value(0.95), 4), round(z_value(0.9), 4)
    (1.96, 1.6449)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def standard_error(per_problem: Sequence[float]) -> float:
    """Standard error of the mean over problems: sample standard deviation (n - 1) / sqrt(n); 0 for one.

    >>> round(standard_error([0.0, 1.0, 1.0, 0.0]), 6)  # sd 0.57735 / sqrt(4)
    0.288675
    >>> standard_error([0.5])
    0.0
    """
    if len(per_problem) == 0:
        raise ValueError("standard_error needs at least one value")
    if len(per_problem) == 1:
        return 0.0
    values = np.asarray(per_problem, dtype=float)  # [P]
    return float(values.std(ddof=1) / math.sqrt(len(values)))


def se_from_ci(low: float, high: float, confidence: float = 0.95) -> float:
    """The standard error a symmetric normal interval of this width would have (for results saved
    without one): ``(high - low) / (2 z)``.

    >>> round(se_from_ci(0.3, 0.7), 4)
    0.102
    """
    return (high - low) / (2 * z_value(confidence))


def macro_mean_ci(
    means: Sequence[float], standard_errors: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, float]:
    """``(mean, low, high)`` of the unweighted mean of independent estimates, normal approximation.

    ``var(mean) = sum(se_b ** 2) / B ** 2``; the interval is ``mean +- z * sqrt(var)``, clipped to [0, 1]
    (the metrics averaged with an interval are rates).

    >>> [round(x, 4) for x in macro_mean_ci([0.2, 0.6], [0.03, 0.04])]  # 1.96 * sqrt(0.03² + 0.04²) / 2
    [0.4, 0.351, 0.449]
    """
    if len(means) != len(standard_errors) or not means:
        raise ValueError(
            f"need as many standard errors as means (>= 1); got {len(means)} and {len(standard_errors)}"
        )
    mean = sum(means) / len(means)
    half = z_value(confidence) * math.sqrt(sum(se * se for se in standard_errors)) / len(means)
    return (mean, max(0.0, mean - half), min(1.0, mean + half))
