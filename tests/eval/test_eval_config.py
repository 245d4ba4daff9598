"""``r1zero eval`` options: train's names and defaults, config files, names checked first, --force."""

import json
import logging

import pytest

from r1zero.eval import harness
from r1zero.eval.cli import build_config, main
from r1zero.eval.config import EvalConfig, eval_config
from r1zero.options import config_keys
from r1zero.train.config import TrainConfig

from .fixtures import write_random_model, write_synthetic_run

#: keys both commands take (same name, same type); their defaults agree except where noted
SHARED = {
    "model.name",
    "model.dtype",
    "model.device",
    "data.template",
    "data.think_prefix",
    "rollout.backend",
    "rollout.temperature",
    "rollout.top_p",
    "rollout.top_k",
    "rollout.max_new_tokens",
    "rollout.stop",
    "rollout.decode_threads",
    "rollout.gpu_memory_utilization",
    "rollout.tensor_parallel",
    "reward.workers",
    "reward.timeout",
    "run.out_dir",
    "run.seed",
    "run.reflection",
    "run.threads",
    "run.progress",
}
#: eval's own meaning: the model is always given; "auto" picks fast on CPU; results go to one directory;
#: vLLM may take most of the GPU (no learner beside it)
DEFAULTS_DIFFER = {"model.name", "rollout.backend", "run.out_dir", "rollout.gpu_memory_utilization"}


def _get(config, key):
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def _type(config, key):
    import typing

    section, name = key.split(".")
    return typing.get_type_hints(type(getattr(config, section)))[name]


def test_eval_takes_trains_option_names_with_the_same_types_and_defaults():
    train, evaluation = TrainConfig(), EvalConfig()
    shared = set(config_keys(TrainConfig)) & set(config_keys(EvalConfig))
    assert shared == SHARED
    for key in SHARED:
        assert _type(train, key) == _type(evaluation, key), key
        if key not in DEFAULTS_DIFFER:
            assert _get(train, key) == _get(evaluation, key), key


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_random_model(tmp_path_factory.mktemp("model") / "m")


QUIET = ["--reward.workers", "0", "--run.progress", "false", "--run.threads", "1"]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "e.json",
            '{"benchmarks": ["list_sum"], "n": 2, "limit": 2, "rollout": {"max_new_tokens": 6, "temperature": 0.5}}',
        ),
        (
            "e.yaml",
            "benchmarks: [list_sum]\nn: 2\nlimit: 2\nrollout:\n  max_new_tokens: 6\n  temperature: 0.5\n",
        ),
        (
            "e.toml",
            'benchmarks = ["list_sum"]\nn = 2\nlimit = 2\n[rollout]\nmax_new_tokens = 6\ntemperature = 0.5\n',
        ),
    ],
)
def test_eval_with_a_config_file_and_overrides(model_dir, tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    out = tmp_path / "out"
    argv = [
        "--config",
        str(path),
        "--model.name",
        str(model_dir),
        "--n",
        "3",
        "--run.out_dir",
        str(out),
        *QUIET,
    ]
    assert main(argv) == 0
    result = json.loads((out / "list_sum.json").read_text())
    assert result["n"] == 3 and result["problems"] == 2  # the command line wins over the file
    assert result["settings"]["max_new_tokens"] == 6 and result["settings"]["temperature"] == 0.5


def test_unknown_key_in_an_eval_config_file(tmp_path, capsys):
    path = tmp_path / "e.json"
    path.write_text(json.dumps({"benchmarks": ["list_sum"], "rollout": {"temprature": 1}}))
    assert main(["--config", str(path), "--model.name", "tiny-base"]) == 2
    err = capsys.readouterr().err
    assert "e.json: unknown config key rollout.temprature (did you mean rollout.temperature?)" in err


def test_suite_files_with_the_earlier_flat_keys_still_read(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"benchmarks": ["list_sum"], "temperature": 0.6, "template": "tiny-demo"}))
    cfg = eval_config([], str(path))
    assert (cfg.rollout.temperature, cfg.data.template, cfg.benchmarks) == (0.6, "tiny-demo", ("list_sum",))


def test_earlier_flags_are_deprecated_aliases(caplog):
    argv = [
        "--model",
        "m",
        "--temperature",
        "0.6",
        "--max-new-tokens",
        "9",
        "--no-think-prefix",
        "--out",
        "o",
    ]
    with caplog.at_level(logging.WARNING):
        cfg = eval_config([*argv, "--benchmarks", "list_sum"])
    assert (cfg.model.name, cfg.rollout.temperature, cfg.rollout.max_new_tokens) == ("m", 0.6, 9)
    assert cfg.data.think_prefix is False and cfg.run.out_dir == "o"
    assert "--temperature is deprecated; use --rollout.temperature" in caplog.text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--benchmarks", "list_sum,math50"], "unknown benchmark 'math50' (did you mean 'math500'?)"),
        (["--benchmarks", "list_sum", "--data.template", "r1zro"], "data.template: unknown template 'r1zro'"),
        (["--benchmarks", "list_sum", "--run.reflection", "simplerl"], "did you mean simplerl_zoo?"),
        (["--benchmarks", "list_sum", "--rollout.backend", "tgi"], "rollout.backend must be one of auto, hf"),
        (["--benchmarks", "list_sum", "--n", "0"], "n must be >= 1; got 0"),
        (["--benchmark", "list_sum"], "unknown option --benchmark (did you mean --benchmarks?)"),
        ([], "no benchmarks: give --benchmarks"),
    ],
)
def test_every_name_is_checked_before_a_model_is_loaded(tmp_path, monkeypatch, capsys, argv, message):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the names were checked")

    monkeypatch.setattr(harness, "_load_model", no_model)
    out = tmp_path / "out"
    assert main(["--model.name", "tiny-base", "--run.out_dir", str(out), *QUIET, *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_model_or_a_run_not_both(tmp_path, capsys):
    assert main(["--benchmarks", "list_sum"]) == 2
    assert "give --model.name MODEL" in capsys.readouterr().err
    write_synthetic_run(tmp_path / "run", steps=2)
    assert main(["--benchmarks", "list_sum", "--model.name", "m", "--run", str(tmp_path / "run")]) == 2
    assert "not both" in capsys.readouterr().err


def test_minerva_math_is_a_name_for_minerva():
    assert build_config(["--model.name", "m", "--benchmarks", "minerva_math"]).benchmarks == ("minerva",)


def test_auto_backend_is_fast_on_cpu_and_hf_for_models_fast_cannot_run():
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.rollout.fixtures import char_tokenizer, tiny_llama

    cfg = EvalConfig()
    assert harness.make_engine(cfg, tiny_llama(), char_tokenizer()).name == "fast"
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=64))
    assert harness.make_engine(cfg, gpt2, char_tokenizer()).name == "hf"


def _rows(run):
    return [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines()]


def test_already_evaluated_means_the_same_settings_and_force_reruns(model_dir, tmp_path, capsys):
    run = write_synthetic_run(tmp_path / "run", steps=2)
    (run / "eval.jsonl").unlink()
    config = json.loads((run / "config.json").read_text())
    config["model"]["name"] = str(model_dir)
    (run / "config.json").write_text(json.dumps(config))
    argv = [
        "--run",
        str(run),
        "--benchmarks",
        "list_sum",
        "--n",
        "2",
        "--rollout.max_new_tokens",
        "5",
        *QUIET,
    ]
    assert main([*argv, "--limit", "2"]) == 0
    assert [(r["step"], r["problems"]) for r in _rows(run)] == [(0, 2)]
    capsys.readouterr()
    assert main([*argv, "--limit", "2"]) == 0  # the same settings: nothing to do
    assert "already evaluated" in capsys.readouterr().out and len(_rows(run)) == 1
    assert main([*argv, "--limit", "3"]) == 0  # another limit is another evaluation
    assert [(r["step"], r["problems"]) for r in _rows(run)] == [(0, 2), (0, 3)]
    assert main([*argv, "--limit", "2", "--force"]) == 0  # re-run, replacing its earlier line
    rows = _rows(run)
    assert [(r["step"], r["problems"]) for r in rows] == [(0, 3), (0, 2)]
    assert rows[1]["settings"]["limit"] == 2 and rows[1]["engine"] == "fast"


def test_library_progress_bars_are_off_and_r1zeros_own_stays(model_dir, monkeypatch, capsys):
    from transformers.utils import logging as hf_logging

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    hf_logging.enable_progress_bar()
    argv = ["--model.name", str(model_dir), "--benchmarks", "list_sum", "--limit", "1", "--n", "1"]
    assert main([*argv, "--rollout.max_new_tokens", "4", "--reward.workers", "0", "--run.threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "Loading weights" not in err and "eval list_sum" in err
