"""The ``cpu`` section reaches every model a session builds: a PPO critic runs the policy's fast path."""

from __future__ import annotations

import copy

import pytest
import torch

from r1zero.algo.batch import PackedBatch
from r1zero.cpu import attention, packed
from r1zero.train.cli import build_config
from r1zero.train.forward import completion_outputs
from r1zero.train.session import open_session
from tests.train.conftest import make_tiny_model


def _ppo_session(tmp_path, *extra: str):
    model_dir = make_tiny_model(tmp_path / "model")
    argv = ["--preset", "smoke", "--model.name", str(model_dir), "--model.device", "cpu"]
    argv += ["--algo.estimator", "ppo", "--algo.dynamic_sampling", "false", "--algo.beta", "0.01"]
    argv += ["--reward.workers", "0"]
    argv += ["--run.out_dir", str(tmp_path / "runs"), *extra]
    return open_session(build_config(argv)[0], resume=False)


def _speed_code(model: torch.nn.Module) -> tuple[str, list[str]]:
    """The attention a model runs and the fused module classes it has, read from the model itself."""
    fused = sorted({type(m).__name__ for m in model.modules() if type(m).__name__.startswith("Fused")})
    return model.config._attn_implementation, [name.removeprefix("Fused") for name in fused]


def _shared_prompt_batch(vocab: int) -> PackedBatch:
    """Two prompts x three rows each, completions of different lengths (as a GRPO step's)."""
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(4, vocab, (2, 6), generator=g).repeat_interleave(3, dim=0)  # [6, 6]
    completions = torch.randint(4, vocab, (6, 5), generator=g)  # [6, 5]
    mask = torch.ones(6, 11, dtype=torch.long)
    mask[0, 9:], mask[4, 7:] = 0, 0  # shorter completions, right-padded
    ids = torch.cat([prompts, completions], dim=1) * mask
    return PackedBatch(ids, mask, mask[:, 6:].float(), torch.zeros(6), torch.zeros(6, 5), None, 6)


def test_the_critic_runs_the_policys_fast_path(tmp_path):
    session = _ppo_session(tmp_path)
    policy_attention, policy_fused = _speed_code(session.learner)
    assert policy_attention == attention.NAME and policy_fused  # the fast path is on for the policy
    for model in (session.critic, session.reference):
        assert _speed_code(model)[0] == policy_attention
        assert set(_speed_code(model)[1]) >= {"LlamaRMSNorm", "LlamaMLP"} & set(policy_fused)


def test_the_critics_packed_values_equal_its_padded_values(tmp_path, monkeypatch):
    critic = _ppo_session(tmp_path).critic
    batch = _shared_prompt_batch(critic.config.vocab_size)
    padded = copy.deepcopy(critic)
    packed.disable(padded)
    calls = []
    real = packed.packed_attention
    monkeypatch.setattr(packed, "packed_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad():
        values = completion_outputs(critic, batch, "logits")  # [6, 5, 1]
        expected = completion_outputs(padded, batch, "logits")
    assert len(calls) == critic.config.num_hidden_layers  # one packed call per layer, none for `padded`
    mask = batch.loss_mask.bool()
    assert torch.allclose(values[mask], expected[mask], atol=1e-5)


@pytest.mark.parametrize("switch", ["--cpu.enabled", "--cpu.folded_attention"])
def test_one_switch_turns_the_fast_path_off_for_every_model(tmp_path, switch):
    session = _ppo_session(tmp_path, switch, "false")
    for model in (session.learner, session.reference, session.critic):
        assert _speed_code(model)[0] != attention.NAME
        if switch == "--cpu.enabled":
            assert _speed_code(model)[1] == []
