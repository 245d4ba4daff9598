"""The aha detector: exact binomial tail, a planted rise is found at its step, no rise finds nothing."""

import random
from math import comb

import pytest

from r1zero.eval.aha import binomial_sf, detect_aha, length_phases


@pytest.mark.parametrize(
    ("k", "n", "p"), [(0, 5, 0.3), (3, 10, 0.2), (10, 10, 0.9), (7, 40, 0.05), (11, 10, 0.5)]
)
def test_binomial_sf_matches_direct_sum(k, n, p):
    direct = sum(comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
    assert binomial_sf(k, n, p) == pytest.approx(direct, rel=1e-9, abs=1e-300)


def simulate(rates, n=64, seed=0):
    rng = random.Random(seed)
    return [sum(rng.random() < r for _ in range(n)) / n for r in rates]


def test_planted_rise_is_found_at_or_just_before_its_step():
    found = []
    for seed in range(20):
        rates = simulate([0.05] * 30 + [0.2] * 30, seed=seed)
        found.append(detect_aha(list(range(1, 61)), rates, 64, baseline=0.05).step)
    assert all(s is not None and 27 <= s <= 36 for s in found), found


def test_no_rise_no_aha_false_alarm_rate():
    alarms = 0
    for seed in range(50):
        rates = simulate([0.05] * 60, seed=100 + seed)
        alarms += detect_aha(list(range(1, 61)), rates, 64, baseline=0.05).step is not None
    assert alarms <= 2, alarms


def test_a_transient_spike_that_falls_back_is_not_an_aha():
    rates = simulate([0.05] * 20 + [0.4] * 5 + [0.05] * 35, seed=3)
    assert detect_aha(list(range(1, 61)), rates, 64, baseline=0.05).step is None


def test_a_fall_below_baseline_is_not_an_aha():
    # every prototype saw "wait" die out; that must not be marked
    rates = simulate([0.05] * 10 + [0.005] * 50, seed=4)
    assert detect_aha(list(range(1, 61)), rates, 64, baseline=0.05).step is None


def test_zero_baseline_needs_more_than_one_hit():
    rates = [0.0] * 10 + [1 / 64] + [0.0] * 20
    assert detect_aha(list(range(1, 32)), rates, 64, baseline=0.0).step is None


def test_validation():
    with pytest.raises(ValueError, match="rates"):
        detect_aha([1, 2], [0.1], 64, 0.1)


@pytest.mark.parametrize(
    ("lengths", "jump_step", "jump_length", "second_rise"),
    [
        # the CPU demo's shape: one jump to worked chains, then flat
        ([40.3, 66.0, 73.5, 74.0, 74.2, 74.0], 20, 73.5, 74.0 / 73.5 - 1),
        # a jump, a plateau, then a second rise (checks lengthen the chain)
        ([40.0, 70.0, 72.0, 73.0, 85.0, 95.0], 10, 70.0, 95.0 / 70.0 - 1),
        # still growing at the last evaluation: the jump ends there, nothing after it
        ([40.0, 50.0, 60.0, 70.0, 80.0, 90.0], 50, 90.0, 0.0),
        # never 15% above step 0
        ([40.0, 42.0, 45.0, 44.0, 43.0, 45.9], None, None, None),
        # shorter, not longer
        ([80.0, 60.0, 40.0, 40.0, 40.0, 40.0], None, None, None),
    ],
)
def test_length_phases(lengths, jump_step, jump_length, second_rise):
    phases = length_phases([0, 10, 20, 30, 40, 50], lengths)
    assert (phases.step0_length, phases.final_step, phases.final_length) == (lengths[0], 50, lengths[-1])
    assert (phases.jump_step, phases.jump_length) == (jump_step, jump_length)
    assert phases.second_rise == (None if second_rise is None else pytest.approx(second_rise))


@pytest.mark.parametrize(("steps", "lengths"), [([0, 10], [40.0]), ([], [])])
def test_length_phases_needs_a_length_per_step(steps, lengths):
    with pytest.raises(ValueError, match="as many lengths as steps"):
        length_phases(steps, lengths)
