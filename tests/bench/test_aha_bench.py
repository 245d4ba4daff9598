"""bench/aha.py: its runs are valid configs, and its summary reads a real (smoke) run's files."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from r1zero.train.cli import build_config
from r1zero.train.cli import main as train_main

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_aha", ROOT / "bench" / "aha.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_aha"] = module
    spec.loader.exec_module(module)
    return module


bench = _bench()


@pytest.mark.parametrize(
    ("name", "verifier"), [("aha", "rule"), ("random_reward", "random"), ("format_only", "format_only")]
)
def test_each_run_is_the_preset_on_the_base_with_only_the_reward_changed(name, verifier, tmp_path):
    argv = bench.train_argv(name, 2, tmp_path / "base", "cpu-demo", tmp_path, steps=7)
    config, _ = build_config(argv[argv.index("train") + 1 :])
    assert config.model.name == str(tmp_path / "base") and config.run.seed == 2 and config.run.steps == 7
    assert config.reward.verifier == verifier and config.run.name == f"{name}-s2"


@pytest.mark.parametrize(
    ("per_step", "expected"),
    [
        ({1: {"c/n": 2.0, "c/fixed": 1.0, "c/broke": 0.0}, 2: {"c/n": 2.0, "c/fixed": 0.0, "c/broke": 0.5}},
         {"n": 4, "fixed": 0.5, "broke": 0.25}),
        ({0: {"c/n": 5.0, "c/fixed": 1.0, "c/broke": 0.0}, 3: {"c/n": 0.0}}, {"n": 0}),  # step 0 is the base
    ],
)  # fmt: skip
def test_pooled_weights_each_step_by_its_checking_responses(per_step, expected):
    assert bench.pooled(per_step, "c/") == expected


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("aha")
    argv = ["--preset", "smoke", "--run.name", "aha-s0", "--run.out_dir", str(out), "--run.threads", "1"]
    assert train_main(argv) == 0
    return out / "aha-s0"


def test_a_run_is_finished_when_its_metrics_reach_its_steps(smoke_run, tmp_path):
    assert bench.finished(smoke_run)
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "config.json").write_text((smoke_run / "config.json").read_text())
    lines = (smoke_run / "metrics.jsonl").read_text().splitlines()
    (cut / "metrics.jsonl").write_text("\n".join(lines[:-1]) + "\n")  # stopped one step short
    assert not bench.finished(cut) and not bench.finished(tmp_path / "missing")


def test_summary_of_a_real_run(smoke_run, tmp_path):
    summary = bench.summarise_run(smoke_run)
    heldout = [json.loads(line) for line in (smoke_run / "metrics.jsonl").read_text().splitlines()]
    accuracies = [m["heldout/accuracy"] for m in heldout if "heldout/accuracy" in m]
    assert summary["accuracy"] == {"step0": accuracies[0], "final": accuracies[-1]}
    assert summary["curves"]["steps"] == [0, 2, 3]  # smoke: 3 steps, held out every 2 and at the end
    assert summary["check_rate"]["step0"] is not None and 0 <= summary["check_rate"]["step0"] <= 1
    assert summary["length"]["step0_length"] == summary["curves"]["length"][0]
    assert summary["checks_train"]["n"] >= 0 and summary["train_wall_s"] > 0
    bench.plot({"aha-s0": summary}, tmp_path / "aha.png")
    assert (tmp_path / "aha.png").read_bytes()[:4] == b"\x89PNG"
