"""pass@k against its formula and brute force; maj@k; bootstrap coverage by simulation."""

import itertools
import random
from math import comb

import numpy as np
import pytest

from r1zero.eval.metrics import (
    avg_at_n,
    bootstrap_ci,
    maj_at_k,
    normalize_answer,
    pass_at_k,
    pass_at_k_problem,
)


@pytest.mark.parametrize("n", [1, 2, 5, 16, 64, 200])
def test_pass_at_k_equals_combinatorial_estimator(n):
    rng = random.Random(n)
    for _ in range(20):
        c = rng.randint(0, n)
        k = rng.randint(1, n)
        exact = 1 - comb(n - c, k) / comb(n, k)
        assert pass_at_k_problem(n, c, k) == pytest.approx(exact, abs=1e-12)


@pytest.mark.parametrize("n", [1, 3, 5, 7])
def test_pass_at_k_equals_brute_force_enumeration(n):
    # enumerate every size-k subset of the n samples: pass@k = fraction with at least one correct
    for c in range(n + 1):
        samples = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(samples, k))
            brute = sum(any(s) for s in subsets) / len(subsets)
            assert pass_at_k_problem(n, c, k) == pytest.approx(brute, abs=1e-12)


def test_pass_at_k_is_stable_for_large_n():
    # math.comb over floats overflows for n=2000; the product form does not
    assert pass_at_k_problem(2000, 3, 1000) == pytest.approx(1 - comb(1997, 1000) / comb(2000, 1000))


def test_pass_at_1_equals_avg_at_n():
    rows = [[True, False, False, True], [False] * 4, [True] * 4]
    counts = [sum(r) for r in rows]
    assert pass_at_k(counts, 4, 1) == pytest.approx(avg_at_n(rows))


def test_pass_at_k_validates():
    with pytest.raises(ValueError, match="k=5"):
        pass_at_k_problem(4, 1, 5)
    with pytest.raises(ValueError, match="sample counts"):
        pass_at_k([1, 2], [4], 1)


def test_maj_at_k_groups_equivalent_answers():
    # "1,000" and "1000" are one vote bloc; they beat "7" twice over
    answers = [["7", "1,000", "1000", "7", "$1000$"]]
    correct = [[False, True, True, False, True]]
    assert maj_at_k(answers, correct, k=5) == 1.0
    assert maj_at_k(answers, correct, k=1) == 0.0
    # k=4: a 2-2 tie goes to the first seen ("7")
    assert maj_at_k(answers, correct, k=4) == 0.0


def test_maj_at_k_ignores_missing_answers():
    assert maj_at_k([[None, None, "3"]], [[False, False, True]], k=3) == 1.0
    assert maj_at_k([[None, None]], [[False, False]], k=2) == 0.0


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("12", "12"),
        ("12.0", "12"),
        ("\\dfrac{3}{4}", "0.75"),
        ("3/4", "0.75"),
        ("(1, 2)", "(1,2)"),
        (None, None),
    ],
)
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


def test_bootstrap_is_seeded_and_ordered():
    rng = random.Random(0)
    data = [rng.random() for _ in range(30)]
    assert bootstrap_ci(data, seed=3) == bootstrap_ci(data, seed=3)
    lo, hi = bootstrap_ci(data)
    assert lo < float(np.mean(data)) < hi


def test_bootstrap_custom_statistic():
    lo, hi = bootstrap_ci([1, 2, 3, 4, 100], statistic=lambda xs: float(np.median(xs)), n_resamples=500)
    assert 1 <= lo <= hi <= 100


def test_bootstrap_covers_true_rate_at_nominal_level():
    """Simulate benchmarks of 60 problems with per-problem difficulty, 8 samples each; the 95% interval
    of avg@n must contain the true population pass@1 about 95% of the time."""
    rng = np.random.default_rng(12345)
    true_rate = 0.3  # population mean of Beta(1.5, 3.5)
    trials, covered = 300, 0
    for t in range(trials):
        p = rng.beta(1.5, 3.5, size=60)  # [P]
        per_problem = rng.binomial(8, p) / 8  # [P]
        lo, hi = bootstrap_ci(per_problem, n_resamples=1000, seed=t)
        covered += lo <= true_rate <= hi
    coverage = covered / trials
    # 300 trials: binomial sd of the coverage is ~0.013; the percentile bootstrap runs a little under
    assert 0.90 <= coverage <= 0.99, coverage
