"""How r1zero's GRPO step time grows with the work: against G and against max new tokens, plotted.

The model, prompts and settings are those of ``bench/trl_step.py`` (random Qwen2, ~2.4M parameters,
8 prompts per step, T = 1, beta = 0, mu = 1, loss ``dapo``, 2 threads, float32); one knob moves at a
time: G in 2, 4, 8, 16 (at 128 new tokens) and max new tokens in 32, 64, 128, 256 (at G = 8). The
randomly initialised model samples EOS with probability ~1/105 per token, so completions are shorter
than the cap (~83 of 128 on average): the table and plot report the tokens actually generated per step.
Each point runs in its own fresh subprocess; the machine load is recorded with it.

Runs in the main venv (needs matplotlib, not TRL). Writes ``bench/results/scaling.json`` and
``bench/results/scaling.png``.

    python bench/scaling.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trl_step

GROUP_SIZES = (2, 4, 8, 16)
MAX_NEW_TOKENS = (32, 64, 128, 256)
LOSS_TYPE = "dapo"


def grid() -> list[tuple[int, int]]:
    """``(G, max_new_tokens)`` points: G varies at 128 tokens, tokens vary at G = 8 (shared point once).

    >>> grid()[:2], len(grid())
    ([(2, 128), (4, 128)], 7)
    """
    points = [(g, trl_step.MAX_NEW_TOKENS) for g in GROUP_SIZES]
    points += [(trl_step.GROUP_SIZE, n) for n in MAX_NEW_TOKENS if (trl_step.GROUP_SIZE, n) not in points]
    return points


def run_point(
    model_dir: str, group_size: int, max_new_tokens: int, steps: int, warmup: int
) -> dict[str, Any]:
    """One r1zero run in this process: medians over the steps after warm-up, peak RSS, load."""
    from r1zero.train.recipe import train

    trl_step.pin_threads(trl_step.THREADS)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as out_dir:
        config = trl_step.r1zero_config(model_dir, LOSS_TYPE, warmup + steps, out_dir)
        rollout = dataclasses.replace(config.rollout, group_size=group_size, max_new_tokens=max_new_tokens)
        config = dataclasses.replace(config, rollout=rollout)
        t0 = time.perf_counter()
        train(config)
        wall = time.perf_counter() - t0
        rows = [json.loads(line) for line in (Path(out_dir) / config.run.name / "metrics.jsonl").open()]
    rows = [r for r in rows if r.get("step", 0) > warmup]
    sequences = trl_step.PROMPTS_PER_STEP * group_size
    return {
        "group_size": group_size,
        "max_new_tokens": max_new_tokens,
        "sequences_per_step": sequences,
        "measured_steps": len(rows),
        "median_step_s": statistics.median(r["time/step"] for r in rows),
        "median_generate_s": statistics.median(r["time/generate"] for r in rows),
        "median_update_s": statistics.median(r["time/update"] for r in rows),
        "mean_completion_len": statistics.mean(r["length/mean"] for r in rows),
        "tokens_per_step": sequences * statistics.mean(r["length/mean"] for r in rows),
        "per_step_s": [r["time/step"] for r in rows],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall_s": wall,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }


def plot(points: list[dict[str, Any]], path: str) -> None:
    """Two panels: step time (and its generate/update parts) vs G, and vs max new tokens."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    panels = [
        (axes[0], "group_size", trl_step.MAX_NEW_TOKENS, "max_new_tokens", "G (completions per prompt)"),
        (axes[1], "max_new_tokens", trl_step.GROUP_SIZE, "group_size", "max new tokens"),
    ]
    for ax, knob, fixed, other, label in panels:
        mine = sorted((p for p in points if p[other] == fixed), key=lambda p: p[knob])
        xs = [p[knob] for p in mine]
        for key, name, style in (
            ("median_step_s", "step", "o-"),
            ("median_generate_s", "generate", "s--"),
            ("median_update_s", "update", "^--"),
        ):
            ax.plot(xs, [p[key] for p in mine], style, label=name)
        for p in mine:
            ax.annotate(f"{p['tokens_per_step']:.0f} tok", (p[knob], p["median_step_s"]), fontsize=7)
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel(label)
        ax.set_ylabel("seconds (median)")
        ax.set_title(f"r1zero step time vs {label.split(' (')[0]} ({other} = {fixed})", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    loads = [p["loadavg_before"][0] for p in points]
    fig.suptitle(
        f"8 prompts/step, random Qwen2 2.4M, CPU {trl_step.THREADS} threads; "
        f"1-min load {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--point", help="G,max_new_tokens: run one point in this process (internal)")
    parser.add_argument("--model-dir", default=trl_step.DEFAULT_MODEL_DIR)
    parser.add_argument("--steps", type=int, default=3, help="measured steps per point (after warm-up)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", default="bench/results/scaling.json")
    args = parser.parse_args(argv)
    if args.point:
        group_size, max_new_tokens = (int(x) for x in args.point.split(","))
        result = run_point(args.model_dir, group_size, max_new_tokens, args.steps, args.warmup)
        print("RESULT " + json.dumps(result))
        return 0

    if not (Path(args.model_dir) / "config.json").exists():
        print(
            f"building the reference model in {args.model_dir}: {trl_step.build_reference_model(args.model_dir)}"
        )
    env = {**os.environ, "OMP_NUM_THREADS": str(trl_step.THREADS), "TOKENIZERS_PARALLELISM": "false"}
    points = []
    for group_size, max_new_tokens in grid():
        cmd = [
            sys.executable,
            __file__,
            "--point",
            f"{group_size},{max_new_tokens}",
            "--model-dir",
            args.model_dir,
        ]
        cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
            raise RuntimeError(f"point G={group_size} L={max_new_tokens} failed ({proc.returncode})")
        point = json.loads(lines[-1][len("RESULT ") :])
        points.append(point)
        print(
            f"G {group_size:2d} L {max_new_tokens:3d}: step {point['median_step_s']:.2f}s "
            f"(generate {point['median_generate_s']:.2f}s, update {point['median_update_s']:.2f}s) "
            f"{point['tokens_per_step']:.0f} tokens/step  RSS {point['peak_rss_mb']:.0f} MB  "
            f"load {point['loadavg_before'][0]:.2f}"
        )
    result = {
        "loss_type": LOSS_TYPE,
        "prompts_per_step": trl_step.PROMPTS_PER_STEP,
        "environment": trl_step.environment(),
        "command": "python " + " ".join(sys.argv),
        "points": points,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    png = str(Path(args.out).with_suffix(".png"))
    plot(points, png)
    print(f"-> {args.out}, {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
