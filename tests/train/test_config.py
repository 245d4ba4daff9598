"""Config: presets, overrides, validation errors naming the valid values, round trip, field docs."""

import dataclasses
import json

import pytest

from r1zero.train import cli
from r1zero.train.config import (
    SECTIONS,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    field_docs,
)
from r1zero.train.presets import PRESETS, get_preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_valid_and_round_trips(name):
    config = get_preset(name)
    assert config.preset == name
    assert config_from_dict(json.loads(json.dumps(config_to_dict(config)))) == config


def test_published_settings_in_presets():
    dr, dapo = get_preset("dr-grpo"), get_preset("dapo")
    assert (dr.algo.advantage, dr.algo.loss_agg, dr.algo.beta, dr.rollout.group_size) == (
        "none",
        "dr_grpo",
        0.0,
        8,
    )
    assert (dapo.algo.eps_high, dapo.algo.loss_agg, dapo.algo.dynamic_sampling, dapo.algo.beta) == (
        0.28,
        "dapo",
        True,
        0.0,
    )
    assert dapo.reward.overlong_buffer > 0
    assert get_preset("simplerl-zoo").algo.beta == 1e-4


def test_overrides_types_and_forms():
    c = apply_overrides(
        TrainConfig(),
        [
            "--optim.lr",
            "3e-5",
            "--rollout.backend=hf",
            "--algo.dynamic_sampling",
            "--rollout.stop",
            "</answer>,</s>",
            "--run.steps",
            "7",
        ],
    )
    assert (c.optim.lr, c.rollout.backend, c.algo.dynamic_sampling, c.rollout.stop, c.run.steps) == (
        3e-5,
        "hf",
        True,
        ("</answer>", "</s>"),
        7,
    )
    assert apply_overrides(c, ["--algo.dynamic-sampling", "false"]).algo.dynamic_sampling is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--algo.lr", "1e-4"], "did you mean --optim.lr|optim.lr"),
        (["--nope.x", "1"], "valid: --model.name"),
        (
            ["--rollout.backend", "tgi"],
            "rollout.backend must be one of hf, fast, vllm, vllm-server; got 'tgi'",
        ),
        (["--algo.loss_agg", "sum"], "grpo, dapo, dr_grpo, bnpo"),
        (["--algo.mu", "0"], "algo.mu must be >= 1; got 0"),
        (["--rollout.decode_threads", "0"], "rollout.decode_threads must be >= 1; got 0"),
        (["--run.steps", "ten"], "run.steps expects int; got 'ten'"),
        (["--algo.dynamic_sampling", "maybe"], "expects a boolean"),
        (["--rollout.top_p", "1.5"], "rollout.top_p must be in"),
        (["--rollout.group_size", "1"], "group_size must be >= 2"),
        (["stray"], "expected an option"),
    ],
)
def test_invalid_overrides_name_the_problem(argv, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        apply_overrides(TrainConfig(), argv)


def test_decode_threads_reach_the_fast_engine():
    from r1zero.train.build import make_engine
    from tests.rollout.fixtures import char_tokenizer, tiny_qwen2

    config = apply_overrides(TrainConfig(), ["--rollout.backend", "fast", "--rollout.decode_threads", "2"])
    assert make_engine(config, tiny_qwen2(seed=0), char_tokenizer()).decode_threads == 2


def test_unknown_key_in_saved_config_is_an_error():
    data = config_to_dict(TrainConfig())
    data["algo"]["lr"] = 1.0
    with pytest.raises(
        ValueError,
        match=r"unknown config key algo\.lr \(did you mean critic\.lr, optim\.lr\?\); valid: algo\.estimator",
    ):
        config_from_dict(data)
    with pytest.raises(ValueError, match=r"unknown config key extra; valid: preset, model\.name"):
        config_from_dict({**config_to_dict(TrainConfig()), "extra": {}})


def test_every_field_has_a_docstring():
    for section in SECTIONS:
        cls = type(getattr(TrainConfig(), section))
        docs = field_docs(cls)
        missing = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
        assert not missing, f"{section}: fields without a docstring: {missing}"


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().algo.beta = 1.0  # type: ignore[misc]


def test_cli_help_and_errors(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--algo.eps_high" in out and "clip-higher" in out
    assert cli.main(["--list-presets"]) == 0
    assert "dr-grpo" in capsys.readouterr().out
    assert cli.main(["--preset", "nope"]) == 2
    assert "unknown preset 'nope'; valid: cpu-demo" in capsys.readouterr().err


def test_resume_of_a_non_run_directory_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["--resume", str(tmp_path)]) == 2
    assert "is not a run directory (no config.json)" in capsys.readouterr().err
    (tmp_path / "config.json").write_text("{not json")
    assert cli.main(["--resume", str(tmp_path)]) == 2
    assert "is not a valid r1zero config" in capsys.readouterr().err


def test_cpu_demo_prompt_ends_at_assistant_like_the_model_card():
    """The demo leaves the tags to the model: its prompt must be exactly tiny-base's DEMO_TEMPLATE."""
    from r1zero.data.problem import Problem
    from r1zero.models.tiny import render_demo_prompt
    from r1zero.train.build import render_prompts

    problem = Problem("p0", "What is 3+5+2+7+1?", "18", "integer")
    (prompt,) = render_prompts(get_preset("cpu-demo"), [problem], tokenizer=None)
    assert prompt == render_demo_prompt(problem.question)
    assert prompt.endswith("Assistant:")
