"""A learned reward model through the real trainer: the reward is rule_weight x verifier + model_weight x
the reward model's score of (prompt, completion), logged beside the verifier's accuracy."""

import json
from pathlib import Path

import pytest

from r1zero.reward_model.score import LearnedReward
from r1zero.reward_model.train import RewardModelConfig, _load_base, save_reward_model
from r1zero.train import cli

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def reward_dir(tiny_model_dir, tmp_path_factory) -> Path:
    model, tokenizer = _load_base(str(tiny_model_dir))  # untrained head: arbitrary but fixed scores
    out = tmp_path_factory.mktemp("rm") / "rm"
    save_reward_model(model.eval(), tokenizer, out, RewardModelConfig(max_length=128), {"note": "untrained"})
    return out


def _run(model_dir: Path, out: Path, name: str, reward_dir: Path, *extra: str) -> Path:
    # one decode stream (--rollout.decode_threads 1): its samples hold both right and wrong answers
    argv = [
        "--preset", "smoke", "--model.name", str(model_dir), "--data.template", "tiny-demo",
        "--data.verifier", str(HERE / "digit_verifier.py"), "--reward.workers", "0",
        "--reward.model", str(reward_dir), "--rollout.max_new_tokens", "16", "--run.steps", "2",
        "--run.eval_every", "1", "--run.threads", "1", "--run.out_dir", str(out), "--run.name", name,
        "--run.samples_per_step", "8", "--rollout.decode_threads", "1", *extra,
    ]  # fmt: skip
    assert cli.main(argv) == 0
    return out / name


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_learned_reward_alone_and_added_to_the_rule_reward(tiny_model_dir, reward_dir, tmp_path):
    scorer = LearnedReward.from_pretrained(reward_dir)

    alone = _run(tiny_model_dir, tmp_path, "alone", reward_dir, "--reward.rule_weight", "0")
    metrics = _lines(alone / "metrics.jsonl")
    assert all("heldout/learned_reward" in m for m in metrics)  # eval_every 1: every line has an eval
    for row in metrics[1:]:
        assert row["train/reward"] == pytest.approx(row["train/reward/learned"], abs=1e-6)
        assert "train/accuracy" in row and "monitor/reward_divergence" in row
    samples = _lines(alone / "samples.jsonl")
    scores = scorer.score([s["prompt"] for s in samples], [s["completion"] for s in samples])
    assert [s["reward"] for s in samples] == pytest.approx(scores, abs=1e-4)

    extra = ("--reward.model_weight", "0.5", "--reward.require_format", "false")  # rule reward = correct
    mixed = _run(tiny_model_dir, tmp_path, "mixed", reward_dir, *extra)
    samples = _lines(mixed / "samples.jsonl")
    scores = scorer.score([s["prompt"] for s in samples], [s["completion"] for s in samples])
    expected = [float(s["correct"]) + 0.5 * x for s, x in zip(samples, scores, strict=True)]
    assert [s["reward"] for s in samples] == pytest.approx(expected, abs=1e-4)
    assert any(s["correct"] for s in samples) and any(not s["correct"] for s in samples)
