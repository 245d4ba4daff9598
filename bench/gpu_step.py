"""A GRPO step on a GPU at a real model's shape: Qwen2.5-Math-1.5B's architecture, random weights.

The benchmark needs no hub download: the model is built from the published shape (hidden 1536, 28
layers, 12 query / 2 KV heads, intermediate 8960, vocabulary 151936, tied embeddings) with random
weights and the tiny-base tokenizer (ids past its 105 tokens decode to nothing). A random model never
writes "</answer>", so every completion runs to the cap: the step times are the worst case for the
chosen length. Each backend trains ``--steps`` GRPO steps in its own ``r1zero train`` process (bf16,
gradient checkpointing, list-sum prompts with the r1zero template, beta = 0, mu = 1, one generation round
per step: no dynamic sampling); the JSON holds the medians after the first step (warm-up), tokens per
second of generation, and the learner's peak GPU memory (``perf/peak_gpu_mem_mb``).

    python bench/gpu_step.py                      # writes bench/results/gpu_step.json
    python bench/gpu_step.py --backends hf --steps 3 --max-new-tokens 128
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "gpu_step.json"

#: Qwen2.5-Math-1.5B's config.json fields that set the compute (rope and max positions as published)
QWEN25_MATH_15B = dict(
    hidden_size=1536,
    intermediate_size=8960,
    num_hidden_layers=28,
    num_attention_heads=12,
    num_key_value_heads=2,
    vocab_size=151936,
    max_position_embeddings=4096,
    rope_theta=10000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)


def build_model(directory: Path) -> Path:
    """Save a random-weight bf16 model of the Qwen2.5-Math-1.5B shape with the tiny-base tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from r1zero.models.tiny import build_tokenizer

    if (directory / "config.json").is_file():
        return directory
    tokenizer = build_tokenizer()
    config = Qwen2Config(
        **QWEN25_MATH_15B,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def train_argv(model_dir: Path, out_dir: Path, backend: str, args: argparse.Namespace) -> list[str]:
    """The ``r1zero train`` command line of one measured run."""
    return [
        sys.executable, "-m", "r1zero", "train", "--preset", "cpu-demo",
        "--model.name", str(model_dir), "--model.device", "cuda", "--model.dtype", "bfloat16",
        "--model.gradient_checkpointing", "true",
        "--data.template", "r1zero", "--data.heldout_size", "0", "--algo.beta", "0",
        "--algo.dynamic_sampling", "false",
        "--rollout.backend", backend,
        "--rollout.prompts_per_step", str(args.prompts), "--rollout.group_size", str(args.group_size),
        "--rollout.max_new_tokens", str(args.max_new_tokens),
        "--algo.micro_batch_size", str(args.micro_batch),
        "--run.steps", str(args.steps), "--run.save_every", "0", "--run.progress", "false",
        "--run.out_dir", str(out_dir), "--run.name", backend,
    ]  # fmt: skip


def summarise(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the steps after the first (warm-up) and the peak GPU memory over the run.

    >>> rows = [{"step": s, "time/step": t, "time/generate": t / 2, "time/update": t / 4,
    ...          "perf/tokens_per_s": 100.0, "length/mean": 8.0, "perf/peak_gpu_mem_mb": 10.0 * s}
    ...         for s, t in [(1, 9.0), (2, 2.0), (3, 4.0)]]
    >>> summarise(rows)["step_s"], summarise(rows)["peak_gpu_mem_mb"]
    (3.0, 30.0)
    """
    steps = [x for x in lines if x.get("step", 0) >= 1 and "time/step" in x]
    measured = steps[1:] or steps
    med = {
        k: statistics.median(x[k] for x in measured) for k in ("time/step", "time/generate", "time/update")
    }
    return {
        "step_s": med["time/step"],
        "generate_s": med["time/generate"],
        "update_s": med["time/update"],
        "tokens_per_s": statistics.median(x["perf/tokens_per_s"] for x in measured),
        "completion_tokens_mean": statistics.median(x["length/mean"] for x in measured),
        "peak_gpu_mem_mb": max(x.get("perf/peak_gpu_mem_mb", 0.0) for x in steps),
        "steps_measured": len(measured),
    }


def machine() -> dict[str, Any]:
    import torch
    import transformers

    return {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def write(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backends", default="hf,fast", help="comma-separated rollout backends")
    p.add_argument("--steps", type=int, default=4, help="GRPO steps per backend (the first is warm-up)")
    p.add_argument("--prompts", type=int, default=8, help="prompts per step")
    p.add_argument("--group-size", type=int, default=8, help="G")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--micro-batch", type=int, default=16, help="learner micro-batch (rows)")
    p.add_argument("--model-dir", type=Path, help="where the random model is built (default: a temp dir)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--backend-timeout", type=float, default=900, help="seconds per backend's run")
    args = p.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(args.model_dir or Path(tmp) / "qwen2.5-math-1.5b-shape")
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        results: dict[str, Any] = {"machine": machine(), "shape": QWEN25_MATH_15B, "settings": settings}
        for backend in args.backends.split(","):
            start = time.perf_counter()
            argv = train_argv(model_dir, Path(tmp) / "runs", backend, args)
            try:
                done = subprocess.run(argv, text=True, capture_output=True, timeout=args.backend_timeout)
                error = done.stderr[-3000:] if done.returncode != 0 else ""
            except subprocess.TimeoutExpired:
                error = f"stopped after {args.backend_timeout} s (the steps it finished are summarised)"
            metrics = Path(tmp) / "runs" / backend / "metrics.jsonl"
            lines = [json.loads(x) for x in metrics.read_text().splitlines()] if metrics.is_file() else []
            results[backend] = {"wall_s": time.perf_counter() - start}
            if any(x.get("step", 0) >= 1 for x in lines):
                results[backend].update(summarise(lines))
            if error:
                results[backend]["error"] = error
            print(backend, json.dumps(results[backend]))
            write(args.out, results)  # after each backend: a run cut short keeps what it measured
    print(f"wrote {args.out}")
    return 0 if all("error" not in results.get(b, {}) for b in args.backends.split(",")) else 1


if __name__ == "__main__":
    raise SystemExit(main())
