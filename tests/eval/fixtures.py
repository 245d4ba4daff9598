"""Test fixtures built on the spot: a random tiny Llama with the tiny-base tokenizer, benchmark files in
the shape of ../shared/data/benchmarks, and a synthetic run directory in the format of docs/run_format.md."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path


def write_random_model(path: Path, seed: int = 0, layers: int = 1) -> Path:
    """A randomly initialised 1-layer tiny-base-architecture model (HF format) with its real tokenizer."""
    import torch
    from transformers import LlamaForCausalLM

    from r1zero.models.tiny import build_tokenizer, tiny_config

    torch.manual_seed(seed)
    model = LlamaForCausalLM(
        tiny_config(
            num_hidden_layers=layers,
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    )
    model.save_pretrained(path)
    build_tokenizer().save_pretrained(path)
    return path


def write_benchmark_dir(path: Path) -> Path:
    """A math500-shaped file (3 problems) and a gsm8k-shaped file (2 problems)."""
    path.mkdir(parents=True, exist_ok=True)
    math_rows = [
        {"id": "math500-000", "problem": "What is $1+1$?", "answer": "2", "subject": "Algebra", "level": 1},
        {"id": "math500-001", "problem": "Simplify $\\frac{2}{4}$.", "answer": "\\frac{1}{2}", "level": 2},
        {"id": "math500-002", "problem": "What is $3 \\cdot 4$?", "answer": "12", "level": 1},
    ]
    gsm_rows = [
        {"id": "gsm8k-test-0000", "problem": "Tom has 3 apples and buys 4. How many?", "answer": "7"},
        {"id": "gsm8k-test-0001", "problem": "A box holds 5 pens. How many in 2 boxes?", "answer": "10"},
    ]
    for name, rows in (("math500_test.jsonl", math_rows), ("gsm8k_test.jsonl", gsm_rows)):
        (path / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _completion(rng: random.Random, step: int, reflect_p: float, correct: bool) -> str:
    work = "3+4=7, 7+2=9"
    if rng.random() < reflect_p:
        work += ", wait, recheck: 7+2=9"
    answer = "9" if correct else str(rng.randint(10, 20))
    return f" {work} </think> <answer>{answer}</answer>"


def write_synthetic_run(
    path: Path,
    steps: int = 60,
    aha_step: int | None = 25,
    variant: str = "demo",
    seed: int = 0,
    checkpoints: tuple[int, ...] = (),
    lift: float = 0.8,
) -> Path:
    """A run directory whose accuracy and length rise, and whose reflection rate jumps at ``aha_step``."""
    rng = random.Random(seed)
    path.mkdir(parents=True, exist_ok=True)
    config = {
        "model": {"name": "tiny-base"},
        "data": {"source": "list_sum", "template": "r1zero", "heldout_size": 64},
        "rollout": {"prompts_per_step": 8, "group_size": 8},
        "run": {"name": variant, "seed": seed},
        "preset": "cpu-demo",
    }
    (path / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    metrics, samples, evals = [], [], []
    for step in range(0, steps + 1):
        progress = 1 - math.exp(-step / 15)
        acc = 0.05 + lift * progress
        reflect = 0.05 if aha_step is None or step < aha_step else 0.45
        length = 50 + 40 * progress
        if step == 0 or step % 10 == 0:
            evals.append(
                {
                    "step": step,
                    "benchmark": "list_sum",
                    "n": 4,
                    "pass@1": acc,
                    "pass@1_ci": [acc - 0.08, acc + 0.08],
                    "format_rate": min(1, 0.6 + progress),
                    "length/mean": length,
                    "reflection/per_response": reflect,
                }
            )
        if step == 0:
            metrics.append(
                {
                    "step": 0,
                    "time/elapsed": 0.0,
                    "heldout/accuracy": acc,
                    "heldout/format_rate": 0.6,
                    "heldout/length_mean": length,
                    "heldout/reflection_per_response": reflect,
                }
            )
            continue
        n = 64
        hits = sum(rng.random() < reflect for _ in range(n))
        line = {
            "step": step,
            "time/elapsed": 3.0 * step,
            "train/reward": acc + rng.gauss(0, 0.05),
            "train/accuracy": acc + rng.gauss(0, 0.05),
            "train/format_rate": min(1.0, 0.6 + progress + rng.gauss(0, 0.02)),
            "length/mean": length + rng.gauss(0, 3),
            "length/p10": length - 15,
            "length/p50": length,
            "length/p90": length + 20,
            "length/max": length + 40,
            "length/correct_mean": length + 8,
            "length/incorrect_mean": length - 5,
            "length/clip_ratio": max(0.0, 0.05 - 0.04 * progress),
            "reflection/per_response": hits / n,
            "reflection/per_1k_tokens": 1000 * hits / (n * length),
            "reflection/responses": n,
            "policy/entropy": 1.0 - 0.5 * progress,
            "policy/kl": 0.01 * progress,
        }
        if step % 10 == 0:
            line.update(
                {
                    "heldout/accuracy": acc,
                    "heldout/format_rate": min(1.0, 0.6 + progress),
                    "heldout/length_mean": length,
                    "heldout/reflection_per_response": reflect,
                }
            )
        metrics.append(line)
        for _ in range(2):
            correct = rng.random() < acc
            text = _completion(rng, step, reflect, correct)
            samples.append(
                {
                    "step": step,
                    "prompt": "What is 3+4+2?\nAssistant: <think>",
                    "completion": text,
                    "gold": "9",
                    "reward": float(correct),
                    "correct": correct,
                    "formatted": True,
                    "reason": "correct" if correct else "wrong",
                    "extracted": text[-11:-9],
                    "length": len(text),
                    "reflection_hits": text.count("wait"),
                }
            )
    for name, rows in (("metrics.jsonl", metrics), ("samples.jsonl", samples), ("eval.jsonl", evals)):
        (path / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for step in checkpoints:
        write_random_model(path / "checkpoints" / f"step_{step:06d}", seed=step)
    return path
