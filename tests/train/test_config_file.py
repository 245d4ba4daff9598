"""``r1zero train --config FILE``: a run's config.json and JSON/YAML/TOML files, preset < file < command line."""

import dataclasses
import json

import pytest

from r1zero.train import cli
from r1zero.train.cli import build_config
from r1zero.train.config import apply_overrides, config_to_dict
from r1zero.train.presets import get_preset


def _toml(data: dict) -> str:
    """A small TOML writer for config dicts (TOML has no null: None values are left out)."""

    def value(v):
        return json.dumps(v) if not isinstance(v, bool) else str(v).lower()

    top = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, dict) and v is not None]
    tables = [
        f"[{name}]\n" + "\n".join(f"{k} = {value(v)}" for k, v in section.items() if v is not None)
        for name, section in data.items()
        if isinstance(section, dict)
    ]
    return "\n".join(top) + "\n\n" + "\n\n".join(tables) + "\n"


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data)


WRITERS = {"json": lambda d: json.dumps(d, indent=2), "yaml": _yaml, "toml": _toml}


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_a_config_round_trips_through_a_file_in_each_format(tmp_path, fmt):
    config = apply_overrides(get_preset("dapo"), ["--optim.lr", "3e-6", "--rollout.stop", "</answer>,</s>"])
    path = tmp_path / f"config.{fmt}"
    path.write_text(WRITERS[fmt](config_to_dict(config)))
    assert build_config(["--config", str(path)]) == (config, False)


def test_a_runs_config_json_reproduces_the_run_under_a_new_name(tmp_path):
    config = apply_overrides(get_preset("cpu-demo"), ["--run.steps", "7", "--algo.beta", "0.02"])
    run = tmp_path / "runs" / "demo"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config_to_dict(config)))
    again, resume = build_config(["--config", str(run / "config.json"), "--run.name", "again"])
    assert not resume
    assert again == dataclasses.replace(config, run=dataclasses.replace(config.run, name="again"))
    assert build_config(["--config", str(run)])[0] == config  # the run directory stands for its config.json


def test_precedence_preset_then_file_then_command_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: dapo\nalgo:\n  beta: 0.5\n  mu: 2\nrollout:\n  temperature: 0.7\n")
    config, _ = build_config(["--config", str(path), "--algo.beta", "0.25"])
    dapo = get_preset("dapo")
    assert config.preset == "dapo" and config.algo.eps_high == dapo.algo.eps_high  # from the preset
    assert (config.algo.mu, config.rollout.temperature) == (2, 0.7)  # from the file
    assert config.algo.beta == 0.25  # from the command line
    other, _ = build_config(["--preset", "dr-grpo", "--config", str(path)])
    assert other.preset == "dr-grpo" and other.algo.loss_agg == get_preset("dr-grpo").algo.loss_agg
    assert other.algo.mu == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"rollout": {"temprature": 1}}',
            r"c\.json: unknown config key rollout\.temprature \(did you mean rollout\.temperature\?\)",
        ),
        ('{"preset": "dapoo"}', r"unknown preset 'dapoo' \(did you mean dapo\?\); valid: cpu-demo"),
        ('{"algo": {"mu": "two"}}', "algo.mu expects int; got 'two'"),
        ('{"algo": {"mu": 0}}', "algo.mu must be >= 1; got 0"),
    ],
)
def test_bad_config_files_are_errors_that_name_the_key(tmp_path, capsys, text, message):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        build_config(["--config", str(path)])
    assert cli.main(["--config", str(path)]) == 2
    assert "r1zero train: " in capsys.readouterr().err


def test_resume_takes_no_config_file(tmp_path):
    with pytest.raises(ValueError, match="do not pass --preset or --config with it"):
        build_config(["--resume", str(tmp_path), "--config", str(tmp_path / "c.json")])


def test_unknown_preset_on_the_command_line_has_a_hint(capsys):
    assert cli.main(["--preset", "dr_grpo"]) == 2
    assert "unknown preset 'dr_grpo' (did you mean dr-grpo?)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data.template", "r1zro"], "data.template: unknown template 'r1zro'"),
        (["--data.verifier", "integr"], "data.verifier: unknown verifier 'integr'"),
        (
            ["--run.reflection", "dr-grpo"],
            "run.reflection: unknown reflection preset 'dr-grpo' (did you mean dr_grpo?)",
        ),
    ],
)
def test_names_are_checked_before_anything_is_loaded(tmp_path, monkeypatch, capsys, argv, message):
    """A typo in a name the recipe looks up late fails at once, before the run directory or a model."""
    monkeypatch.chdir(tmp_path)
    assert cli.main([*argv, "--model.name", str(tmp_path / "no-such-model")]) == 2
    err = capsys.readouterr().err
    assert message in err and ("did you mean" in err)
    assert not (tmp_path / "runs").exists()


def test_help_shows_the_values_of_the_preset_and_config_file(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text('preset = "dapo"\n[algo]\nmu = 3\n')
    assert cli.main(["--help", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "--config FILE" in out and "--algo.mu 3" in out and "--algo.eps_high 0.28" in out
