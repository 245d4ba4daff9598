"""Rollout benchmark: ``hf`` vs ``fast`` tokens/s on tiny-base shapes.

Run: ``python bench/rollout.py`` (about 5 minutes on 2 shared cores); writes ``bench/results/rollout.json``.

- **Throughput.** tiny-base (the packaged checkpoint if present, else a random model of the same
  ``r1zero.models.tiny`` config) samples ``rows = prompts x 8`` completions of demo prompts at T=1 with the
  same seed in both engines; tokens/s counts completion tokens (EOS included), best of ``--repeats``
  runs, engines interleaved so load from other processes hits both alike. Threads are pinned
  (``--threads``, default 1). The engines must produce identical tokens (checked, recorded).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SHAPES = [(64, 64), (64, 128), (64, 256), (128, 128), (256, 128), (256, 256)]  # (rows, new tokens)
DEMO_SHAPE = (128, 128)  # cpu-demo preset: 16 prompts x group 8, 128 new tokens


def load_tiny_base():
    """The packaged tiny-base, or a random model of its config when the checkpoint has not landed."""
    from transformers import LlamaForCausalLM

    from r1zero.models.tiny import build_tokenizer, tiny_config

    path = ROOT / "r1zero" / "assets" / "tiny-base"
    if (path / "config.json").is_file():
        from r1zero.models.loading import load_policy

        model, tok = load_policy(str(path))
        return model.eval(), tok, f"checkpoint {path.relative_to(ROOT)}"
    torch.manual_seed(0)
    return (
        LlamaForCausalLM(tiny_config()).eval(),
        build_tokenizer(),
        "random init, r1zero.models.tiny.tiny_config()",
    )


def demo_prompts(count: int) -> list[str]:
    from r1zero.models.tiny import render_demo_prompt

    gen = torch.Generator().manual_seed(count)
    questions = []
    for _ in range(count):
        digits = torch.randint(1, 10, (int(torch.randint(5, 9, (1,), generator=gen)),), generator=gen)
        questions.append("what is " + "+".join(str(int(d)) for d in digits) + "?")
    return [render_demo_prompt(q) for q in questions]


def bench_throughput(repeats: int) -> tuple[dict, list[dict]]:
    from r1zero.rollout import SamplingParams, build_engine

    model, tok, source = load_tiny_base()
    engines = {name: build_engine(name, model, tok) for name in ("hf", "fast")}
    rows_out = []
    for rows, new in SHAPES:
        prompts = demo_prompts(rows // 8)
        sampling = SamplingParams(n=8, temperature=1.0, max_new_tokens=new, seed=0)
        best = {name: float("inf") for name in engines}
        tokens, outputs = {}, {}
        for _ in range(repeats):
            for name, engine in engines.items():
                start = time.perf_counter()
                groups = engine.generate(prompts, sampling)
                best[name] = min(best[name], time.perf_counter() - start)
                outputs[name] = [r.completion_ids for g in groups for r in g]
                tokens[name] = sum(len(ids) for ids in outputs[name])
        row = {
            "rows": rows,
            "max_new_tokens": new,
            "completion_tokens": tokens["fast"],
            "identical_tokens": outputs["hf"] == outputs["fast"],
            "hf_tokens_per_s": round(tokens["hf"] / best["hf"]),
            "fast_tokens_per_s": round(tokens["fast"] / best["fast"]),
            "speedup": round(best["hf"] / best["fast"] * tokens["fast"] / tokens["hf"], 2),
            "demo_shape": (rows, new) == DEMO_SHAPE,
        }
        print(json.dumps(row), flush=True)
        rows_out.append(row)
    params = sum(p.numel() for p in model.parameters())
    return {
        "model": source,
        "parameters": params,
        "prompt": "cpu-demo template, lists of 5-8 digits",
    }, rows_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (pinned for both engines)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per shape and engine; best is kept")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "rollout.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model_info, throughput = bench_throughput(args.repeats)
    demo = next(r for r in throughput if r["demo_shape"])
    at_64 = next(r for r in throughput if (r["rows"], r["max_new_tokens"]) == (64, 64))
    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "threads": args.threads,
        },
        "model": model_info,
        "throughput": throughput,
        "targets": {
            "fast_vs_hf_at_64x64_>=2.5x": at_64["speedup"] >= 2.5,
            "fast_faster_at_every_shape": all(r["speedup"] > 1 for r in throughput),
            "demo_shape_speedup": demo["speedup"],
            "seeded_samples_identical": all(r["identical_tokens"] for r in throughput),
        },
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["targets"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
