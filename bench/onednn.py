"""float32 linear layers on CPU: PyTorch's default GEMM (``F.linear``, MKL on x86) vs ``r1zero.cpu.onednn``.

Side by side in one process, alternating, at 1 and 2 torch threads: the forward GEMM of the shapes
that ``bench/trl_step.py``'s work runs (the update's ~2.4k-token micro-batch through each projection of
the reference Qwen2, and the decode step's 64 / 16 rows), one forward + backward of a linear layer at
the update's shape (also against ``onednn-wgrad``, the weight gradient by oneDNN's op too, which
``r1zero.cpu.onednn`` leaves on ``torch.mm``); one decode step's GEMMs (the engine's 17 weights of the reference model in turn,
at 64 / 48 / 32 / 16 / 8 rows, 1 thread) on PyTorch's GEMM, on oneDNN with the plain weights and on
oneDNN with the weights packed in its layout (``onednn.pack``, what the engine uses); and the ``fast``
engine's whole generation of that work (8 prompts x 8 samples, 128 new tokens, T = 1) on the same
three (same seed: the tokens drawn are compared). Writes ``bench/results/onednn.json``; the CPU model
and MKL's own report of its code path go with it.

    python bench/onednn.py
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import trl_step  # noqa: E402  (the same model, prompts and thread count)

#: (rows, in features, out features): the reference Qwen2's projections (q/k/v fused 256 -> 512 as in
#: the fast engine; gate/up 256 -> 1024; down 512 -> 256) at the update's micro-batch and decode sizes
SHAPES = [
    (2400, 256, 512),
    (2400, 256, 1024),
    (2400, 512, 256),
    (64, 256, 1024),
    (16, 256, 1024),
]
SIDES = ("torch", "onednn")
#: the decode step's sides: PyTorch's GEMM, oneDNN on the plain weights, oneDNN on packed weights
DECODE_SIDES = ("torch", "onednn-plain", "onednn")
DECODE_ROWS = (64, 48, 32, 16, 8)


def time_call(fn: Callable[[], Any], seconds: float = 0.3) -> float:
    """Median seconds per call of ``fn`` over ~``seconds`` of calls (after 3 warm-up calls)."""
    for _ in range(3):
        fn()
    start, samples = time.perf_counter(), []
    while time.perf_counter() - start < seconds or len(samples) < 5:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def gemm_rows(threads: int, reps: int) -> list[dict[str, Any]]:
    """Forward GEMM GFLOP/s per shape and side, and one forward + backward at the update's shape."""
    import torch
    import torch.nn.functional as F

    from r1zero.cpu import onednn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    fns = {"torch": F.linear, "onednn": onednn.linear}
    rows = []
    for m, k, n in SHAPES:
        x, w = torch.randn(m, k), torch.randn(n, k)
        calls = {side: functools.partial(f, x, w) for side, f in fns.items()}
        rows.append(_row("forward", threads, (m, k, n), 2 * m * k * n, best_of(calls, reps)))
    m, k, n = SHAPES[1]
    x, w = torch.randn(m, k, requires_grad=True), torch.randn(n, k, requires_grad=True)
    fns = {**fns, "onednn-wgrad": _all_onednn_linear()}  # the weight gradient in oneDNN too
    grad = torch.randn(m, n)
    calls = {side: functools.partial(_forward_backward, f, x, w, grad) for side, f in fns.items()}
    best = best_of(calls, reps)
    row = _row("forward+backward", threads, (m, k, n), 3 * 2 * m * k * n, best)
    rows.append({**row, "onednn-wgrad_us": best["onednn-wgrad"] * 1e6})
    return rows


def _all_onednn_linear() -> Callable[[Any, Any], Any]:
    """``onednn.linear`` with the weight gradient also by oneDNN's op, which copies its two transposed
    operands (``grad.T``, ``x.T``) to contiguous matrices first: why ``onednn.linear`` uses ``torch.mm``."""
    import torch

    from r1zero.cpu import onednn

    class AllOneDNN(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight):
            ctx.save_for_backward(x, weight)
            return onednn._gemm(x, weight, None)

        @staticmethod
        def backward(ctx, grad):
            x, weight = ctx.saved_tensors
            rows = grad.reshape(-1, grad.size(-1))
            grad_w = onednn._gemm(rows.t(), x.reshape(-1, x.size(-1)).t(), None)
            return onednn._gemm(grad, weight.t(), None), grad_w

    return AllOneDNN.apply


def best_of(calls: dict[str, Callable[[], Any]], reps: int) -> dict[str, float]:
    """Per side, the best of ``reps`` median call times, the sides alternating."""
    times: dict[str, list[float]] = {side: [] for side in calls}
    for _ in range(reps):
        for side, call in calls.items():
            times[side].append(time_call(call))
    return {side: min(v) for side, v in times.items()}


def _forward_backward(f: Callable, x: Any, w: Any, grad: Any) -> None:
    f(x, w).backward(grad)  # a dense upstream gradient, as a loss gives (``.sum()`` gives a stride-0 one)


def _row(kind: str, threads: int, shape: tuple[int, int, int], flops: int, best: dict[str, float]) -> dict:
    return {
        "kind": kind,
        "threads": threads,
        "shape_m_k_n": list(shape),
        **{f"{side}_us": best[side] * 1e6 for side in SIDES},
        **{f"{side}_gflops": flops / best[side] / 1e9 for side in SIDES},
        "speedup_onednn": best["torch"] / best["onednn"],
    }


def decode_step_rows(model_dir: str, reps: int) -> list[dict[str, Any]]:
    """One decode step's GEMMs per row count and side (1 thread): the engine's weights in turn."""
    import torch
    import torch.nn.functional as F

    from r1zero.cpu import onednn

    torch.set_num_threads(1)
    engine = _engines(model_dir, ("torch",))["torch"]  # plain fused weights
    weights = [w for layer in engine.layers for w in (layer.qkv_w, layer.o_w, layer.gate_up_w, layer.down_w)]
    weights.append(engine.lm_head)
    packed = [onednn.pack(w) for w in weights]
    flops = 2 * sum(w.numel() for w in weights)  # per row
    rows = []
    for m in DECODE_ROWS:
        inputs = [torch.randn(m, w.size(1)) for w in weights]
        calls = {
            "torch": functools.partial(_gemms, F.linear, inputs, weights),
            "onednn-plain": functools.partial(_gemms, onednn.linear, inputs, weights),
            "onednn": functools.partial(_gemms, onednn.linear, inputs, packed),
        }
        best = best_of(calls, reps)
        row: dict[str, Any] = {"rows": m, "gemms": len(weights), "threads": 1}
        row.update({f"{side}_us": best[side] * 1e6 for side in DECODE_SIDES})
        row.update({f"{side}_gflops": m * flops / best[side] / 1e9 for side in DECODE_SIDES})
        row["speedup_packed_vs_plain"] = best["onednn-plain"] / best["onednn"]
        row["speedup_packed_vs_torch"] = best["torch"] / best["onednn"]
        rows.append(row)
    return rows


def _gemms(f: Callable, inputs: list, weights: list) -> None:
    for x, w in zip(inputs, weights, strict=True):
        f(x, w)


def _engines(model_dir: str, sides: tuple[str, ...]) -> dict[str, Any]:
    """The fast engine over the reference model per side (``onednn-plain``: oneDNN on the plain weights)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1zero.rollout.fast import FastEngine

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    plain = FastEngine(model, tokenizer, onednn=False)  # fused weights in PyTorch's layout
    engines = {}
    for side in sides:
        engines[side] = plain if side == "torch" else FastEngine(model, tokenizer, onednn=True)
        if side == "onednn-plain":  # oneDNN on the plain weights, not packed in its layout
            engines[side].lm_head, engines[side].layers = plain.lm_head, plain.layers
    return engines


def generation(model_dir: str, reps: int) -> dict[str, Any]:
    """The fast engine's generation of the work per ``DECODE_SIDES`` side, alternating, same seeds."""
    import torch

    from r1zero.rollout.base import SamplingParams

    torch.set_num_threads(trl_step.THREADS)
    prompts = trl_step.step_prompts(model_dir, "dapo", 1)[0]
    engines = _engines(model_dir, DECODE_SIDES)
    times: dict[str, list[float]] = {side: [] for side in DECODE_SIDES}
    same = True
    for rep in range(reps):
        sampling = SamplingParams(n=8, temperature=1.0, max_new_tokens=trl_step.MAX_NEW_TOKENS, seed=rep)
        drawn = {}
        for side in DECODE_SIDES if rep % 2 == 0 else DECODE_SIDES[::-1]:
            start = time.perf_counter()
            groups = engines[side].generate(prompts, sampling)
            times[side].append(time.perf_counter() - start)
            drawn[side] = [[r.completion_ids for r in g] for g in groups]
        same = same and drawn["torch"] == drawn["onednn"] == drawn["onednn-plain"]
    median = {side: statistics.median(v) for side, v in times.items()}
    return {
        "generate_s": times,
        "median_generate_s": median,
        "speedup_onednn": median["torch"] / median["onednn"],
        "speedup_packed_vs_plain": median["onednn-plain"] / median["onednn"],
        "identical_tokens": same,
    }


def mkl_code_path() -> str:
    """MKL's own first verbose line (it names the instruction set its dispatcher chose)."""
    code = "import torch; torch.randn(64, 64) @ torch.randn(64, 64)"
    env = {**os.environ, "MKL_VERBOSE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout
    return next((line for line in out.splitlines() if "MKL_VERBOSE" in line), "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions (best of) per GEMM, and generations")
    parser.add_argument("--model-dir", default=trl_step.DEFAULT_MODEL_DIR)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "onednn.json"))
    args = parser.parse_args(argv)
    if not (Path(args.model_dir) / "config.json").exists():
        trl_step.build_reference_model(args.model_dir)
    trl_step.pin_threads(trl_step.THREADS)
    results: dict[str, Any] = {"load_before": os.getloadavg(), "mkl_verbose": mkl_code_path()}
    results["gemm"] = [row for threads in (1, 2) for row in gemm_rows(threads, args.reps)]
    for row in results["gemm"]:
        print(
            f"{row['kind']:>16} {row['threads']} thr {row['shape_m_k_n']}: torch {row['torch_gflops']:.0f} "
            f"GFLOP/s, onednn {row['onednn_gflops']:.0f} GFLOP/s (x{row['speedup_onednn']:.2f})"
            + (
                f", weight grad in oneDNN too {row['onednn-wgrad_us']:.0f} us vs {row['onednn_us']:.0f} us"
                if "onednn-wgrad_us" in row
                else ""
            )
        )
    results["decode_step"] = decode_step_rows(args.model_dir, args.reps)
    for row in results["decode_step"]:
        print(
            f"decode step {row['rows']:>2} rows: torch {row['torch_us']:.0f} us, onednn plain "
            f"{row['onednn-plain_us']:.0f} us, packed {row['onednn_us']:.0f} us "
            f"(x{row['speedup_packed_vs_plain']:.2f} vs plain, x{row['speedup_packed_vs_torch']:.2f} vs torch)"
        )
    trl_step.pin_threads(trl_step.THREADS)
    results["generation"] = generation(args.model_dir, 2 * args.reps)
    gen = results["generation"]
    times = ", ".join(f"{side} {gen['median_generate_s'][side]:.2f} s" for side in DECODE_SIDES)
    print(
        f"generation: {times} (x{gen['speedup_onednn']:.2f} vs torch, "
        f"x{gen['speedup_packed_vs_plain']:.2f} vs plain), same tokens: {gen['identical_tokens']}"
    )
    trl_step.write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
