"""The learner's rollout/learner mismatch correction: config, metrics, and what each mode does to the step."""

from dataclasses import replace

import pytest
import torch

from r1zero.algo.batch import PackedBatch
from r1zero.algo.rollout_correction import MODES
from r1zero.train.config import CORRECTION_MODES, AlgoConfig, TrainConfig, rollout_correction, validate
from r1zero.train.forward import sequence_logprobs
from r1zero.train.learner import policy_update

B, P, T = 6, 4, 6


def _model() -> torch.nn.Module:
    from transformers import LlamaForCausalLM

    from r1zero.models.tiny import tiny_config

    torch.manual_seed(0)
    cfg = tiny_config(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    return LlamaForCausalLM(cfg)


def _batch(rollout_logp: torch.Tensor | None = None) -> PackedBatch:
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, 100, (B, P + T), generator=g)  # [B, P+T]
    attention = torch.ones(B, P + T, dtype=torch.long)
    for i in range(B):
        attention[i, P + 3 + i % 3 :] = 0  # completions of 3 to 5 tokens
    batch = PackedBatch(
        input_ids=input_ids,
        attention_mask=attention,
        loss_mask=attention[:, P:].float(),
        advantages=torch.randn(B, generator=g),
        rollout_logp=torch.zeros(B, T),
        ref_logp=None,
        prompt_width=P,
    )
    if rollout_logp is None:  # the learner's own log-probs: no mismatch
        with torch.no_grad():
            rollout_logp = sequence_logprobs(_model(), batch)[0]
    return replace(batch, rollout_logp=rollout_logp * batch.loss_mask)


def _step(algo: AlgoConfig, batch: PackedBatch) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # keep the gradients, move nothing
    stats = policy_update(model, optimizer, batch, replace(algo, micro_batch_size=4), max_len=T)
    return stats, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.allclose(a[n], b[n], atol=1e-7, rtol=1e-6) for n in a)


def test_config_names_the_modes_of_the_maths_and_maps_is_cap_to_token_truncate():
    assert tuple(MODES) == CORRECTION_MODES
    assert rollout_correction(AlgoConfig()) == ("none", 3.0)
    assert rollout_correction(
        AlgoConfig(rollout_correction="sequence_mask", rollout_correction_threshold=2.0)
    ) == (
        "sequence_mask",
        2.0,
    )
    with pytest.raises(ValueError, match=r"algo\.is_cap is rollout_correction token_truncate"):
        validate(replace(TrainConfig(), algo=AlgoConfig(is_cap=2.0, rollout_correction="token_mask")))
    with pytest.raises(ValueError, match=r"algo\.rollout_correction_threshold must be > 0"):
        validate(replace(TrainConfig(), algo=AlgoConfig(rollout_correction_threshold=0.0)))
    with pytest.raises(ValueError, match=r"algo\.rollout_correction must be one of"):
        validate(replace(TrainConfig(), algo=AlgoConfig(rollout_correction="tis")))


def test_without_a_mismatch_every_mode_takes_the_uncorrected_step():
    batch = _batch()
    stats, plain = _step(AlgoConfig(), batch)
    assert stats["mismatch/logp_diff_max"] < 1e-5
    for mode in CORRECTION_MODES[1:]:
        corrected, grads = _step(AlgoConfig(rollout_correction=mode), batch)
        assert _same(grads, plain), mode
        assert (
            corrected["mismatch/masked_fraction"] == 0.0 and corrected["mismatch/truncated_fraction"] == 0.0
        )


def test_a_mismatch_is_measured_and_each_mode_changes_the_step():
    shift = torch.linspace(-3.0, 1.5, B * T).reshape(B, T)  # [B, T] ratios from e^-1.5 to e^3
    batch = _batch()
    batch = replace(batch, rollout_logp=(batch.rollout_logp - shift) * batch.loss_mask)
    stats, plain = _step(AlgoConfig(), batch)
    counted = batch.loss_mask.bool()
    assert stats["mismatch/logp_diff_max"] == pytest.approx(shift[counted].abs().max().item(), abs=1e-5)
    assert stats["mismatch/logp_diff_mean"] == pytest.approx(shift[counted].abs().mean().item(), abs=1e-5)
    grads = {mode: _step(AlgoConfig(rollout_correction=mode), batch)[1] for mode in CORRECTION_MODES[1:]}
    for mode, g in grads.items():
        assert not _same(g, plain), mode
    # the old --algo.is_cap is token_truncate at that threshold
    assert _same(
        _step(AlgoConfig(is_cap=2.0), batch)[1],
        _step(AlgoConfig(rollout_correction="token_truncate", rollout_correction_threshold=2.0), batch)[1],
    )
    masked = _step(AlgoConfig(rollout_correction="token_mask", rollout_correction_threshold=3.0), batch)[0]
    assert 0 < masked["mismatch/masked_fraction"] < 1
