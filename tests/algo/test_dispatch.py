"""The name -> function tables: every loss takes the common keywords and its listed options; doctests."""

import doctest
import inspect

import pytest
import torch

from r1zero.algo import advantages, covariance, dispatch, grpo, losses, shaping

torch.set_num_threads(1)

COMMON = {
    "aggregation",
    "max_len",
    "beta",
    "ref_logp",
    "kl_estimator",
    "is_weights",
    "num_sequences",
    "num_tokens",
}


def case(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    logp = -torch.rand(4, 5, generator=gen) * 2  # [B, T]
    old = logp + 0.2 * torch.randn(4, 5, generator=gen)  # [B, T]
    mask = torch.ones(4, 5)
    mask[1, 3:] = 0
    return logp, old, torch.tensor([1.0, -1.0, 0.5, -0.5]), mask


@pytest.mark.parametrize("name", list(dispatch.LOSSES))
def test_loss_options_are_the_variant_keywords(name):
    params = inspect.signature(dispatch.LOSSES[name]).parameters
    keyword_only = {p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY}
    assert set(dispatch.LOSS_OPTIONS[name]) == keyword_only - COMMON


@pytest.mark.parametrize("name", list(dispatch.LOSSES))
def test_every_loss_takes_the_common_keywords_and_adds_the_same_kl(name):
    logp, old, adv, mask = case()
    ref = logp + 0.3
    common = {"aggregation": "dr_grpo", "max_len": 5, "num_sequences": 4, "num_tokens": 18.0}
    fn = dispatch.get_loss(name)
    plain, stats = fn(logp, old, adv, mask, **common)
    with_kl, kl_stats = fn(logp, old, adv, mask, beta=0.5, ref_logp=ref, kl_estimator="k2", **common)
    kl = grpo.aggregate_loss(grpo.kl_penalty(logp, ref, "k2"), mask, "dr_grpo", max_len=5, num_sequences=4)
    if name == "clip_cov":  # its detached token is drawn at random: compare the policy parts instead
        assert with_kl.item() == pytest.approx(kl_stats["policy"] + 0.5 * kl.item(), abs=1e-6)
    else:
        assert with_kl.item() == pytest.approx(plain.item() + 0.5 * kl.item(), abs=1e-6)
    assert {"policy", "kl"} <= set(stats) and stats["kl"] == 0.0 and kl_stats["kl"] > 0


def test_is_weights_scale_the_policy_term():
    logp, old, adv, mask = case(1)
    for name in ("gspo", "cispo", "sapo", "dual_clip", "kl_cov"):
        fn = dispatch.get_loss(name)
        assert fn(logp, old, adv, mask, is_weights=torch.full_like(logp, 2.0))[0].item() == pytest.approx(
            2 * fn(logp, old, adv, mask)[0].item(), abs=1e-6
        ), name


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="grpo, gspo, cispo, sapo, dual_clip, clip_cov, kl_cov"):
        dispatch.get_loss("ppo2")
    with pytest.raises(ValueError, match="rloo, reinforce_pp"):
        dispatch.compute_advantages("vtrace", torch.zeros(1, 2))
    with pytest.raises(TypeError):
        dispatch.get_loss("sapo")(*case(), eps_high=0.2)  # a knob sapo does not have


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("grpo", [[1 / 2**0.5 / (1 + 1e-6 * 2**0.5), -1 / 2**0.5 / (1 + 1e-6 * 2**0.5)]]),
        ("dr_grpo", [[0.5, -0.5]]),
        ("rloo", [[1.0, -1.0]]),
        ("reinforce_pp", [[0.7071, -0.7071]]),
    ],
)
def test_compute_advantages_by_name(name, expected):
    got = dispatch.compute_advantages(name, torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(got, torch.tensor(expected), atol=1e-4)


def test_compute_advantages_passes_lengths_to_token_weighted_estimators():
    rewards, lengths = torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[1, 10], [1, 1]])
    assert torch.equal(
        dispatch.compute_advantages("reinforce_pp", rewards, lengths),
        advantages.reinforce_pp_advantages(rewards, lengths),
    )


@pytest.mark.parametrize("module", [advantages, covariance, dispatch, grpo, losses, shaping])
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
