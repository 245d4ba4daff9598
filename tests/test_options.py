"""r1zero.options: config files in each format, key errors with hints, and its >>> examples."""

import doctest
import json
import sys
from dataclasses import dataclass, field

import pytest

import r1zero.options
from r1zero.options import config_help, flatten_config, read_config_file, update_config


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    """Softmax temperature."""
    stop: tuple[str, ...] = ()
    """Stop strings."""


@dataclass(frozen=True)
class Demo:
    sampling: Sampling = field(default_factory=Sampling)
    n: int = 4
    """Samples."""


def test_doctests():
    result = doctest.testmod(r1zero.options, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("c.json", '{"sampling": {"temperature": 0.6, "stop": ["</answer>"]}, "n": 8}'),
        ("c.yaml", "sampling:\n  temperature: 0.6\n  stop: ['</answer>']\nn: 8\n"),
        ("c.yml", "sampling: {temperature: 6e-1, stop: ['</answer>']}\nn: 8\n"),
        ("c.toml", 'n = 8\n[sampling]\ntemperature = 0.6\nstop = ["</answer>"]\n'),
    ],
)
def test_each_format_reads_to_the_same_config(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    config = update_config(Demo(), flatten_config(read_config_file(path), Demo), prefix="")
    assert config == Demo(Sampling(0.6, ("</answer>",)), 8)


def test_a_run_directory_stands_for_its_config_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"n": 2}))
    assert read_config_file(tmp_path) == {"n": 2}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("c.json", "{not json", "is not valid JSON"),
        ("c.yaml", "a: [1,\n", "is not valid YAML"),
        ("c.toml", "a = \n", "is not valid TOML"),
        ("c.ini", "[a]", "unknown format '.ini'; valid: .json, .yaml, .yml, .toml"),
        ("c.json", "[1, 2]", "must hold a mapping"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        read_config_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"config file .* not found"):
        read_config_file(tmp_path / "nope.yaml")


def test_optional_parsers_missing_say_what_to_install(tmp_path, monkeypatch):
    (tmp_path / "c.toml").write_text("n = 1\n")
    (tmp_path / "c.yaml").write_text("n: 1\n")
    monkeypatch.setitem(sys.modules, "tomllib", None)  # as on Python 3.10 without tomli
    monkeypatch.setitem(sys.modules, "tomli", None)
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(ValueError, match=r"TOML config files need Python 3\.11\+ or tomli"):
        read_config_file(tmp_path / "c.toml")
    with pytest.raises(ValueError, match="YAML config files need PyYAML"):
        read_config_file(tmp_path / "c.yaml")


def test_unknown_keys_name_the_valid_ones_with_a_hint():
    with pytest.raises(
        ValueError, match=r"unknown config key sampling\.temprature \(did you mean sampling\.temperature"
    ):
        update_config(Demo(), flatten_config({"sampling": {"temprature": 1}}, Demo), prefix="")
    with pytest.raises(
        ValueError, match=r"unknown option --temperature \(did you mean --sampling\.temperature\?\)"
    ):
        update_config(Demo(), {"temperature": "1"})
    with pytest.raises(ValueError, match="config section 'sampling' must be a mapping"):
        flatten_config({"sampling": 0.6}, Demo)
    with pytest.raises(ValueError, match="n expects int; got 'x'"):
        update_config(Demo(), {"n": "x"})


def test_fixed_keys_cannot_be_set():
    with pytest.raises(ValueError, match=r"unknown option --n; valid: --sampling\.temperature"):
        update_config(Demo(), {"n": "2"}, fixed=("n",))


def test_help_lists_top_level_options_then_sections():
    text = config_help(Demo(n=3))
    assert text.index("--n 3") < text.index("--sampling.temperature 1.0")
    assert "Softmax temperature." in text and "Samples." in text
