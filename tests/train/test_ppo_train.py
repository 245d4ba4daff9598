"""PPO with a critic through the real trainer: it learns a value head, warm-up freezes the policy, and a
run stopped at a checkpoint and resumed ends byte-identical to an uninterrupted one (policy and critic)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from r1zero.train import cli
from r1zero.train.config import TrainConfig, apply_overrides

HERE = Path(__file__).parent


def _args(model_dir: Path, out: Path, name: str, steps: int, *extra: str) -> list[str]:
    return [
        "--preset", "smoke",
        "--model.name", str(model_dir),
        "--model.device", "cpu",  # the exact-resume claim is the CPU's (CUDA kernels are not deterministic)
        "--data.template", "tiny-demo",
        "--data.verifier", str(HERE / "digit_verifier.py"),
        "--reward.workers", "0",
        "--rollout.max_new_tokens", "24",
        "--algo.estimator", "ppo",
        "--algo.dynamic_sampling", "false",
        "--algo.micro_batch_size", "3",
        "--critic.lr", "1e-2",
        "--run.steps", str(steps),
        "--run.save_every", "2",
        "--run.eval_every", "0",
        "--run.threads", "1",
        "--rollout.decode_threads", "1",  # one decode stream: its samples earn some non-zero rewards
        "--run.out_dir", str(out),
        "--run.name", name,
        *extra,
    ]  # fmt: skip


def _metrics(run: Path) -> list[dict]:
    drop = ("time/", "perf/")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(drop)} for r in rows]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def test_ppo_trains_policy_and_critic_and_resumes_exactly(tiny_model_dir, tmp_path):
    assert cli.main(_args(tiny_model_dir, tmp_path, "full", 4)) == 0
    rows = _metrics(tmp_path / "full")
    assert {"critic/value_loss", "critic/explained_variance", "critic/value_mean"} <= set(rows[-1])
    assert any(r["critic/value_loss"] > 0 for r in rows)
    final = tmp_path / "full" / "checkpoints" / "step_000004"
    head = _weights(final / "critic")["score.weight"]
    assert float(head.abs().sum()) > 0  # the zero-initialised value head has learned something
    start = _weights(tiny_model_dir)
    assert any(not torch.equal(start[k], v) for k, v in _weights(final).items() if k in start)

    # stop after step 2, then resume to step 4: identical logs, policy and critic bytes
    assert cli.main(_args(tiny_model_dir, tmp_path, "split", 2)) == 0
    assert cli.main(["--resume", str(tmp_path / "split"), "--run.steps", "4"]) == 0
    assert _metrics(tmp_path / "split") == rows
    other = tmp_path / "split" / "checkpoints" / "step_000004"
    for sub in ("", "critic"):
        a, b = _weights(final / sub), _weights(other / sub)
        assert all(torch.equal(a[k], b[k]) for k in a), sub


def test_critic_warmup_leaves_the_policy_untouched(tiny_model_dir, tmp_path):
    assert cli.main(_args(tiny_model_dir, tmp_path, "warm", 2, "--critic.warmup_steps", "2")) == 0
    checkpoint = tmp_path / "warm" / "checkpoints" / "step_000002"
    start = _weights(tiny_model_dir)
    after = _weights(checkpoint)
    assert all(torch.equal(start[k], after[k]) for k in start if k in after)
    assert float(_weights(checkpoint / "critic")["score.weight"].abs().sum()) > 0
    assert all(r["policy/grad_norm"] == 0.0 for r in _metrics(tmp_path / "warm")[1:])


def test_ppo_config_rules():
    cfg = apply_overrides(TrainConfig(), ["--algo.estimator", "ppo", "--rollout.group_size", "1"])
    assert cfg.rollout.group_size == 1  # PPO needs no group
    with pytest.raises(ValueError, match=r"rollout\.group_size must be >= 2"):
        apply_overrides(TrainConfig(), ["--rollout.group_size", "1"])
    with pytest.raises(ValueError, match=r"algo\.dynamic_sampling"):
        apply_overrides(TrainConfig(), ["--algo.estimator", "ppo", "--algo.dynamic_sampling", "true"])
    with pytest.raises(ValueError, match=r"critic\.gae_lambda must be in"):
        apply_overrides(TrainConfig(), ["--critic.gae_lambda", "1.5"])
