"""GSPO, CISPO, SAPO, dual-clip, Clip-Cov, KL-Cov: hand-computed golden values, each against its paper's
formula written out independently here (loops over sequences and tokens), and the gradient properties
that are the point of each method."""

import math

import pytest
import torch

from r1zero.algo import covariance, grpo, losses

torch.set_num_threads(1)


def random_case(seed: int, batch: int = 6, width: int = 7, noise: float = 0.4):
    gen = torch.Generator().manual_seed(seed)
    logp = -torch.rand(batch, width, generator=gen) * 3  # [B, T]
    old = logp + noise * torch.randn(batch, width, generator=gen)  # [B, T]
    lengths = torch.randint(1, width + 1, (batch,), generator=gen)  # [B]
    mask = (torch.arange(width)[None] < lengths[:, None]).long()  # [B, T]
    adv = torch.randn(batch, generator=gen)  # [B]
    return logp, old, adv, mask


def loss_and_grad(fn, logp, *args, **kwargs):
    x = logp.clone().requires_grad_(True)
    loss, stats = fn(x, *args, **kwargs)
    loss.backward()
    return loss.detach(), x.grad, stats


# ---------------------------------------------------------------- GSPO
def test_gspo_golden():
    # seq 0: log ratios [log 2, 0] -> s = exp(log(2) / 2) = sqrt(2) = 1.414, A = +1: clipped to 1.2, loss -1.2
    # seq 1: log ratio [log 0.25] (second token padding) -> s = 0.25, A = -1: min(-0.25, -0.8) -> loss 0.8
    logp = torch.tensor([[math.log(2.0), 0.0], [math.log(0.25), 5.0]])
    mask, adv = torch.tensor([[1, 1], [1, 0]]), torch.tensor([1.0, -1.0])
    loss, grad, stats = loss_and_grad(
        losses.gspo_loss, logp, torch.zeros(2, 2), adv, mask, eps_low=0.2, eps_high=0.2
    )
    assert loss.item() == pytest.approx((-1.2 + 0.8) / 2)  # grpo: mean over the 2 sequences
    assert (stats["clip_low"], stats["clip_high"], stats["seq_clip"]) == (0.5, 0.5, 1.0)
    assert torch.equal(grad, torch.zeros(2, 2))  # both sequences clipped: no gradient at all
    dapo, _ = losses.gspo_loss(
        logp, torch.zeros(2, 2), adv, mask, eps_low=0.2, eps_high=0.2, aggregation="dapo"
    )
    assert dapo.item() == pytest.approx((2 * -1.2 + 0.8) / 3)  # token mean: sequence 0 counts twice


def test_gspo_gradient_is_shared_by_the_sequence():
    # unclipped (eps 0.9 / 1.0): l_0 = -sqrt(2), d l_0 / d logp_t = -A s / |o| = -sqrt(2) / 2 per token,
    # then / 2 sequences; seq 1: l_1 = 0.25, d/d logp_0 = -A s / 1 = 0.25, / 2
    logp = torch.tensor([[math.log(2.0), 0.0], [math.log(0.25), 5.0]])
    mask, adv = torch.tensor([[1, 1], [1, 0]]), torch.tensor([1.0, -1.0])
    loss, grad, stats = loss_and_grad(
        losses.gspo_loss, logp, torch.zeros(2, 2), adv, mask, eps_low=0.9, eps_high=1.0
    )
    assert loss.item() == pytest.approx((-math.sqrt(2) + 0.25) / 2)
    expected = torch.tensor([[-math.sqrt(2) / 4, -math.sqrt(2) / 4], [0.125, 0.0]])
    assert torch.allclose(grad, expected)
    assert stats["seq_clip"] == 0.0


def gspo_paper(logp, old, adv, mask, eps_low, eps_high):
    """GSPO eq. (5)-(7): J = 1/G sum_i min(s_i A_i, clip(s_i) A_i), s_i = (pi(y_i)/pi_old(y_i))^(1/|y_i|)."""
    terms = []
    for i in range(logp.shape[0]):
        tokens = [t for t in range(logp.shape[1]) if mask[i, t]]
        s = torch.exp(sum(logp[i, t] - old[i, t] for t in tokens) / len(tokens))
        terms.append(torch.minimum(s * adv[i], torch.clamp(s, 1 - eps_low, 1 + eps_high) * adv[i]))
    return -sum(terms) / len(terms)


@pytest.mark.parametrize(("seed", "eps"), [(0, (3e-4, 4e-4)), (1, (0.05, 0.05)), (2, (0.2, 0.28))])
def test_gspo_against_paper_formula(seed, eps):
    logp, old, adv, mask = random_case(seed, noise=0.05)
    ours, our_grad, _ = loss_and_grad(losses.gspo_loss, logp, old, adv, mask, eps_low=eps[0], eps_high=eps[1])
    theirs, their_grad, _ = loss_and_grad(lambda x, *a: (gspo_paper(x, *a), {}), logp, old, adv, mask, *eps)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert torch.allclose(our_grad, their_grad, atol=1e-6)


def test_gspo_needs_sequence_advantages():
    with pytest.raises(ValueError, match=r"shape \[B\]"):
        losses.gspo_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2))


# ---------------------------------------------------------------- CISPO
def test_cispo_golden_and_every_token_keeps_its_gradient():
    # ratios 0.5 / 0.05 = 10 and 0.25 / 0.5 = 0.5; A = 2; weights clip(10, max 5) = 5 and 0.5 (no lower bound)
    # token losses -5 * 2 * log(0.5) = 6.931 and -0.5 * 2 * log(0.25) = 1.386; dapo: mean over 2 tokens
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    old = torch.log(torch.tensor([[0.05, 0.5]]))
    adv, mask = torch.tensor([2.0]), torch.ones(1, 2)
    loss, grad, stats = loss_and_grad(losses.cispo_loss, logp, old, adv, mask, eps_high=4.0)
    assert loss.item() == pytest.approx((-10 * math.log(0.5) - math.log(0.25)) / 2)
    # gradient -sg(w) * A / 2 tokens: -5 and -0.5. With the weight's gradient (no stop-gradient) the second
    # token would get -(w + w * log pi) * A / 2 = -(0.5 + 0.5 * log 0.25) = +0.193.
    assert torch.allclose(grad, torch.tensor([[-5.0, -0.5]]))
    assert (stats["clip_high"], stats["clip_low"], stats["weight_clip"]) == (0.5, 0.0, 0.5)
    # PPO's clip drops the first token's gradient entirely (ratio 10 > 1.2 with A > 0); CISPO keeps it
    _, ppo_grad, _ = loss_and_grad(grpo.grpo_loss, logp, old, adv, mask, aggregation="dapo")
    assert ppo_grad[0, 0] == 0.0 and grad[0, 0] != 0.0


def test_cispo_lower_bound():
    # eps_low 0.2: the 0.5 weight is raised to 0.8; loss -0.8 * 2 * log(0.25) / 2 for that token
    logp, old = torch.log(torch.tensor([[0.25]])), torch.log(torch.tensor([[0.5]]))
    loss, grad, stats = loss_and_grad(
        losses.cispo_loss, logp, old, torch.tensor([2.0]), torch.ones(1, 1), eps_low=0.2
    )
    assert loss.item() == pytest.approx(-0.8 * 2 * math.log(0.25))
    assert grad.item() == pytest.approx(-1.6)
    assert stats["clip_low"] == 1.0


def cispo_paper(logp, old, adv, mask, eps_low, eps_high):
    """MiniMax-M1 eq. (4): J = 1/sum|o_i| sum_i sum_t sg(r_hat_it) A_i log pi(o_it), r_hat = clip(r, 1-el, 1+eh)."""
    total, count = 0.0, 0
    for i in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            if mask[i, t]:
                r = math.exp((logp[i, t] - old[i, t]).item())
                r_hat = min(max(r, 1 - eps_low), 1 + eps_high)
                total = total + r_hat * adv[i] * logp[i, t]
                count += 1
    return -total / count


@pytest.mark.parametrize(("seed", "eps_low", "eps_high"), [(0, 10.0, 4.0), (1, 0.2, 0.28), (2, 0.5, 0.1)])
def test_cispo_against_paper_formula(seed, eps_low, eps_high):
    logp, old, adv, mask = random_case(seed, noise=0.6)
    kwargs = {"eps_low": eps_low, "eps_high": eps_high}
    ours, our_grad, _ = loss_and_grad(losses.cispo_loss, logp, old, adv, mask, **kwargs)
    theirs, their_grad, _ = loss_and_grad(
        lambda x, *a: (cispo_paper(x, *a), {}), logp, old, adv, mask, eps_low, eps_high
    )
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert torch.allclose(our_grad, their_grad, atol=1e-6)
    assert (our_grad[mask.bool()] != 0).all()  # every loss token has a gradient


# ---------------------------------------------------------------- SAPO
def test_sapo_golden():
    # token 0: ratio 1, A = +1, tau 1: -(4/1) sigmoid(0) = -2; gradient -4 * 0.25 * 1 * A = -1
    # token 1: ratio 2, A = -1, tau 1.05: +(4/1.05) sigmoid(1.05) = 3.80952 * 0.74077 = 2.82200;
    #          gradient -4 s (1 - s) * ratio * A = 4 * 0.74077 * 0.25923 * 2 = 1.53621
    logp = torch.log(torch.tensor([[1.0], [2.0]]))
    loss, grad, stats = loss_and_grad(
        losses.sapo_loss, logp, torch.zeros(2, 1), torch.tensor([1.0, -1.0]), torch.ones(2, 1)
    )
    s = 1 / (1 + math.exp(-1.05))
    assert loss.item() == pytest.approx((-2.0 + 4 / 1.05 * s) / 2)  # grpo: mean of the 2 sequences
    assert torch.allclose(grad, torch.tensor([[-0.5], [4 * s * (1 - s) * 2 / 2]]))
    assert stats["gate_weight"] == pytest.approx((1.0 + 4 * s * (1 - s) * 2) / 2)


def sapo_paper(logp, old, adv, mask, tau_pos, tau_neg):
    """SAPO: J = 1/G sum_i 1/|o_i| sum_t f(r_it) A_i with f(r) = 4/tau sigmoid(tau (r - 1)), tau by sign(A)."""
    seqs = []
    for i in range(logp.shape[0]):
        tau = tau_pos if adv[i] > 0 else tau_neg
        tokens = [t for t in range(logp.shape[1]) if mask[i, t]]
        gates = [4 / tau * torch.sigmoid(tau * (torch.exp(logp[i, t] - old[i, t]) - 1)) for t in tokens]
        seqs.append(sum(gates) * adv[i] / len(tokens))
    return -sum(seqs) / len(seqs)


@pytest.mark.parametrize(("seed", "taus"), [(0, (1.0, 1.05)), (1, (0.5, 2.0))])
def test_sapo_against_paper_formula(seed, taus):
    logp, old, adv, mask = random_case(seed)
    ours, our_grad, _ = loss_and_grad(
        losses.sapo_loss, logp, old, adv, mask, tau_pos=taus[0], tau_neg=taus[1]
    )
    theirs, their_grad, _ = loss_and_grad(lambda x, *a: (sapo_paper(x, *a), {}), logp, old, adv, mask, *taus)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert torch.allclose(our_grad, their_grad, atol=1e-6)


def test_sapo_on_policy_gradient_is_the_policy_gradient():
    logp, _, adv, mask = random_case(3)
    _, sapo_grad, _ = loss_and_grad(losses.sapo_loss, logp, logp, adv, mask)
    _, grpo_grad, _ = loss_and_grad(grpo.grpo_loss, logp, logp, adv, mask)
    assert torch.allclose(sapo_grad, grpo_grad, atol=1e-7)
    with pytest.raises(ValueError, match="temperatures"):
        losses.sapo_loss(logp, logp, adv, mask, tau_neg=0.0)


# ---------------------------------------------------------------- dual clip
def test_dual_clip_golden():
    # ratios 5, 1.5, 0.5 with A = -1 and 2 with A = +1; eps 0.2, c = 3
    # t0: -min(-5, -1.2) = 5, capped at -c A = 3 (no gradient); t1: 1.5 (inside, gradient -A = 1);
    # t2: -min(-0.5, -0.8) = 0.8 (low clip); t3: -min(2, 1.2) = -1.2 (high clip)
    logp = torch.log(torch.tensor([[5.0], [1.5], [0.5], [2.0]]))
    adv, mask = torch.tensor([-1.0, -1.0, -1.0, 1.0]), torch.ones(4, 1)
    loss, grad, stats = loss_and_grad(
        losses.dual_clip_loss, logp, torch.zeros(4, 1), adv, mask, aggregation="dapo"
    )
    assert loss.item() == pytest.approx((3 + 1.5 + 0.8 - 1.2) / 4)
    assert torch.allclose(grad, torch.tensor([[0.0], [1.5 / 4], [0.0], [0.0]]))
    assert (stats["dual_clip"], stats["clip_low"], stats["clip_high"]) == (0.25, 0.25, 0.25)
    plain, _ = grpo.grpo_loss(logp, torch.zeros(4, 1), adv, mask, aggregation="dapo")
    assert plain.item() == pytest.approx((5 + 1.5 + 0.8 - 1.2) / 4)  # without the cap


def test_dual_clip_against_formula_and_equals_grpo_for_positive_advantages():
    logp, old, adv, mask = random_case(4, noise=1.5)
    ours, _ = losses.dual_clip_loss(logp, old, adv, mask, eps_low=0.2, eps_high=0.28, clip_ratio_c=3.0)
    ratio, a = torch.exp(logp - old), adv[:, None]
    ppo = -torch.minimum(ratio * a, ratio.clamp(0.8, 1.28) * a)
    expected = torch.where(a < 0, torch.minimum(ppo, -3.0 * a), ppo)  # Ye et al.: max(min(.), c A) for A < 0
    assert ours.item() == pytest.approx(grpo.aggregate_loss(expected, mask).item(), abs=1e-6)
    positive = adv.abs()
    same, _ = losses.dual_clip_loss(logp, old, positive, mask)
    assert same.item() == pytest.approx(grpo.grpo_loss(logp, old, positive, mask)[0].item(), abs=1e-7)
    with pytest.raises(ValueError, match="clip_ratio_c"):
        losses.dual_clip_loss(logp, old, adv, mask, clip_ratio_c=1.0)


# ---------------------------------------------------------------- Clip-Cov
def test_clip_cov_golden():
    # logp [[-1, -2], [-3, -2]]: mean -2, deviations [[1, 0], [-1, 0]]; A per token [[2, 2], [-2, -2]], mean 0
    # covariances [[2, 0], [2, 0]]: candidates in (1, 5) are (0, 0) and (1, 0); but (1, 0) has ratio
    # exp(-0.5) = 0.607 < 0.8 with A < 0, already clipped by PPO -> only (0, 0) is left, and
    # max(1, int(0.25 * 4)) = 1 token is detached: (0, 0).
    # token losses: (0, 0) 0; (0, 1) -2; (1, 0) max(2 * 0.607, 2 * 0.8) = 1.6; (1, 1) 2
    logp = torch.tensor([[-1.0, -2.0], [-3.0, -2.0]])
    old = logp.clone()
    old[1, 0] += 0.5
    adv, mask = torch.tensor([2.0, -2.0]), torch.ones(2, 2)
    loss, grad, stats = loss_and_grad(covariance.clip_cov_loss, logp, old, adv, mask, clip_cov_ratio=0.25)
    assert loss.item() == pytest.approx(((0 - 2) / 2 + (1.6 + 2) / 2) / 2)
    assert torch.allclose(grad, torch.tensor([[0.0, -0.5], [0.0, 0.5]]))
    assert (stats["cov_clip"], stats["clip_low"]) == (0.25, 0.25)
    _, grpo_grad, _ = loss_and_grad(grpo.grpo_loss, logp, old, adv, mask)
    assert grpo_grad[0, 0] == pytest.approx(-0.5)  # GRPO keeps the high-covariance token's gradient


def test_clip_cov_against_paper_with_all_candidates_detached():
    # with a ratio large enough to take every candidate the random draw does not matter: the loss is PPO's
    # with exactly the tokens of covariance in (lb, ub) (and not clipped) removed
    logp, old, adv, mask = random_case(5)
    x = logp.clone().requires_grad_(True)
    loss, stats = covariance.clip_cov_loss(
        x, old, adv, mask, clip_cov_ratio=1.0, clip_cov_lb=0.05, clip_cov_ub=0.6
    )
    valid = [(i, t) for i in range(6) for t in range(7) if mask[i, t]]
    mean_a = sum(adv[i].item() for i, _ in valid) / len(valid)
    mean_l = sum(logp[i, t].item() for i, t in valid) / len(valid)
    expected = torch.zeros(6, 7)
    removed = 0
    for i, t in valid:
        r, a = math.exp((logp[i, t] - old[i, t]).item()), adv[i].item()
        ppo = max(-a * r, -a * min(max(r, 0.8), 1.2))
        cov = (a - mean_a) * (logp[i, t].item() - mean_l)
        if 0.05 < cov < 0.6 and ppo == -a * r:
            removed += 1
        else:
            expected[i, t] = ppo
    assert 0 < removed < len(valid)
    assert loss.item() == pytest.approx(grpo.aggregate_loss(expected, mask).item(), abs=1e-6)
    assert stats["cov_clip"] == pytest.approx(removed / len(valid))


def test_clip_cov_draw_follows_the_generator():
    logp, old, adv, mask = random_case(6, noise=0.0)
    kwargs = {"clip_cov_ratio": 0.1, "clip_cov_lb": 0.0, "clip_cov_ub": 10.0}

    def detached(seed):
        x = logp.clone().requires_grad_(True)
        covariance.clip_cov_loss(x, old, adv, mask, generator=torch.Generator().manual_seed(seed), **kwargs)[
            0
        ].backward()
        return (x.grad == 0) & mask.bool()

    assert torch.equal(detached(0), detached(0))
    assert any(not torch.equal(detached(0), detached(s)) for s in range(1, 5))
    with pytest.raises(ValueError, match="clip_cov_ratio"):
        covariance.clip_cov_loss(logp, old, adv, mask, clip_cov_ratio=0.0)


# ---------------------------------------------------------------- KL-Cov
def test_kl_cov_golden():
    # logp [[-1, -2], [-2.5, -2]]: mean -1.875, deviations [[0.875, -0.125], [-0.625, -0.125]];
    # A per token [[2, 2], [-2, -2]], mean 0 -> covariances [[1.75, -0.25], [1.25, 0.25]]
    # old = logp - 0.1: every ratio e^0.1, the -A rho terms cancel between the two sequences;
    # top max(1, int(0.25 * 4)) = 1 token by covariance: (0, 0) gets + 1.0 * |0.1|
    logp = torch.tensor([[-1.0, -2.0], [-2.5, -2.0]])
    adv, mask = torch.tensor([2.0, -2.0]), torch.ones(2, 2)
    kwargs = {"kl_cov_ratio": 0.25, "kl_cov_coef": 1.0}
    loss, grad, stats = loss_and_grad(covariance.kl_cov_loss, logp, logp - 0.1, adv, mask, **kwargs)
    assert loss.item() == pytest.approx(0.1 / 4, abs=1e-6)  # grpo: (0.1 / 2) / 2 sequences
    rho = math.exp(0.1)
    # (0, 0): (-A rho + coef * sign(log rho)) / 4 = (-2 rho + 1) / 4; others -A rho / 4
    expected = torch.tensor([[(-2 * rho + 1) / 4, -2 * rho / 4], [2 * rho / 4, 2 * rho / 4]])
    assert torch.allclose(grad, expected)
    assert stats["kl_cov"] == 0.25
    half, _ = covariance.kl_cov_loss(logp, logp - 0.1, adv, mask, kl_cov_ratio=0.5, kl_cov_coef=1.0)
    assert half.item() == pytest.approx(0.2 / 4, abs=1e-6)  # (0, 0) and (1, 0)


def test_kl_cov_against_paper_formula():
    logp, old, adv, mask = random_case(7)
    loss, stats = covariance.kl_cov_loss(logp, old, adv, mask, kl_cov_ratio=0.2, kl_cov_coef=0.5)
    valid = [(i, t) for i in range(6) for t in range(7) if mask[i, t]]
    mean_a = sum(adv[i].item() for i, _ in valid) / len(valid)
    mean_l = sum(logp[i, t].item() for i, t in valid) / len(valid)
    covs = sorted(valid, key=lambda it: -(adv[it[0]].item() - mean_a) * (logp[it].item() - mean_l))
    top = set(covs[: max(1, int(len(valid) * 0.2))])
    expected = torch.zeros(6, 7)
    for i, t in valid:
        log_r = (logp[i, t] - old[i, t]).item()
        expected[i, t] = -adv[i].item() * math.exp(log_r) + (0.5 * abs(log_r) if (i, t) in top else 0.0)
    assert loss.item() == pytest.approx(grpo.aggregate_loss(expected, mask).item(), abs=1e-6)
    assert stats["kl_cov"] == pytest.approx(len(top) / len(valid))


def test_token_covariance_uses_only_loss_tokens():
    cov = covariance.token_covariance(torch.tensor([[-1.0, -3.0, 99.0]]), torch.tensor([[1.0, -1.0, 50.0]]),
                                      torch.tensor([[1, 1, 0]]))  # fmt: skip
    assert cov[0, :2].tolist() == [1.0, 1.0]


# ---------------------------------------------------------------- entropy bonus, shared KL path
def test_entropy_bonus_golden_and_gradient():
    entropy = torch.tensor([[1.0, 2.0, 9.0]], requires_grad=True)
    bonus = losses.entropy_bonus(entropy, torch.tensor([[1, 1, 0]]), coef=0.001)
    assert bonus.item() == pytest.approx(-0.001 * 1.5)
    bonus.backward()
    assert torch.allclose(entropy.grad, torch.tensor([[-0.0005, -0.0005, 0.0]]))  # more entropy, lower loss


def test_aggregate_with_kl_matches_grpo_loss():
    logp, old, adv, mask = random_case(8)
    ref = logp + 0.3
    weights = torch.rand(logp.shape, generator=torch.Generator().manual_seed(0)) + 0.5
    kwargs = {"beta": 0.04, "ref_logp": ref, "is_weights": weights, "aggregation": "dapo"}
    ours, stats = losses.aggregate_with_kl(grpo.clipped_surrogate(logp, old, adv), logp, mask, **kwargs)
    theirs, their_stats = grpo.grpo_loss(logp, old, adv, mask, **kwargs)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-7)
    assert stats["kl"] == pytest.approx(their_stats["kl"]) and stats["policy"] == pytest.approx(
        their_stats["policy"]
    )
    with pytest.raises(ValueError, match="ref_logp"):
        losses.aggregate_with_kl(logp, logp, mask, beta=0.1)
