"""Bad inputs a training run meets before its first step: each a one-line ValueError, nothing half-done."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from r1zero.data.problem import Problem
from r1zero.models.tiny import build_tokenizer
from r1zero.train import build
from r1zero.train.cli import build_config
from r1zero.train.config import TrainConfig, apply_overrides, config_to_dict
from r1zero.verifiers import get_verifier


def _model_with(positions: int) -> SimpleNamespace:
    return SimpleNamespace(config=SimpleNamespace(max_position_embeddings=positions))


def test_a_prompt_longer_than_the_context_is_refused_before_the_first_step():
    config = apply_overrides(
        TrainConfig(), ["--data.template", "tiny-demo", "--rollout.max_new_tokens", "32"]
    )
    problems = [
        Problem("short", "1+2", "3", "integer", {}),
        Problem("long", "1+" * 60 + "1", "61", "integer", {}),
    ]
    with pytest.raises(
        ValueError, match=r"problem 'long': its prompt \(\d+ tokens\) plus rollout.max_new_tokens"
    ):
        build.check_context(config, problems, build_tokenizer(), _model_with(128))
    build.check_context(config, problems[:1], build_tokenizer(), _model_with(128))  # fits: no error
    build.check_context(config, problems, build_tokenizer(), _model_with(512))


def test_a_verifier_file_that_raises_on_import_is_one_line(tmp_path):
    bad = tmp_path / "bad_verifier.py"
    bad.write_text("raise RuntimeError('broken on purpose')\n")
    with pytest.raises(
        ValueError, match=r"bad_verifier.py' raised RuntimeError on import: broken on purpose"
    ):
        get_verifier(str(bad))
    with pytest.raises(ValueError, match=r"importing 'no_such_module_r1z' failed \(ModuleNotFoundError"):
        get_verifier("no_such_module_r1z:verify")


def test_a_verifier_that_raises_in_process_scores_error_not_a_crash(tmp_path, caplog):
    raising = tmp_path / "raising_verifier.py"
    raising.write_text("def verify(response, gold, **meta):\n    raise KeyError('oops')\n")
    config = apply_overrides(TrainConfig(), ["--reward.workers", "0", "--data.verifier", str(raising)])
    problems = [Problem(f"p{i}", "1+1", "2", str(raising), {}) for i in range(3)]
    verdicts = build.verify(config, problems, ["<answer>2</answer>"] * 3)
    assert [v.reason for v in verdicts] == ["error"] * 3 and not any(v.correct for v in verdicts)
    assert "raised KeyError" in caplog.text


@pytest.mark.parametrize(("option", "value"), [("--run.seed", "5"), ("--data.source", "countdown")])
def test_resume_refuses_a_changed_seed_or_data(tmp_path, option, value):
    run = tmp_path / "runs" / "demo"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config_to_dict(TrainConfig())))
    with pytest.raises(ValueError, match=rf"^{option} .* differs from the run's"):
        build_config(["--resume", str(run), option, value])
    config, resume = build_config(["--resume", str(run), "--run.steps", "200"])  # extending is fine
    assert resume and config.run.steps == 200
