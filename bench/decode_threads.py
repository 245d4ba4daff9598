"""The ``fast`` engine's decode on 1 vs 2 threads, on an idle machine and with one core busy.

Three settings of the same generation, alternating in one process: one thread (``decode_threads=1``);
two threads splitting the prompts (``decode_threads=2``, ``r1zero train``'s default: each thread decodes
its share on one torch thread, with its own RNG stream); and, for comparison, one decode loop on two
OpenMP threads (``2-openmp``: every matmul split over both threads, ending at a barrier that waits for
the slower one, so another busy process stalls it). Each repetition uses a new seed, the same for every
setting; the 1-thread and OpenMP settings draw the same tokens (checked), the 2-thread split draws its
own, so tokens generated are reported beside the times. Writes ``bench/results/decode_threads.json``.

The work is ``bench/trl_step.py``'s generation: its reference Qwen2 model (built there if missing), its
first 8 prompts, 8 samples each, at most 128 new tokens, T = 1. "Busy" runs a pure-Python spin loop in
a second process for the duration (it holds one core).

    python bench/decode_threads.py                 # 5 repetitions per setting and case
"""

from __future__ import annotations

import argparse
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

SETTINGS = ("1", "2", "2-openmp")


def engines(model: Any, tokenizer: Any) -> dict[str, Any]:
    """One engine per setting (they share the model's weights)."""
    from r1zero.rollout import fast

    class OpenMPDecode(fast.FastEngine):
        """One decode loop on two OpenMP threads: every op split over both, the alternative to sharding."""

        def _decode(self, *args, **kwargs):
            with fast._threads(2):
                return super()._decode(*args, **kwargs)

    return {
        "1": fast.FastEngine(model, tokenizer),
        "2": fast.FastEngine(model, tokenizer, decode_threads=2),
        "2-openmp": OpenMPDecode(model, tokenizer),
    }


def measure(by_setting: dict[str, Any], prompts: list[str], reps: int) -> dict[str, Any]:
    """Wall seconds and tokens of ``generate`` per setting, alternating, a new seed per repetition."""
    from r1zero.rollout.base import SamplingParams

    times: dict[str, list[float]] = {k: [] for k in by_setting}
    tokens: dict[str, list[int]] = {k: [] for k in by_setting}
    same = True
    for rep in range(reps):
        sampling = SamplingParams(n=8, temperature=1.0, max_new_tokens=128, stop=(), seed=rep)
        drawn = {}
        for name, engine in by_setting.items():
            start = time.perf_counter()
            groups = engine.generate(prompts, sampling)
            times[name].append(time.perf_counter() - start)
            drawn[name] = [[r.completion_ids for r in g] for g in groups]
            tokens[name].append(sum(len(ids) for g in drawn[name] for ids in g))
        same = same and drawn["1"] == drawn["2-openmp"]
    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "median_generate_s": median,
        "generate_s": times,
        "tokens": tokens,
        "ratio_over_1": {k: median[k] / median["1"] for k in by_setting},
        "identical_tokens_1_and_2_openmp": same,
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

    if not (Path(args.model_dir) / "config.json").exists():
        trl_step.build_reference_model(args.model_dir)
    trl_step.pin_threads(trl_step.THREADS)
    prompts = trl_step.step_prompts(args.model_dir, "dapo", 1)[0]
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32)
    by_setting = engines(model, tokenizer)
    for engine in by_setting.values():
        engine.generate(prompts[:2], SamplingParams(max_new_tokens=8))  # warm-up
    results: dict[str, Any] = {"load_before": os.getloadavg()}
    results["idle"] = measure(by_setting, prompts, args.reps)
    print("idle", _line(results["idle"]))
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        results["one_core_busy"] = measure(by_setting, prompts, max(2, args.reps // 2))
    finally:
        spinner.kill()
    print("one core busy", _line(results["one_core_busy"]))
    trl_step.write_results(results, args.out)
    return 0


def _line(result: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}: {result['median_generate_s'][k]:.2f} s ({result['ratio_over_1'][k]:.2f}x)" for k in SETTINGS
    )


if __name__ == "__main__":
    sys.exit(main())
