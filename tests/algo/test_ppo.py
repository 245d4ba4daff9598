"""Golden values for the PPO maths (``r1zero.algo.ppo``): token rewards, GAE, whitening, value loss, EV."""

import pytest
import torch

from r1zero.algo import ppo


def test_terminal_rewards_put_the_reward_on_the_last_real_token():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    out = ppo.terminal_rewards(torch.tensor([2.0, -1.0, 5.0]), mask)
    assert out.tolist() == [[0, 0, 2, 0], [-1, 0, 0, 0], [0, 0, 0, 0]]


def test_gae_matches_a_hand_computation():
    # one completion of 3 tokens, gamma 0.9, lambda 0.5, reward 1 at the end
    values = torch.tensor([[0.2, 0.4, 0.6]])
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    adv, ret = ppo.gae(rewards, values, torch.ones(1, 3), gamma=0.9, lam=0.5)
    d2 = 1.0 - 0.6  # last token: no next value
    d1 = 0.9 * 0.6 - 0.4
    d0 = 0.9 * 0.4 - 0.2
    a2 = d2
    a1 = d1 + 0.45 * a2
    a0 = d0 + 0.45 * a1
    assert adv[0].tolist() == pytest.approx([a0, a1, a2], abs=1e-6)
    assert ret[0].tolist() == pytest.approx([a0 + 0.2, a1 + 0.4, a2 + 0.6], abs=1e-6)


def test_gae_with_lambda_1_gamma_1_is_reward_minus_value_and_ignores_padding():
    torch.manual_seed(0)
    values = torch.randn(4, 6)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] + [0] * 5, [1] * 5 + [0]])
    rewards = torch.tensor([1.0, 0.0, 2.0, -1.0])
    adv, ret = ppo.gae(ppo.terminal_rewards(rewards, mask), values, mask, 1.0, 1.0)
    expected = (rewards[:, None] - values) * mask  # Open-Reasoner-Zero: A_t = R - V(s_t)
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, rewards[:, None] * mask, atol=1e-6)  # Monte-Carlo return on every token
    padded_values = values.masked_fill(mask == 0, 99.0)  # garbage on padding must not leak
    adv2, _ = ppo.gae(ppo.terminal_rewards(rewards, mask), padded_values, mask, 1.0, 1.0)
    assert torch.allclose(adv, adv2)


def test_whiten_gives_zero_mean_unit_variance_on_masked_entries():
    torch.manual_seed(1)
    x = torch.randn(3, 5) * 4 + 7
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    w = ppo.whiten(x, mask)
    kept = w[mask.bool()]
    assert float(kept.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(kept.std()) == pytest.approx(1.0, abs=1e-5)
    assert torch.all(w[~mask.bool()] == 0)


def test_value_loss_clipping_and_micro_batch_additivity():
    values = torch.tensor([[2.0, 0.5], [0.0, 1.0]])
    old = torch.tensor([[0.0, 0.5], [0.0, 0.0]])
    returns = torch.tensor([[1.5, 0.0], [1.0, 1.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, stats = ppo.value_loss(values, old, returns, mask, clip=0.5)
    # token 1: max((2-1.5)^2, (0.5-1.5)^2) = 1.0 (clip binds); token 2: 0.25; token 3: 1.0
    assert float(loss) == pytest.approx(0.5 * (1.0 + 0.25 + 1.0) / 3)
    assert stats["clip_frac"] == pytest.approx(1 / 3)
    unclipped, _ = ppo.value_loss(values, old, returns, mask, clip=0.0)
    assert float(unclipped) == pytest.approx(0.5 * (0.25 + 0.25 + 1.0) / 3)
    parts = [ppo.value_loss(values[i : i + 1], old[i : i + 1], returns[i : i + 1], mask[i : i + 1], 0.5, 3.0)[0]
             for i in range(2)]  # fmt: skip
    assert float(sum(parts)) == pytest.approx(float(loss))


def test_explained_variance():
    r = torch.tensor([[1.0, 0.0, 2.0, 5.0]])
    m = torch.tensor([[1, 1, 1, 0]])
    assert ppo.explained_variance(r, r, m) == pytest.approx(1.0)
    assert ppo.explained_variance(torch.full_like(r, 1.0), r, m) == pytest.approx(0.0, abs=1e-6)
    assert ppo.explained_variance(-r, r, m) < 0
