"""r1zero's GRPO, GSPO, CISPO and SAPO losses against TRL 1.16's formulas, without TRL installed.

``trl_loss`` below transcribes the part of ``GRPOTrainer._compute_loss`` (trl 1.16.0,
``trl/trainer/grpo_trainer.py``) that runs with token-level importance sampling, beta = 0, no entropy
mask or bonus, no vLLM, in train mode: ratio, two-sided clip, then the loss type's normaliser and the
gradient-accumulation scaling. ``bench/loss_agreement.py`` checks the same agreement against TRL's real
code (in the benchmark venv); this test keeps the claim checked in CI.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from r1zero.algo.grpo import group_advantages, grpo_loss
from r1zero.algo.losses import cispo_loss, gspo_loss, sapo_loss
from r1zero.train.config import RolloutConfig

BENCH = Path(__file__).resolve().parents[2] / "bench"


def trl_loss(logp, old, adv, mask, loss_type, eps_low, eps_high, max_completion_length, num_items, accum):
    """TRL 1.16 ``_compute_loss`` on one micro-batch (see the module docstring for the path taken)."""
    advantages = adv.unsqueeze(1)
    coef_1 = torch.exp(logp - old)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    per_token_loss = -torch.min(coef_1 * advantages, coef_2 * advantages)
    mask = mask.float()
    if loss_type == "grpo":
        return ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean() / accum
    if loss_type == "dr_grpo":
        return (per_token_loss * mask).sum() / (per_token_loss.size(0) * max_completion_length) / accum
    if loss_type == "dapo":  # steps_per_generation = accum, one process
        normalizer = torch.tensor(num_items).clamp(min=1.0) * accum / accum
        return (per_token_loss * mask).sum() / normalizer
    raise ValueError(loss_type)


def random_case(seed: int, batch: int = 12, group: int = 4, width: int = 10, off_policy: bool = True):
    gen = torch.Generator().manual_seed(seed)
    logp = -torch.rand(batch, width, generator=gen) * 3  # [B, T]
    old = logp + (0.4 * torch.randn(batch, width, generator=gen) if off_policy else 0.0)  # [B, T]
    lengths = torch.randint(1, width + 1, (batch,), generator=gen)  # [B]
    mask = (torch.arange(width)[None] < lengths[:, None]).long()  # [B, T]
    rewards = torch.randint(0, 2, (batch // group, group), generator=gen).float()  # [N, G]
    rewards[0, :2] = torch.tensor([1.0, 0.0])
    return logp, old, group_advantages(rewards, eps=1e-4).reshape(-1), mask


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
@pytest.mark.parametrize("accum", [1, 2, 3])
@pytest.mark.parametrize("off_policy", [False, True])
def test_r1zero_loss_and_gradient_match_trl_formula(loss_type, accum, off_policy):
    eps_low, eps_high = (0.2, 0.28) if loss_type == "dapo" else (0.2, 0.2)
    logp, old, adv, mask = random_case(seed=accum, off_policy=off_policy)
    batch, width = logp.shape
    num_items = float(mask.sum())
    micro = batch // accum
    totals = {}
    for side in ("trl", "r1zero"):
        x = logp.clone().requires_grad_(True)
        loss = torch.zeros(())
        for k in range(accum):
            rows = slice(k * micro, (k + 1) * micro)
            if side == "trl":
                loss = loss + trl_loss(
                    x[rows],
                    old[rows],
                    adv[rows],
                    mask[rows],
                    loss_type,
                    eps_low,
                    eps_high,
                    width,
                    num_items,
                    accum,
                )
            else:
                loss = loss + grpo_loss(
                    x[rows], old[rows], adv[rows], mask[rows], eps_low=eps_low, eps_high=eps_high,
                    aggregation=loss_type, max_len=width, num_sequences=batch, num_tokens=num_items,
                )[0]  # fmt: skip
        loss.backward()
        totals[side] = (loss.detach(), x.grad)
    assert torch.allclose(totals["trl"][0], totals["r1zero"][0], atol=1e-6, rtol=0)
    assert torch.allclose(totals["trl"][1], totals["r1zero"][1], atol=1e-6, rtol=0)
    assert totals["trl"][1].abs().max() > 0  # a real gradient, also on-policy


@pytest.mark.parametrize(
    ("loss_type", "expected"), [("grpo", -0.15), ("dapo", -1.4 / 3), ("dr_grpo", -0.175)]
)
def test_trl_formula_golden_values(loss_type, expected):
    """Ratios 1.5 and 1.0 with A = +1, 0.5 with A = -1 (eps 0.2): token losses -1.2, -1.0 and +0.8."""
    logp = torch.log(torch.tensor([[1.5, 1.0], [0.5, 1.0]]))
    old, adv, mask = torch.zeros(2, 2), torch.tensor([1.0, -1.0]), torch.tensor([[1, 1], [1, 0]])
    ours, _ = grpo_loss(logp, old, adv, mask, aggregation=loss_type, max_len=4)
    theirs = trl_loss(logp, old, adv, mask, loss_type, 0.2, 0.2, 4, 3.0, 1)
    assert ours.item() == pytest.approx(expected, abs=1e-6)
    assert theirs.item() == pytest.approx(expected, abs=1e-6)


def trl_variant_loss(logp, old, adv, mask, variant, num_items, accum):
    """TRL 1.16 ``_compute_loss`` for GSPO (``loss_type="grpo"``, ``importance_sampling_level="sequence"``,
    epsilon 3e-4 / 4e-4), CISPO (``loss_type="cispo"``, ``epsilon_high`` 5.0) and SAPO (``loss_type="sapo"``,
    temperatures 1.0 / 1.05) on one micro-batch, transcribed line by line (beta 0, train mode)."""
    advantages = adv.unsqueeze(1)
    mask = mask.float()
    log_ratio = logp - old
    if variant == "gspo":
        log_importance_weights = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    else:
        log_importance_weights = log_ratio
    coef_1 = torch.exp(log_importance_weights)
    if variant == "cispo":
        clamped_ratios = torch.clamp(coef_1, max=5.0).detach()
        per_token_loss = -clamped_ratios * advantages * logp
        return (per_token_loss * mask).sum() / (torch.tensor(num_items).clamp(min=1.0) * accum / accum)
    if variant == "gspo":
        coef_2 = torch.clamp(coef_1, 1 - 3e-4, 1 + 4e-4)
        per_token_loss = -torch.min(coef_1 * advantages, coef_2 * advantages)
    else:  # sapo
        temperatures = torch.where(advantages > 0, 1.0, 1.05)
        per_token_loss = -torch.sigmoid(temperatures * (coef_1 - 1)) * 4 / temperatures * advantages
    return ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean() / accum


#: r1zero's side of each TRL variant: the loss and the keywords that reproduce TRL's settings.
R1ZERO_VARIANTS = {
    "gspo": (gspo_loss, {"eps_low": 3e-4, "eps_high": 4e-4, "aggregation": "grpo"}),
    "cispo": (cispo_loss, {"eps_low": None, "eps_high": 4.0, "aggregation": "dapo"}),
    "sapo": (sapo_loss, {"tau_pos": 1.0, "tau_neg": 1.05, "aggregation": "grpo"}),
}


@pytest.mark.parametrize("variant", ["gspo", "cispo", "sapo"])
@pytest.mark.parametrize("accum", [1, 2])
@pytest.mark.parametrize("noise", [0.0, 4e-4, 0.4])
def test_r1zero_variants_match_trl_formula(variant, accum, noise):
    """Noise 4e-4 puts GSPO's sequence ratios on both sides of its tiny clip range; 0.4 CISPO's above 5."""
    logp, old, adv, mask = random_case(seed=accum, off_policy=False)
    old = old + noise * torch.randn(old.shape, generator=torch.Generator().manual_seed(7)) * 4  # [B, T]
    batch = logp.shape[0]
    num_items, micro = float(mask.sum()), batch // accum
    fn, kwargs = R1ZERO_VARIANTS[variant]
    totals = {}
    for side in ("trl", "r1zero"):
        x = logp.clone().requires_grad_(True)
        loss = torch.zeros(())
        for k in range(accum):
            rows = slice(k * micro, (k + 1) * micro)
            if side == "trl":
                loss = loss + trl_variant_loss(
                    x[rows], old[rows], adv[rows], mask[rows], variant, num_items, accum
                )
            else:
                loss = (
                    loss
                    + fn(
                        x[rows],
                        old[rows],
                        adv[rows],
                        mask[rows],
                        num_sequences=batch,
                        num_tokens=num_items,
                        **kwargs,
                    )[0]
                )
        loss.backward()
        totals[side] = (loss.detach(), x.grad)
    assert torch.allclose(totals["trl"][0], totals["r1zero"][0], atol=1e-6, rtol=0)
    assert torch.allclose(totals["trl"][1], totals["r1zero"][1], atol=1e-6, rtol=0)
    assert totals["trl"][1].abs().max() > 0


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_benchmark_config_is_a_valid_r1zero_config(loss_type):
    """The r1zero side of bench/trl_step.py: the shared work expressed in r1zero's own config."""
    trl_step = _load("trl_step")
    config = trl_step.r1zero_config("some/model", loss_type, 6, "out")
    assert (config.rollout.prompts_per_step, config.rollout.group_size) == (8, 8)
    assert (config.rollout.max_new_tokens, config.rollout.temperature, config.rollout.stop) == (128, 1.0, ())
    assert (config.algo.loss_agg, config.algo.beta, config.algo.mu) == (loss_type, 0.0, 1)
    assert config.run.threads == 2 and config.model.dtype == "float32"
    assert config.rollout.decode_threads == RolloutConfig().decode_threads  # r1zero's default side
    assert trl_step.r1zero_config("m", loss_type, 6, "out", decode_threads=1).rollout.decode_threads == 1
    assert (
        config.cpu.onednn is None  # r1zero's default: by CPU vendor
        and trl_step.r1zero_config("m", loss_type, 6, "out", onednn=False).cpu.onednn is False
    )
    assert config.cpu.keep_freed_memory
    assert not trl_step.r1zero_config("m", loss_type, 6, "out", keep_freed_memory=False).cpu.keep_freed_memory
    assert trl_step.SIDES["r1zero-malloc"] == trl_step.Side(keep_freed_memory=False)


def test_benchmark_summary_ratios():
    trl_step = _load("trl_step")

    def run(side, step, rss):
        per_step = {"step_s": [step, step * 3], "generate_s": [1.0, 1.0]}
        return {"side": side, "loss_type": "dapo", "per_step": per_step, "peak_rss_mb": rss}

    summary = trl_step.summarise(
        [
            run("trl", 4.0, 1000.0),
            run("r1zero", 1.0, 500.0),
            run("r1zero", 2.0, 600.0),
            run("r1zero-1t", 1.0, 700.0),
            run("trl-2r", 2.0, 2000.0),
            run("r1zero-2r", 1.0, 1000.0),
        ]
    )
    # r1zero steps pooled: 1, 3, 2, 6 -> median 2.5; TRL: 4, 12 -> median 8
    assert summary["dapo"]["step_time_ratio_r1zero_over_trl"] == pytest.approx(2.5 / 8)
    assert summary["dapo"]["peak_rss_ratio_r1zero_over_trl"] == pytest.approx(0.6)
    # the decode-on-two-threads side: steps 1, 3 -> median 2
    assert summary["dapo"]["step_time_ratio_r1zero_over_trl_r1zero-1t"] == pytest.approx(2 / 8)
    assert summary["dapo"]["peak_rss_ratio_r1zero_over_trl_r1zero-1t"] == pytest.approx(0.7)
    # the data-parallel side against TRL's own (steps 1, 3 vs 2, 6)
    assert summary["dapo"]["step_time_ratio_r1zero_over_trl_r1zero-2r_vs_trl-2r"] == pytest.approx(0.5)
    assert summary["dapo"]["peak_rss_ratio_r1zero_over_trl_r1zero-2r_vs_trl-2r"] == pytest.approx(0.5)


def test_benchmark_merges_ranks():
    """A torchrun side: rank 0's wall times; CPU time per step and peak RSS summed over the ranks."""
    trl_step = _load("trl_step")
    nan = float("nan")
    rank0 = {"rank": 0, "per_step": {"step_s": [2.0, 3.0], "step_cpu_s": [1.5, nan]}, "peak_rss_mb": 600.0}
    rank1 = {"rank": 1, "per_step": {"step_s": [], "step_cpu_s": [1.0, nan]}, "peak_rss_mb": 500.0}
    merged = trl_step.merge_ranks([rank1, rank0])
    assert merged["per_step"]["step_s"] == [2.0, 3.0]
    assert merged["per_step"]["step_cpu_s"][0] == 2.5 and merged["median_step_cpu_s"] == 2.5
    assert merged["peak_rss_mb"] == 1100.0 and merged["ranks"] == 2
    assert trl_step.merge_ranks([rank0]) is rank0


def test_loss_agreement_setups_call_r1zero_losses_with_their_own_knobs():
    """bench/loss_agreement.py's r1zero side (TRL and verl setups) runs against the current loss API."""
    from r1zero.algo.dispatch import LOSS_OPTIONS, LOSSES

    bench = _load("loss_agreement")
    setups = {**bench.SETUPS, **{f"verl-{k}": v for k, v in bench.verl_setups().items()}}
    logp, old, adv, mask = random_case(seed=0)
    for name, setup in setups.items():
        variant = next(k for k, fn in LOSSES.items() if fn is setup.loss)
        assert set(setup.kwargs) - {"aggregation"} <= set(LOSS_OPTIONS[variant]), name
        loss, _ = setup.loss(logp, old, adv, mask, max_len=logp.shape[1], **setup.kwargs)
        assert torch.isfinite(loss), name
