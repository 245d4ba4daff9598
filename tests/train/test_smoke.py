"""CI smoke run: `r1zero train --preset smoke` end to end (real engine, verifier pool, template) in < 60 s.

Uses the shipped tiny-base checkpoint when it is there, else a random-init model of the same architecture.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from r1zero.models import TINY_BASE_DIR
from r1zero.train.config import config_from_dict
from r1zero.train.metrics import SAMPLE_KEYS

METRIC_KEYS = {
    "step", "time/elapsed", "train/reward", "train/reward/accuracy", "train/accuracy", "train/format_rate",
    "length/mean", "length/p10", "length/p50", "length/p90", "length/max", "length/clip_ratio",
    "reflection/per_response", "reflection/per_1k_tokens", "policy/entropy", "policy/kl", "policy/clip_low",
    "policy/clip_high", "policy/grad_norm", "policy/lr", "loss/policy", "loss/total", "groups/zero_variance",
    "time/generate", "time/verify", "time/update", "time/step", "perf/tokens_per_s",
    "monitor/format_saturation", "monitor/repeated_tags", "monitor/length_cap",
}  # fmt: skip
HELDOUT_KEYS = {
    "heldout/accuracy",
    "heldout/format_rate",
    "heldout/length_mean",
    "heldout/reflection_per_response",
    "heldout/checks/rate",  # list_sum: the exact self-check metrics (r1zero.eval.checks)
}


@pytest.mark.slow
def test_smoke_run_writes_the_run_format(tiny_model_dir, tmp_path):
    model = "tiny-base" if (TINY_BASE_DIR / "config.json").is_file() else str(tiny_model_dir)
    cmd = [sys.executable, "-m", "r1zero", "train", "--preset", "smoke", "--model.name", model]
    cmd += ["--data.template", "tiny-demo", "--run.out_dir", str(tmp_path), "--run.threads", "1"]
    start = time.perf_counter()
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert elapsed < 60, f"smoke run took {elapsed:.1f} s"
    assert "heldout/accuracy" in done.stdout and "wall time (s)" in done.stdout  # the step-0 vs final table

    run = tmp_path / "smoke"
    config = config_from_dict(json.loads((run / "config.json").read_text()))
    assert config.preset == "smoke" and config.model.name == model
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [0, 1, 2, 3]
    assert set(lines[0]) >= HELDOUT_KEYS
    for line in lines[1:]:
        assert set(line) >= METRIC_KEYS, METRIC_KEYS - set(line)
    assert set(lines[2]) >= HELDOUT_KEYS and set(lines[3]) >= HELDOUT_KEYS  # eval_every 2, and the final step
    assert not HELDOUT_KEYS & set(lines[1])
    samples = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    assert samples and all(set(s) == {"step", *SAMPLE_KEYS} for s in samples)
    evals = [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [0, 2, 3]
    assert {
        "benchmark",
        "n",
        "pass@1",
        "pass@1_ci",
        "format_rate",
        "length/mean",
        "reflection/per_response",
    } <= set(evals[0])

    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = run / "checkpoints" / "step_000003"
    AutoModelForCausalLM.from_pretrained(final)
    AutoTokenizer.from_pretrained(final)
    assert (run / "plots" / "overview.png").is_file()  # the run ends by drawing its curves
