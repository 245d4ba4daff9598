"""Rollout/learner mismatch correction: hand-computed weights per mode, the formulas, and the stats."""

import doctest
import math

import pytest
import torch

from r1zero.algo import grpo, rollout_correction
from r1zero.algo.rollout_correction import MODES

# Three sequences; token ratios pi_learner / pi_rollout (row 1's last token is padding, its "ratio" 100
# must count nowhere). Sequence ratios (products over counted tokens): 2, 2.5, 0.0625.
RATIOS = [[4.0, 0.5, 1.0], [2.0, 1.25, 100.0], [0.25, 0.5, 0.5]]
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
ROLLOUT = torch.log(torch.tensor([[0.1, 0.3, 0.7], [0.2, 0.4, 0.001], [0.8, 0.6, 0.9]]))
LEARNER = ROLLOUT + torch.log(torch.tensor(RATIOS))


def correct(mode, threshold, low=None):
    return rollout_correction.rollout_correction(LEARNER, ROLLOUT, MASK, mode, threshold, threshold_low=low)


GOLDEN = [
    # mode, threshold, low, weights, truncated fraction, masked fraction (of the 8 counted tokens)
    ("none", 3.0, None, [[1, 1, 1], [1, 1, 1], [1, 1, 1]], 0, 0),
    ("token_truncate", 3.0, None, [[3, 0.5, 1], [2, 1.25, 1], [0.25, 0.5, 0.5]], 1 / 8, 0),
    ("token_truncate", 3.0, 0.4, [[3, 0.5, 1], [2, 1.25, 1], [0.4, 0.5, 0.5]], 2 / 8, 0),
    ("token_mask", 3.0, None, [[0, 0.5, 1], [2, 1.25, 1], [0.25, 0.5, 0.5]], 0, 1 / 8),
    ("token_mask", 3.0, 0.4, [[0, 0.5, 1], [2, 1.25, 1], [0, 0.5, 0.5]], 0, 2 / 8),
    ("token_mask", 1.5, None, [[0, 0.5, 1], [0, 1.25, 1], [0.25, 0.5, 0.5]], 0, 2 / 8),
    ("sequence_truncate", 2.2, None, [[2, 2, 2], [2.2, 2.2, 2.2], [0.0625] * 3], 2 / 8, 0),
    ("sequence_truncate", 3.0, 0.1, [[2, 2, 2], [2.5, 2.5, 2.5], [0.1] * 3], 3 / 8, 0),
    ("sequence_mask", 2.2, None, [[2, 2, 2], [0, 0, 0], [0.0625] * 3], 0, 2 / 8),
    ("sequence_mask", 3.0, 0.1, [[2, 2, 2], [2.5, 2.5, 2.5], [0, 0, 0]], 0, 3 / 8),
]


@pytest.mark.parametrize(("mode", "threshold", "low", "weights", "truncated", "masked"), GOLDEN)
def test_golden_weights_per_mode(mode, threshold, low, weights, truncated, masked):
    got, stats = correct(mode, threshold, low)
    assert torch.allclose(got, torch.tensor(weights, dtype=torch.float32), atol=1e-5), got
    assert stats["mismatch/truncated_fraction"] == pytest.approx(truncated)
    assert stats["mismatch/masked_fraction"] == pytest.approx(masked)
    counted = MASK.bool()
    assert stats["mismatch/weight_mean"] == pytest.approx(got[counted].mean().item())


def test_mismatch_stats_hand_computed():
    logs = [math.log(r) for r in (4, 0.5, 1, 2, 1.25, 0.25, 0.5, 0.5)]  # the 8 counted tokens
    for mode, ratio_max in [("none", 4.0), ("token_mask", 4.0), ("sequence_truncate", 2.5)]:
        _, stats = correct(mode, 3.0)
        assert stats["mismatch/logp_diff_mean"] == pytest.approx(sum(map(abs, logs)) / 8, rel=1e-5)
        assert stats["mismatch/logp_diff_max"] == pytest.approx(math.log(4), rel=1e-5)
        assert stats["mismatch/ratio_max"] == pytest.approx(ratio_max, rel=1e-5)


def test_token_truncate_equals_truncated_is_weights():
    gen = torch.Generator().manual_seed(0)
    learner = torch.randn(6, 9, generator=gen)
    rollout = learner + 0.8 * torch.randn(6, 9, generator=gen)
    for cap in (0.5, 1.0, 2.0, 3.0):
        ours, _ = rollout_correction.rollout_correction(
            learner, rollout, torch.ones(6, 9), "token_truncate", cap
        )
        assert torch.allclose(ours, grpo.truncated_is_weights(learner, rollout, cap), rtol=1e-6)
        # with padding, the tokens that count keep the same weights
        mask = (torch.rand(6, 9, generator=gen) > 0.3).float()
        ours, _ = rollout_correction.rollout_correction(learner, rollout, mask, "token_truncate", cap)
        theirs = grpo.truncated_is_weights(learner, rollout, cap)
        assert torch.allclose(ours[mask.bool()], theirs[mask.bool()], rtol=1e-6)


def test_formulas_on_random_batches():
    gen = torch.Generator().manual_seed(1)
    learner = torch.randn(5, 7, generator=gen) * 0.3
    rollout = learner + 0.2 * torch.randn(5, 7, generator=gen)
    mask = (torch.rand(5, 7, generator=gen) > 0.2).float()
    token = torch.exp((learner - rollout) * mask)  # [B, T], 1 on padding
    sequence = torch.exp(((learner - rollout) * mask).sum(-1, keepdim=True)).expand(5, 7)  # product
    hi, lo = 1.3, 0.8
    expected = {
        "none": torch.ones(5, 7),
        "token_truncate": token.clamp(lo, hi),
        "token_mask": token * ((token >= lo) & (token <= hi)),
        "sequence_truncate": sequence.clamp(lo, hi),
        "sequence_mask": sequence * ((sequence >= lo) & (sequence <= hi)),
    }
    assert set(expected) == set(MODES)
    for mode, want in expected.items():
        got, _ = rollout_correction.rollout_correction(learner, rollout, mask, mode, hi, threshold_low=lo)
        assert torch.allclose(got, want, rtol=1e-5), mode


def test_sequence_ratio_is_the_product_not_the_geometric_mean():
    learner = torch.log(torch.tensor([[0.8, 0.8]]))
    rollout = torch.log(torch.tensor([[0.4, 0.4]]))  # token ratios 2, 2: product 4, geometric mean 2
    w, stats = rollout_correction.rollout_correction(
        learner, rollout, torch.ones(1, 2), "sequence_truncate", 10.0
    )
    assert torch.allclose(w, torch.tensor([[4.0, 4.0]]))
    assert stats["mismatch/ratio_max"] == pytest.approx(4.0)


def test_weights_carry_no_gradient_and_overflow_is_contained():
    learner = torch.full((1, 4), 30.0, requires_grad=True)  # summed log-ratio 120: exp overflows float32
    rollout = torch.zeros(1, 4)
    for mode in MODES:
        w, stats = rollout_correction.rollout_correction(learner, rollout, torch.ones(1, 4), mode, 3.0)
        assert not w.requires_grad
        assert torch.isfinite(w).all(), mode
        assert math.isfinite(stats["mismatch/ratio_max"])  # capped at exp(20)
    assert (
        rollout_correction.rollout_correction(learner, rollout, torch.ones(1, 4), "sequence_truncate", 3.0)[0]
        .eq(3.0)
        .all()
    )


def test_nan_rollout_logp_counts_as_ratio_one_and_is_left_out_of_the_stats():
    learner = torch.log(torch.tensor([[0.5, 0.5]]))
    rollout = torch.tensor([[math.log(0.25), float("nan")]])
    w, stats = rollout_correction.rollout_correction(
        learner, rollout, torch.ones(1, 2), "token_truncate", 3.0
    )
    assert torch.allclose(w, torch.tensor([[2.0, 1.0]]))
    assert stats["mismatch/logp_diff_mean"] == pytest.approx(math.log(2))


def test_empty_mask_gives_zero_stats():
    w, stats = rollout_correction.rollout_correction(
        torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2, 3), "sequence_mask", 2.0
    )
    assert torch.equal(w, torch.ones(2, 3))  # nothing counted: sequence ratio exp(0)
    assert all(v == 0.0 for v in stats.values())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "icepop"}, "unknown rollout correction mode 'icepop'; valid: none, token_truncate"),
        ({"threshold": 0.0}, "threshold must be > 0; got 0.0"),
        ({"threshold": 2.0, "threshold_low": 2.0}, "threshold_low must be in"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    x = torch.zeros(1, 2)
    args = {"mode": "token_mask", "threshold": 2.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        rollout_correction.rollout_correction(x, x, torch.ones(1, 2), **args)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"one shape; got \(1, 2\), \(1, 3\), \(1, 2\)"):
        rollout_correction.rollout_correction(torch.zeros(1, 2), torch.zeros(1, 3), torch.ones(1, 2))


def test_doctests():
    result = doctest.testmod(rollout_correction, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
