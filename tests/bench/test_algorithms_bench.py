"""bench/algorithms.py: every variant's settings are a valid config, and the summary reads run files."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from r1zero.train.cli import build_config

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_algorithms", ROOT / "bench" / "algorithms.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_algorithms"] = module
    spec.loader.exec_module(module)
    return module


bench = _bench()


@pytest.mark.parametrize("variant", sorted(bench.VARIANTS))
def test_every_variant_is_a_valid_config_that_says_what_it_is(variant, tmp_path):
    argv = bench.train_argv(variant, tmp_path, steps=60, seed=1, eval_every=10)
    config, resume = build_config(argv[argv.index("train") + 1 :])
    assert not resume and config.run.steps == 60 and config.run.seed == 1
    assert config.rollout.prompts_per_step == 16 and config.rollout.group_size == 8  # the same budget
    expected = {
        "grpo": ("loss", "grpo"), "gspo": ("loss", "gspo"), "cispo": ("loss", "cispo"), "sapo": ("loss", "sapo"),
        "grpo_clip_cov": ("loss", "clip_cov"), "rloo": ("advantage", "rloo"),
        "reinforce_pp": ("advantage", "reinforce_pp"), "dr_grpo": ("advantage", "none"),
        "bnpo": ("loss_agg", "bnpo"), "ppo": ("estimator", "ppo"), "grpo_entropy": ("entropy_coef", 0.001),
    }  # fmt: skip
    if variant in expected:
        key, value = expected[variant]
        assert getattr(config.algo, key) == value
    if variant in ("random_reward", "format_only"):
        assert config.reward.verifier == {"random_reward": "random", "format_only": "format_only"}[variant]
    else:
        assert config.reward.verifier == "rule"
    assert config.algo.dynamic_sampling == (variant == "dapo")


def _fake_run(run_dir: Path, accuracies: list[float], seconds: float) -> None:
    run_dir.mkdir(parents=True)
    metrics = [{"step": 0, "time/elapsed": 0.0}] + [
        {
            "step": s,
            "policy/entropy": 0.5,
            "train/accuracy": 0.8,
            "time/step": seconds,
            "time/elapsed": s * seconds,
        }
        for s in range(1, 21)
    ]
    evals = [
        {"step": s, "benchmark": "heldout", "pass@1": a, "pass@1_ci": [a - 0.1, a + 0.1], "length/mean": 40.0 + s,
         "reflection/per_response": 0.01}
        for s, a in zip(range(0, 21, 10), accuracies, strict=True)
    ]  # fmt: skip
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (run_dir / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))


def test_summary_table_and_docs_markers(tmp_path):
    out = tmp_path / "runs"
    _fake_run(out / "grpo-s0", [0.3, 0.8, 0.90], 2.0)
    _fake_run(out / "grpo-s1", [0.3, 0.85, 0.92], 2.0)
    _fake_run(out / "rloo-s0", [0.3, 0.6, 0.70], 3.0)
    _fake_run(out / "rloo-s1", [0.3, 0.6, 0.75], 3.0)
    doc = tmp_path / "algorithms.md"
    doc.write_text(f"# A\n\nbefore\n\n{bench.MARKERS[0]}\nold table\n{bench.MARKERS[1]}\n\nafter\n")
    code = bench.main([
        "--out", str(out), "--steps", "20", "--seeds", "0,1", "--variants", "grpo,rloo", "--skip-train",
        "--json", str(tmp_path / "algorithms.json"), "--no-docs",
    ])  # fmt: skip
    assert code == 0
    result = json.loads((tmp_path / "algorithms.json").read_text())
    grpo, rloo = result["variants"]["grpo"], result["variants"]["rloo"]
    assert grpo["final_accuracy"] == pytest.approx(0.91) and grpo["steps_to_0.9"] == [20, 20]
    assert rloo["steps_to_0.9"] == [None, None] and rloo["s_per_step"] == 3.0
    text = bench.table(result["variants"], 20)
    assert "| rloo | 2 | 0.725 (0.700, 0.750) |" in text and "separated" in text
    assert bench.write_table(text, doc)
    written = doc.read_text()
    assert "old table" not in written and written.startswith("# A\n\nbefore") and written.endswith("after\n")
    assert "| grpo | 2 | 0.910 (0.900, 0.920) |" in written
