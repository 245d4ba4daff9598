"""Peak memory of one learner update at Qwen2.5's 151,936-token vocabulary: full logits vs chunked.

One GRPO update (``r1zero.train.learner.policy_update``: the step's shared prompts once, one
micro-batch of every row, the GRPO loss, backward) of a random-weight Llama with the real vocabulary
and a tiny hidden size (64, 2 layers), so the LM head's logits dominate the memory as they do at any
model size. Two sides, each in its own fresh subprocess on one thread:

- ``full``: ``sequence_logprobs`` forced onto the full ``[b, T, V]`` logits and log-softmax (the path
  small vocabularies take, and every vocabulary took before the chunked one);
- ``chunked``: its automatic choice at this shape, the LM head + log-softmax over chunks of positions
  recomputed in the backward (``r1zero.train.logprobs``).

Memory is the subprocess's peak resident set (``getrusage`` ``ru_maxrss``: everything torch allocated
on the CPU, which ``tracemalloc`` would not see), in total and above the resident set just before the
update (model, batch and imports). The sides must agree: loss and every parameter's gradient within
``--tolerance``.

    python bench/logprobs_memory.py                 # writes bench/results/logprobs_memory.json
    python bench/logprobs_memory.py --rows 4 --completion 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "logprobs_memory.json"
SIDES = ("full", "chunked")
VOCAB = 151_936  # Qwen2.5's


def peak_rss_mb() -> float:
    """This process's peak resident set so far, MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(args: argparse.Namespace) -> tuple[Any, Any]:
    """The model (tiny-base's Llama with the full vocabulary, tied embeddings) and a GRPO batch:
    ``rows // 4`` prompts of ``--prompt`` tokens, 4 rows each, every completion ``--completion`` tokens."""
    import torch
    from transformers import LlamaForCausalLM

    from r1zero.models.tiny import tiny_config
    from r1zero.rollout.base import Rollout
    from r1zero.train.learner import pack_rollouts

    torch.manual_seed(0)
    config = tiny_config(
        vocab_size=VOCAB,
        hidden_size=args.hidden,
        intermediate_size=2 * args.hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=args.prompt + args.completion,
    )
    model = LlamaForCausalLM(config)
    g = torch.Generator().manual_seed(1)
    rollouts = []
    for row in range(args.rows):
        if row % 4 == 0:
            prompt = tuple(torch.randint(4, VOCAB, (args.prompt,), generator=g).tolist())
        ids = tuple(torch.randint(4, VOCAB, (args.completion,), generator=g).tolist())
        rollouts.append(Rollout(prompt, ids, "", tuple([-1.0] * args.completion), "length"))
    return model, pack_rollouts(rollouts, torch.randn(args.rows, generator=g), 0)


def run_side(args: argparse.Namespace) -> dict[str, Any]:
    """One update on ``args.side``; its loss and gradients go to ``args.grads_out``."""
    import torch

    from r1zero.train import logprobs
    from r1zero.train.config import AlgoConfig
    from r1zero.train.learner import policy_update

    torch.set_num_threads(1)
    if args.side == "full":
        logprobs.FULL_LOGITS_MAX_BYTES = sys.maxsize  # every logits tensor in one piece
    model, batch = build(args)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # keeps the weights: the gradients are compared
    algo = AlgoConfig(micro_batch_size=args.rows)
    before, load = peak_rss_mb(), os.getloadavg()[0]
    start = time.perf_counter()
    stats = policy_update(
        model, optimizer, batch, algo, max_len=args.completion, temperature=args.temperature
    )
    seconds = time.perf_counter() - start
    grads = {name: p.grad for name, p in model.named_parameters()}
    torch.save({"loss": stats["loss"], "grads": grads}, args.grads_out)
    chunk = logprobs.chunk_positions(args.rows, args.completion - 1, VOCAB)
    return {
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_update_mb": before,
        "update_peak_above_before_mb": peak_rss_mb() - before,
        "update_s": seconds,
        "loadavg_before": load,
        "loss": stats["loss"],
        "chunk_positions": None if args.side == "full" else chunk,
    }


def compare(paths: dict[str, Path]) -> dict[str, float]:
    """Largest loss and gradient differences between the sides."""
    import torch

    full, chunked = (torch.load(paths[side], weights_only=True) for side in SIDES)
    grad_diff = max((full["grads"][n] - chunked["grads"][n]).abs().max().item() for n in full["grads"])
    scale = max(g.abs().max().item() for g in full["grads"].values())
    return {
        "loss_max_abs_diff": abs(full["loss"] - chunked["loss"]),
        "grad_max_abs_diff": grad_diff,
        "grad_max_abs": scale,
    }


def machine() -> dict[str, Any]:
    import torch
    import transformers

    pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_gb": round(pages * page / 2**30, 1),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=8, help="rows of the micro-batch (groups of 4 share a prompt)")
    p.add_argument("--prompt", type=int, default=32, help="prompt tokens")
    p.add_argument("--completion", type=int, default=512, help="completion tokens of every row (T)")
    p.add_argument("--hidden", type=int, default=64, help="hidden size")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--tolerance", type=float, default=1e-5, help="largest loss/gradient difference allowed")
    p.add_argument("--timeout", type=float, default=600, help="seconds per side")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # the subprocess of one side
    p.add_argument("--grads-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rows < 4 or args.rows % 4:
        p.error(f"--rows={args.rows} must be a positive multiple of 4 (groups of 4 rows share a prompt)")
    if args.side:
        print(json.dumps(run_side(args)))
        return 0
    from r1zero.train.logprobs import chunk_positions

    if chunk_positions(args.rows, args.completion - 1, VOCAB) is None:
        p.error(
            f"--rows={args.rows} x --completion={args.completion} logits fit in one piece: no chunked side"
        )

    settings = {k: v for k, v in vars(args).items() if k not in ("out", "side", "grads_out", "timeout")}
    logits_mb = 4 * args.rows * args.completion * VOCAB / 2**20
    results: dict[str, Any] = {"machine": machine(), "settings": settings, "vocab": VOCAB}
    results["full_logits_float32_mb"] = logits_mb
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {side: Path(tmp) / f"{side}.pt" for side in SIDES}
        for side in SIDES:
            command = [
                sys.executable,
                __file__,
                "--side",
                side,
                "--grads-out",
                str(paths[side]),
                *(argv or sys.argv[1:]),
            ]
            done = subprocess.run(command, text=True, capture_output=True, timeout=args.timeout, env=env)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            results[side] = json.loads(done.stdout.strip().splitlines()[-1])
            print(side, json.dumps(results[side]))
        results["agreement"] = compare(paths)
    full, chunked = results["full"], results["chunked"]
    results["peak_ratio"] = chunked["peak_rss_mb"] / full["peak_rss_mb"]
    results["update_peak_ratio"] = (
        chunked["update_peak_above_before_mb"] / full["update_peak_above_before_mb"]
    )
    agree = results["agreement"]
    results["agree"] = max(agree["loss_max_abs_diff"], agree["grad_max_abs_diff"]) <= args.tolerance
    print(json.dumps({k: results[k] for k in ("agreement", "peak_ratio", "update_peak_ratio", "agree")}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0 if results["agree"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
