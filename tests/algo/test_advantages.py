"""RLOO, REINFORCE++, REINFORCE++-baseline and batch-std advantages: golden values and formulas."""

import math

import pytest
import torch

from r1zero.algo import advantages, grpo

torch.set_num_threads(1)


def test_rloo_golden():
    # group [1, 0, 0, 1]: leave-one-out means 1/3, 2/3, 2/3, 1/3 -> A = 2/3, -2/3, -2/3, 2/3
    # group [3, 3]: 0, 0
    adv = advantages.rloo_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]))
    assert torch.allclose(adv, torch.tensor([[2 / 3, -2 / 3, -2 / 3, 2 / 3]]))
    assert torch.equal(advantages.rloo_advantages(torch.tensor([[3.0, 3.0]])), torch.zeros(1, 2))


def test_rloo_against_formula_and_dr_grpo_scaling():
    rewards = torch.rand(4, 5, generator=torch.Generator().manual_seed(0))
    expected = torch.tensor(
        [[r[i] - (sum(r) - r[i]) / (len(r) - 1) for i in range(len(r))] for r in rewards.tolist()]
    )
    got = advantages.rloo_advantages(rewards)
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(got, grpo.group_advantages(rewards, "none") * 5 / 4, atol=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        advantages.rloo_advantages(torch.ones(3, 1))


def test_reinforce_pp_golden():
    # rewards 1, 0, 0, 0: mean 0.25, unbiased var (0.5625 + 3 * 0.0625) / 3 = 0.25 -> std 0.5
    adv = advantages.reinforce_pp_advantages(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    assert torch.allclose(adv, torch.tensor([[1.5, -0.5], [-0.5, -0.5]]), atol=1e-6)


def test_reinforce_pp_baseline_golden():
    # centred per group: [0.5, -0.5], [0, 0]; batch mean 0, unbiased var (0.25 + 0.25) / 3 = 1/6
    adv = advantages.reinforce_pp_baseline_advantages(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    assert torch.allclose(
        adv, torch.tensor([[0.5 * math.sqrt(6), -0.5 * math.sqrt(6)], [0.0, 0.0]]), atol=1e-6
    )


def test_token_weighted_whitening_equals_whitening_every_token():
    # verl / OpenRLHF broadcast the value to every token and whiten over all loss tokens
    gen = torch.Generator().manual_seed(1)
    rewards = torch.randint(0, 2, (3, 4), generator=gen).float()
    rewards[0, 0] = 1.0 - rewards[0, 1]
    lengths = torch.randint(1, 9, (3, 4), generator=gen)
    for name, values in (
        ("reinforce_pp", rewards),
        ("reinforce_pp_baseline", rewards - rewards.mean(dim=1, keepdim=True)),
    ):
        fn = getattr(advantages, f"{name}_advantages")
        got = fn(rewards, lengths)  # [N, G]
        tokens = torch.repeat_interleave(values.flatten(), lengths.flatten())  # one entry per token
        expected = (values - tokens.mean()) / torch.sqrt(tokens.var() + 1e-8)  # unbiased var over tokens
        assert torch.allclose(got, expected, atol=1e-6), name
        assert not torch.allclose(got, fn(rewards), atol=1e-3)  # the weighting matters here


def test_whiten_needs_more_than_one_value():
    with pytest.raises(ValueError, match="total weight"):
        advantages.whiten(torch.tensor([1.0]))


def test_batch_std_golden():
    # centred [0.5, -0.5], [0, 0]; std of the rewards [1, 0, 1, 1]: mean 0.75, var (0.0625*3 + 0.5625)/3 = 0.25
    adv = advantages.batch_std_advantages(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), eps=0.0)
    assert torch.allclose(adv, torch.tensor([[1.0, -1.0], [0.0, 0.0]]))
