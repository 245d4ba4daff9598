"""GRPO maths: hand-computed golden values, and each function against its formula on random inputs."""

import math

import pytest
import torch

from r1zero.algo import grpo

torch.set_num_threads(1)


# ---------------------------------------------------------------- advantages
def test_group_advantages_golden():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    # group 0: mean 0.25, unbiased std = sqrt((0.5625 + 3 * 0.0625) / 3) = 0.5
    adv = grpo.group_advantages(rewards, "group", eps=0.0 + 1e-12)
    assert torch.allclose(adv[0], torch.tensor([1.5, -0.5, -0.5, -0.5]))
    assert torch.equal(grpo.group_advantages(rewards, "group")[1], torch.zeros(4))
    assert torch.allclose(
        grpo.group_advantages(rewards, "none")[0], torch.tensor([0.75, -0.25, -0.25, -0.25])
    )


def test_batch_std_advantages_against_formula():
    g = torch.Generator().manual_seed(0)
    rewards = torch.rand(5, 4, generator=g)
    expected = (rewards - rewards.mean(1, keepdim=True)) / (rewards.flatten().std() + 1e-6)
    assert torch.allclose(grpo.group_advantages(rewards, "batch"), expected)
    expected_group = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-6)
    assert torch.allclose(grpo.group_advantages(rewards, "group"), expected_group)


def test_unknown_choice_names_valid_ones():
    with pytest.raises(ValueError, match="group, batch, none"):
        grpo.group_advantages(torch.zeros(1, 2), "zscore")
    with pytest.raises(ValueError, match="grpo, dapo, dr_grpo, bnpo"):
        grpo.aggregate_loss(torch.zeros(1, 2), torch.ones(1, 2), "sum")
    with pytest.raises(ValueError, match="k1, k2, k3"):
        grpo.kl_penalty(torch.zeros(1), torch.zeros(1), "k4")


# ---------------------------------------------------------------- surrogate
def test_clipped_surrogate_golden():
    # ratios 1.5, 0.5, 1.1, 0.9 with A = +1, -1, +1, -1 and eps 0.2 / 0.28
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1, 0.9]]))
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    out = grpo.clipped_surrogate(logp, torch.zeros(1, 4), adv, eps_low=0.2, eps_high=0.28)
    # 1.5*1 clipped to 1.28; 0.5*-1: min(-0.5, -0.8) = -0.8; 1.1 inside; 0.9*-1 = -0.9 inside -> loss = -min
    assert torch.allclose(out, torch.tensor([[-1.28, 0.8, -1.1, 0.9]]))


def test_clipped_surrogate_against_formula_random():
    g = torch.Generator().manual_seed(1)
    logp, old = torch.randn(6, 7, generator=g) * 0.3, torch.randn(6, 7, generator=g) * 0.3
    adv = torch.randn(6, generator=g)
    ratio = (logp - old).exp()
    expected = -torch.minimum(ratio * adv[:, None], ratio.clamp(0.8, 1.28) * adv[:, None])
    assert torch.allclose(grpo.clipped_surrogate(logp, old, adv, 0.2, 0.28), expected)


def test_on_policy_loss_is_zero_but_gradient_is_not():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.7]], requires_grad=True)
    adv = grpo.group_advantages(torch.tensor([[1.0, 0.0]]), "none").flatten()  # [+0.5, -0.5]
    loss, _ = grpo.grpo_loss(logp, logp.detach(), adv, torch.ones(2, 2))
    loss.backward()
    assert abs(loss.item()) < 1e-7
    assert logp.grad.abs().sum() > 0.1


# ---------------------------------------------------------------- aggregation
LOSS = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
MASK = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("grpo", (2.0 + 4.0 + 1.0) / 3),  # sequence means 2, 4, 1
        ("dapo", 12.0 / 6),  # 12 over 6 tokens
        ("dr_grpo", 12.0 / (3 * 4)),  # token sum / (S * L_max)
        ("bnpo", 12.0 / 6),  # one micro-batch = the batch
    ],
)
def test_aggregation_golden(mode, expected):
    assert grpo.aggregate_loss(LOSS, MASK, mode, max_len=4).item() == pytest.approx(expected)


@pytest.mark.parametrize("mode", ["grpo", "dapo", "dr_grpo"])
def test_micro_batches_sum_to_full_batch(mode):
    g = torch.Generator().manual_seed(2)
    loss = torch.randn(8, 5, generator=g)
    mask = (torch.rand(8, 5, generator=g) > 0.3).int()
    mask[:, 0] = 1
    full = grpo.aggregate_loss(loss, mask, mode, max_len=5)
    parts = [
        grpo.aggregate_loss(
            loss[i : i + 3], mask[i : i + 3], mode, max_len=5, num_sequences=8, num_tokens=mask.sum().item()
        )
        for i in range(0, 8, 3)
    ]
    assert torch.allclose(sum(parts), full)


def test_bnpo_normalises_per_micro_batch():
    # two micro-batches of 1 sequence: token means 2 and 4, each weighted 1/2 -> 3 (dapo would give 14/4)
    loss, mask = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]]), torch.tensor([[1, 1, 1], [1, 0, 0]])
    parts = [grpo.aggregate_loss(loss[i : i + 1], mask[i : i + 1], "bnpo", num_sequences=2) for i in range(2)]
    assert sum(parts).item() == pytest.approx(3.0)


def test_grpo_aggregation_favours_long_wrong_answers_dr_grpo_does_not():
    # Dr. GRPO's point: per-sequence normalisation gives each token of a long negative answer less weight.
    logp = torch.zeros(2, 10, requires_grad=True)
    mask = torch.tensor([[1] * 2 + [0] * 8, [1] * 10])
    adv = torch.tensor([-1.0, -1.0])
    for mode, same in (("grpo", False), ("dr_grpo", True)):
        logp.grad = None
        loss = grpo.aggregate_loss(grpo.clipped_surrogate(logp, logp.detach(), adv), mask, mode, max_len=10)
        loss.backward()
        short, long_ = logp.grad[0, 0].item(), logp.grad[1, 0].item()
        assert (short == pytest.approx(long_)) is same


def test_dr_grpo_needs_max_len():
    with pytest.raises(ValueError, match="max_len"):
        grpo.aggregate_loss(LOSS, MASK, "dr_grpo")


# ---------------------------------------------------------------- KL, entropy, clip fractions
def test_kl_estimators_golden():
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    d = math.log(0.5)  # ref - logp
    assert grpo.kl_penalty(logp, ref, "k1").item() == pytest.approx(-d)
    assert grpo.kl_penalty(logp, ref, "k2").item() == pytest.approx(0.5 * d * d)
    assert grpo.kl_penalty(logp, ref, "k3").item() == pytest.approx(0.5 - d - 1)


def test_k3_is_unbiased_estimate_of_kl():
    g = torch.Generator().manual_seed(3)
    p, q = torch.softmax(torch.randn(6, generator=g), 0), torch.softmax(torch.randn(6, generator=g), 0)
    samples = torch.multinomial(p, 200_000, replacement=True, generator=g)
    estimate = grpo.kl_penalty(p.log()[samples], q.log()[samples], "k3").mean()
    exact = (p * (p.log() - q.log())).sum()
    assert estimate.item() == pytest.approx(exact.item(), rel=0.03)
    assert (grpo.kl_penalty(p.log()[samples], q.log()[samples], "k3") >= 0).all()


def test_entropy_from_logp_against_formula():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # p = 1/4, 3/4
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert grpo.entropy_from_logp(torch.log_softmax(logits, dim=-1)).item() == pytest.approx(expected)


def test_clip_fractions_masked():
    ratio = torch.tensor([[0.5, 1.5, 1.0, 9.0]])
    adv = torch.tensor([1.0])  # positive: only the high side can clip
    low, high = grpo.clip_fractions(ratio, adv, torch.tensor([[1, 1, 1, 0]]))
    assert (low.item(), high.item()) == (0.0, pytest.approx(1 / 3))


def test_grpo_loss_with_kl_and_is_weights():
    logp = torch.log(torch.tensor([[0.5, 0.5]]))
    old, ref, rollout = (
        logp.clone(),
        torch.log(torch.tensor([[0.25, 0.5]])),
        torch.log(torch.tensor([[0.5, 0.1]])),
    )
    w = grpo.truncated_is_weights(old, rollout, cap=2.0)
    assert torch.allclose(w, torch.tensor([[1.0, 2.0]]))
    loss, stats = grpo.grpo_loss(
        logp,
        old,
        torch.tensor([1.0]),
        torch.ones(1, 2),
        beta=0.1,
        ref_logp=ref,
        is_weights=w,
        aggregation="dapo",
    )
    k3 = 0.5 - math.log(0.5) - 1  # first token; second has kl 0
    assert stats["policy"] == pytest.approx(-(1.0 + 2.0) / 2)
    assert stats["kl"] == pytest.approx(k3 / 2)
    assert loss.item() == pytest.approx(-1.5 + 0.1 * k3 / 2)
    with pytest.raises(ValueError, match="ref_logp"):
        grpo.grpo_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 2), beta=0.1)


# ---------------------------------------------------------------- DAPO extras
def test_soft_overlong_penalty_against_formula():
    max_len, cache = 20, 8
    lengths = torch.arange(0, 26)
    got = grpo.soft_overlong_penalty(lengths, max_len, cache)
    for n, value in zip(lengths.tolist(), got.tolist(), strict=True):
        if n <= max_len - cache:
            expected = 0.0
        elif n <= max_len:
            expected = (max_len - cache - n) / cache
        else:
            expected = -1.0
        assert value == pytest.approx(expected)
    with pytest.raises(ValueError, match="cache_len"):
        grpo.soft_overlong_penalty(lengths, 4, 8)


def test_overlong_filter_and_informative_groups():
    mask = grpo.overlong_filter_mask(torch.ones(3, 2), torch.tensor([True, False, True]))
    assert mask.sum(1).tolist() == [0.0, 2.0, 0.0]
    rewards = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.1, 0.0]])
    assert grpo.informative_groups(rewards).tolist() == [False, False, True]
