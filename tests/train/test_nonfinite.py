"""Numbers are finite: the config refuses NaN/inf and out-of-range values; at run time a non-finite
reward, loss or gradient norm skips the optimizer step, and a streak of them ends the run with the last
checkpoint intact. A verifier that fails on every completion of a step ends the run too."""

import json
import math
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from r1zero.rollout.base import Rollout
from r1zero.train import cli, recipe
from r1zero.train.checkpoint import checkpoint_dirs, load_trainer_state
from r1zero.train.config import AlgoConfig, TrainConfig, apply_overrides
from r1zero.train.learner import pack_rollouts, policy_update
from r1zero.train.rollouts import Group
from r1zero.train.session import TrainingError, open_session, save_session

HERE = Path(__file__).parent


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--reward.wrong", "nan"], "reward.wrong must be a finite number; got nan"),
        (["--reward.correct", "-inf"], "reward.correct must be a finite number; got -inf"),
        (["--reward.format_bonus", "inf"], "reward.format_bonus must be a finite number"),
        (["--reward.format_penalty", "nan"], "reward.format_penalty must be a finite number"),
        (["--reward.overlong_factor", "-1"], "reward.overlong_factor must be >= 0"),
        (["--optim.lr", "inf"], "optim.lr must be a finite number; got inf"),
        (["--optim.lr", "nan"], "optim.lr must be a finite number"),
        (["--optim.adam_beta1", "5"], r"optim.adam_beta1 must be in [0, 1); got 5.0"),
        (["--optim.adam_beta2", "1"], r"optim.adam_beta2 must be in [0, 1); got 1.0"),
        (["--optim.adam_beta1", "-0.1"], r"optim.adam_beta1 must be in [0, 1)"),
        (["--optim.grad_clip", "nan"], "optim.grad_clip must be a finite number"),
        (["--optim.max_nonfinite_steps", "0"], "optim.max_nonfinite_steps must be >= 1"),
        (["--rollout.temperature", "inf"], "rollout.temperature must be a finite number"),
        (["--rollout.temperature", "-1"], "rollout.temperature must be >= 0"),
        (["--run.eval_temperature", "nan"], "run.eval_temperature must be a finite number"),
        (["--rollout.gpu_memory_utilization", "0"], r"rollout.gpu_memory_utilization must be in (0, 1]"),
        (["--algo.beta", "nan"], "algo.beta must be a finite number"),
        (["--algo.eps_low", "1"], r"algo.eps_low must be in [0, 1)"),
        (["--algo.eps_high", "inf"], "algo.eps_high must be a finite number"),
        (["--critic.lr", "inf"], "critic.lr must be a finite number"),
        (["--reward.timeout", "inf"], "reward.timeout must be a finite number"),
        (["--reward.model_weight", "nan"], "reward.model_weight must be a finite number"),
    ],
)
def test_config_refuses_non_finite_and_out_of_range_numbers(argv, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        apply_overrides(TrainConfig(), argv)


def test_every_float_field_is_checked_for_finiteness():
    """The check walks every float field, so a field added later is covered without a list to update."""
    import dataclasses

    from r1zero.train.config import SECTIONS

    config = TrainConfig()
    for section in SECTIONS:
        for f in dataclasses.fields(getattr(config, section)):
            if type(getattr(getattr(config, section), f.name)) is float:
                with pytest.raises(ValueError, match=rf"^{section}\.{f.name} must be a finite number"):
                    apply_overrides(config, [f"--{section}.{f.name}", "nan"])


def test_a_non_finite_gradient_leaves_the_weights_unchanged():
    from tests.rollout.fixtures import tiny_qwen2

    model = tiny_qwen2(seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    rollouts = [
        Rollout((5, 6, 7), tuple(torch.randint(4, 30, (4,), generator=g).tolist()), "", (-1.0,) * 4, "stop")
        for _ in range(4)
    ]
    batch = pack_rollouts(rollouts, torch.tensor([1.0, float("nan"), -1.0, 0.0]), 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    stats = policy_update(model, optimizer, batch, AlgoConfig(mu=2), max_len=8, grad_clip=1.0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert stats["nonfinite"] == 2.0 and math.isnan(stats["grad_norm"])
    assert all(p.grad is None for p in model.parameters())
    assert not optimizer.state  # Adam's moments never saw the NaN gradient
    finite = pack_rollouts(rollouts, torch.tensor([1.0, -1.0, 1.0, -1.0]), 0)
    assert policy_update(model, optimizer, finite, AlgoConfig(), max_len=8)["nonfinite"] == 0.0


def _args(model_dir: Path, out: Path, name: str, *extra: str) -> list[str]:
    return [
        "--preset", "smoke",
        "--model.name", str(model_dir),
        "--model.device", "cpu",
        "--data.template", "tiny-demo",
        "--data.verifier", str(HERE / "digit_verifier.py"),
        "--reward.workers", "0",
        "--rollout.max_new_tokens", "16",
        "--run.eval_every", "0",
        "--run.threads", "1",
        "--run.out_dir", str(out),
        "--run.name", name,
        *extra,
    ]  # fmt: skip


def _poison_rewards_from(step_from: int, monkeypatch) -> None:
    """Make every reward NaN from ``step_from`` on (a reward function gone wrong mid-run)."""
    real = recipe.collect_groups

    def poisoned(config, engine, tokenizer, sampler, step, *rest):
        groups, timing = real(config, engine, tokenizer, sampler, step, *rest)
        if step >= step_from:
            nan = float("nan")
            groups = [
                Group(g.rollouts, [nan] * len(g.rewards), [{**r, "reward": nan} for r in g.records])
                for g in groups
            ]
        return groups, timing

    monkeypatch.setattr(recipe, "collect_groups", poisoned)


def test_non_finite_rewards_skip_steps_then_stop_the_run(tiny_model_dir, tmp_path, capsys, monkeypatch):
    _poison_rewards_from(2, monkeypatch)
    argv = _args(tiny_model_dir, tmp_path, "nan", "--run.steps", "10", "--run.save_every", "1")
    assert cli.main([*argv, "--run.keep_checkpoints", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("r1zero train: step 4: 3 steps in a row had a non-finite") and err.count("\n") == 1
    assert "Traceback" not in err
    run = tmp_path / "nan"
    checkpoints = checkpoint_dirs(run)
    assert [c.step for c in checkpoints] == [1, 2, 3]  # none at the step that ended the run
    weights = [load_file(c.path / "model.safetensors") for c in checkpoints]
    for tensors in weights:
        assert all(torch.isfinite(t).all() for t in tensors.values())
    assert all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])  # skipped: no change
    state = load_trainer_state(checkpoints[-1])
    moments = [t for s in state["optimizer"]["state"].values() for t in s.values() if t.is_floating_point()]
    assert moments and all(torch.isfinite(t).all() for t in moments)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert [m["train/nonfinite_steps"] for m in metrics] == [0, 1, 2, 3]


def test_a_streak_is_broken_by_a_finite_step(tiny_model_dir, tmp_path, monkeypatch):
    real = recipe.collect_groups

    def every_other(config, engine, tokenizer, sampler, step, *rest):
        groups, timing = real(config, engine, tokenizer, sampler, step, *rest)
        if step % 2 == 0:
            groups = [Group(g.rollouts, [float("inf")] * len(g.rewards), g.records) for g in groups]
        return groups, timing

    monkeypatch.setattr(recipe, "collect_groups", every_other)
    argv = _args(tiny_model_dir, tmp_path, "flaky", "--run.steps", "4", "--optim.max_nonfinite_steps", "1")
    assert cli.main(argv) == 2  # K = 1: the first non-finite step ends the run
    argv = _args(tiny_model_dir, tmp_path, "flaky2", "--run.steps", "5", "--optim.max_nonfinite_steps", "2")
    assert cli.main(argv) == 0  # never 2 in a row
    metrics = [json.loads(line) for line in (tmp_path / "flaky2" / "metrics.jsonl").read_text().splitlines()]
    assert [m["train/nonfinite_steps"] for m in metrics] == [0, 1, 1, 2, 2]


def test_a_verifier_that_fails_on_every_item_ends_the_run(tiny_model_dir, tmp_path, capsys):
    argv = _args(tiny_model_dir, tmp_path, "broken", "--run.steps", "3")
    argv += ["--data.verifier", str(HERE / "failing_verifier.py"), "--reward.workers", "1"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("r1zero train: step 1: the verifier") and err.count("\n") == 1
    assert "failing_verifier.py" in err and "failed on every completion" in err
    assert not checkpoint_dirs(tmp_path / "broken")


def test_weights_that_are_not_finite_are_never_saved(tiny_model_dir, tmp_path):
    session = open_session(cli.build_config(_args(tiny_model_dir, tmp_path, "s"))[0], resume=False)
    save_session(session, 1)
    with torch.no_grad():
        next(session.learner.parameters())[0] = float("nan")
    with pytest.raises(TrainingError, match="step 2: the policy has NaN or infinite weights; no checkpoint"):
        save_session(session, 2)
    assert [c.step for c in checkpoint_dirs(tmp_path / "s")] == [1]


def test_a_non_finite_critic_gradient_leaves_the_critic_unchanged(tiny_model_dir):
    from r1zero.algo.batch import PackedBatch
    from r1zero.train.config import CriticConfig
    from r1zero.train.critic import critic_update, load_critic

    critic = load_critic(str(tiny_model_dir), "float32", torch.device("cpu"))
    optimizer = torch.optim.AdamW(critic.parameters(), lr=1e-2)
    ids = torch.randint(4, 40, (2, 9))
    mask = torch.ones_like(ids)
    batch = PackedBatch(ids, mask, torch.ones(2, 5), torch.zeros(2, 5), torch.zeros(2, 5), None, 4)
    before = {k: v.clone() for k, v in critic.state_dict().items()}
    returns = torch.full((2, 5), float("nan"))
    critic_update(critic, optimizer, batch, torch.zeros(2, 5), returns, CriticConfig(), micro_batch_size=2)
    assert all(torch.equal(before[k], v) for k, v in critic.state_dict().items())
    assert not optimizer.state  # Adam's moments never saw the NaN
