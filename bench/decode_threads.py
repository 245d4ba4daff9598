"""The ``fast`` engine's decode loop on 1 vs 2 threads, on an idle machine and with one core busy.

Why ``rollout.decode_threads`` defaults to 1: on an idle 2-core machine a 2-thread decode is faster,
but each of its matmuls ends at an OpenMP barrier that waits for both threads, so one other busy
process makes it several times slower. This script measures both cases side by side in one process
(the two settings alternate, the same seed, identical tokens checked) and writes
``bench/results/decode_threads.json``.

The work is ``bench/trl_step.py``'s generation: its reference Qwen2 model (built there if missing), its
first 8 prompts, 8 samples each, at most 128 new tokens, T = 1. "Busy" runs a pure-Python spin loop in
a second process for the duration (it holds one core).

    python bench/decode_threads.py                 # 5 repetitions per setting and case
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import trl_step  # noqa: E402  (the same model, prompts and thread count)


def measure(engine: Any, prompts: list[str], reps: int, threads: tuple[int, ...]) -> dict[str, Any]:
    """Wall seconds of ``engine.generate`` per decode-thread setting, alternating; tokens compared."""
    from r1zero.rollout.base import SamplingParams

    sampling = SamplingParams(n=8, temperature=1.0, max_new_tokens=128, stop=(), seed=0)
    times: dict[int, list[float]] = {t: [] for t in threads}
    tokens: dict[int, list] = {}
    for _ in range(reps):
        for t in threads:
            engine.decode_threads = t
            start = time.perf_counter()
            groups = engine.generate(prompts, sampling)
            times[t].append(time.perf_counter() - start)
            tokens[t] = [[r.completion_ids for r in g] for g in groups]
    first = tokens[threads[0]]
    return {
        "median_generate_s": {str(t): statistics.median(v) for t, v in times.items()},
        "generate_s": {str(t): v for t, v in times.items()},
        "ratio_2_over_1": statistics.median(times[2]) / statistics.median(times[1]),
        "identical_tokens": all(tokens[t] == first for t in threads),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--model-dir", default=trl_step.DEFAULT_MODEL_DIR)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "decode_threads.json"))
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1zero.rollout.base import SamplingParams
    from r1zero.rollout.fast import FastEngine

    if not (Path(args.model_dir) / "config.json").exists():
        trl_step.build_reference_model(args.model_dir)
    trl_step.pin_threads()
    prompts = trl_step.step_prompts(args.model_dir, "dapo", 1)[0]
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32)
    engine = FastEngine(model, tokenizer)
    engine.generate(prompts[:1], SamplingParams(max_new_tokens=8))  # warm-up
    results: dict[str, Any] = {"load_before": os.getloadavg()}
    results["idle"] = measure(engine, prompts, args.reps, (1, 2))
    print("idle", results["idle"]["median_generate_s"], f"ratio {results['idle']['ratio_2_over_1']:.2f}")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        results["one_core_busy"] = measure(engine, prompts, max(2, args.reps // 2), (1, 2))
    finally:
        spinner.kill()
    busy = results["one_core_busy"]
    print("one core busy", busy["median_generate_s"], f"ratio {busy['ratio_2_over_1']:.2f}")
    results.update(
        load_after=os.getloadavg(),
        threads=trl_step.THREADS,
        environment=trl_step.environment(),
        command="python " + " ".join(sys.argv),
    )
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
