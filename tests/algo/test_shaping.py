"""Kimi-1.5 length reward, truncation masking, random-reward and format-only controls."""

import pytest
import torch

from r1zero.algo import shaping

torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("lengths", "correct", "expected"),
    [
        # min 10, max 30: lambda = 0.5 - (len - 10) / 20 -> 0.5, 0, -0.5; wrong answers keep only min(0, .)
        ([10, 20, 30], [True, True, True], [0.5, 0.0, -0.5]),
        ([10, 20, 30], [False, False, False], [0.0, 0.0, -0.5]),
        ([10, 15, 30], [False, True, False], [0.0, 0.25, -0.5]),
        ([7, 7, 7], [True, False, True], [0.0, 0.0, 0.0]),  # equal lengths: no length signal
    ],
)
def test_kimi_length_reward_golden(lengths, correct, expected):
    got = shaping.kimi_length_reward(torch.tensor([lengths]), torch.tensor([correct]))
    assert torch.allclose(got, torch.tensor([expected]))


def test_kimi_length_reward_against_formula_per_group():
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 50, (4, 6), generator=gen)
    correct = torch.rand(4, 6, generator=gen) > 0.5
    got = shaping.kimi_length_reward(lengths, correct)
    for n in range(4):
        lo, hi = lengths[n].min().item(), lengths[n].max().item()
        for g in range(6):
            lam = 0.5 - (lengths[n, g].item() - lo) / (hi - lo)
            expected = lam if correct[n, g] else min(0.0, lam)
            assert got[n, g].item() == pytest.approx(expected, abs=1e-6)


def test_mask_truncated_and_share():
    mask, share = shaping.mask_truncated(torch.ones(4, 3), torch.tensor([True, False, False, True]))
    assert mask.sum(dim=1).tolist() == [0.0, 3.0, 3.0, 0.0]
    assert share == 0.5


def test_random_rewards_are_seeded_bernoulli():
    a = shaping.random_rewards((64, 8), 0.3, seed=1, step=5)
    assert torch.equal(a, shaping.random_rewards((64, 8), 0.3, seed=1, step=5))  # same on resume
    assert not torch.equal(a, shaping.random_rewards((64, 8), 0.3, seed=1, step=6))
    assert not torch.equal(a, shaping.random_rewards((64, 8), 0.3, seed=2, step=5))
    assert set(a.unique().tolist()) == {0.0, 1.0}
    assert a.mean().item() == pytest.approx(0.3, abs=0.05)  # 512 draws: std of the mean 0.02
    assert shaping.random_rewards((5,), 1.0, seed=0, step=0).tolist() == [1.0] * 5
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        shaping.random_rewards((2,), 1.5, seed=0, step=0)


def test_format_only_rewards():
    assert shaping.format_only_rewards(torch.tensor([True, False, True])).tolist() == [1.0, 0.0, 1.0]
