"""Every zero-RL variant side by side on the CPU demo task, several seeds each (docs/algorithms.md).

Each row is a real ``r1zero train`` run of tiny-base on the demo task (``list_sum``, 5-8 digits, strict
R1-Zero reward), with the same budget: the same steps, 16 prompts x 8 samples per step, learning rate
and held-out set. Every variant starts from ``cpu-demo`` without dynamic sampling (so every row trains on
exactly the same number of rollouts per step) and changes only what defines it; ``dapo`` keeps dynamic
sampling, which draws extra prompts until groups have unequal rewards (more generation per step), and
``ppo`` is the ``cpu-demo-ppo`` preset (a critic). The two controls replace the reward: a coin flip with
the step-0 held-out accuracy as its probability, and the format check alone.

Runs go to ``runs/bench/algorithms/<variant>-s<seed>``, ``--jobs`` at a time with one thread each, seed by
seed (so a stopped bench has whole seeds); a finished run is kept and not run again. The summary has,
per variant over its seeds: final held-out accuracy (mean, each seed's value and a t-interval over
seeds), the first step with held-out accuracy >= 0.9, final held-out length, policy entropy at the end,
reflection rate, and seconds per step; each variant's difference from ``grpo`` is marked when the two
sets of seeds do not overlap. Writes ``bench/results/algorithms.json``, the table in
``docs/algorithms.md`` (between its ``algorithms-table`` markers) and an overlay plot of seed 0.

    python bench/algorithms.py                          # hours on 2 cores
    python bench/algorithms.py --variants grpo,rloo --seeds 0 --steps 10   # a quick look
    python bench/algorithms.py --skip-train             # summarise what is there
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench scripts' shared job runner
from jobs import run_jobs

RESULTS = Path(__file__).resolve().parent / "results"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "algorithms.md"
MARKERS = ("<!-- algorithms-table:start -->", "<!-- algorithms-table:end -->")

_FIXED = ("--algo.dynamic_sampling", "false")
_GRPO = (*_FIXED, "--algo.loss_agg", "grpo")

#: variant -> (preset, the settings that define it on top of the preset)
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "grpo": ("cpu-demo", _GRPO),
    "dr_grpo": ("cpu-demo", (*_FIXED, "--algo.advantage", "none", "--algo.loss_agg", "dr_grpo")),
    "dapo": (
        "cpu-demo",
        (
            "--algo.loss_agg",
            "dapo",
            "--algo.eps_high",
            "0.28",
            "--algo.beta",
            "0",
            "--algo.overlong_filter",
            "true",
            "--algo.dynamic_sampling",
            "true",
        ),
    ),
    "bnpo": ("cpu-demo", (*_FIXED, "--algo.loss_agg", "bnpo")),
    "gspo": (
        "cpu-demo",
        (*_GRPO, "--algo.loss", "gspo", "--algo.eps_low", "3e-4", "--algo.eps_high", "4e-4"),
    ),
    "cispo": (
        "cpu-demo",
        (*_FIXED, "--algo.loss", "cispo", "--algo.loss_agg", "dapo", "--algo.eps_high", "4"),
    ),
    "sapo": ("cpu-demo", (*_GRPO, "--algo.loss", "sapo")),
    "rloo": ("cpu-demo", (*_GRPO, "--algo.advantage", "rloo")),
    "reinforce_pp": ("cpu-demo", (*_FIXED, "--algo.advantage", "reinforce_pp", "--algo.loss_agg", "dapo")),
    "ppo": ("cpu-demo-ppo", ()),
    "grpo_entropy": ("cpu-demo", (*_GRPO, "--algo.entropy_coef", "0.001")),
    "grpo_clip_cov": ("cpu-demo", (*_GRPO, "--algo.loss", "clip_cov")),
    "random_reward": ("cpu-demo", (*_GRPO, "--reward.verifier", "random")),
    "format_only": ("cpu-demo", (*_GRPO, "--reward.verifier", "format_only")),
}


def train_argv(variant: str, out: Path, steps: int, seed: int, eval_every: int) -> list[str]:
    """The ``r1zero train`` command line of one run."""
    preset, extra = VARIANTS[variant]
    return [
        sys.executable, "-m", "r1zero", "train", "--preset", preset,
        "--run.name", f"{variant}-s{seed}", "--run.out_dir", str(out), "--run.steps", str(steps),
        "--run.seed", str(seed), "--run.eval_every", str(eval_every), "--run.save_every", str(steps),
        "--run.threads", "1", "--run.progress", "false", "--run.overwrite", "true", *extra,
    ]  # fmt: skip


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def finished(run_dir: Path, steps: int) -> bool:
    """Whether ``run_dir`` holds a run that reached ``steps`` (its metrics end there)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return False
    rows = read_jsonl(path)
    return bool(rows) and rows[-1].get("step") == steps


def run_all(jobs: list[tuple[str, int]], out: Path, steps: int, eval_every: int, parallel: int) -> None:
    """Run every ``(variant, seed)`` not finished yet, ``parallel`` at a time (one thread each)."""
    todo = [job for job in jobs if not finished(out / f"{job[0]}-s{job[1]}", steps)]
    run_jobs(todo, lambda variant, seed: train_argv(variant, out, steps, seed, eval_every), out, parallel)


def summarise_run(run_dir: Path) -> dict[str, Any]:
    """One finished run's figures: held-out curve, steps to 0.9, final length, entropy, reflection, time."""
    metrics = [m for m in read_jsonl(run_dir / "metrics.jsonl") if m["step"] >= 1]
    evals = [e for e in read_jsonl(run_dir / "eval.jsonl") if e.get("benchmark") == "heldout"]
    last = evals[-1]
    tail = metrics[-5:]
    reached = [e["step"] for e in evals if e["pass@1"] >= 0.9]
    return {
        "step0_accuracy": evals[0]["pass@1"],
        "final_accuracy": last["pass@1"],
        "final_accuracy_ci": last.get("pass@1_ci"),
        "steps_to_0.9": reached[0] if reached else None,
        "final_length": last["length/mean"],
        "final_reflection": last["reflection/per_response"],
        "final_entropy": statistics.mean(m["policy/entropy"] for m in tail),
        "final_train_accuracy": statistics.mean(m["train/accuracy"] for m in tail),
        "s_per_step": statistics.median(m["time/step"] for m in metrics),
        "wall_s": metrics[-1]["time/elapsed"],
        "heldout": [(e["step"], e["pass@1"]) for e in evals],
    }


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """Student-t interval of the mean of ``values`` (None for fewer than 2).

    >>> t_interval([0.8, 0.9, 1.0])
    (0.6516, 1.1484)
    """
    if len(values) < 2:
        return None
    quantiles = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
    if level != 0.95 or len(values) - 1 not in quantiles:
        raise ValueError(f"t_interval supports level 0.95 and 2-10 values; got {level} and {len(values)}")
    mean, half = statistics.mean(values), quantiles[len(values) - 1] * statistics.stdev(values)
    half /= math.sqrt(len(values))
    return round(mean - half, 4), round(mean + half, 4)


def separated(a: list[float], b: list[float]) -> bool:
    """Whether two sets of seed values (2 or more each) do not overlap: every value of one above every
    value of the other.

    >>> separated([0.9, 0.92], [0.8, 0.85]), separated([0.9, 0.8], [0.85, 0.82]), separated([0.9], [0.8])
    (True, False, False)
    """
    return len(a) >= 2 and len(b) >= 2 and (min(a) > max(b) or min(b) > max(a))


def summarise_variant(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean (and each seed's value) of every figure over a variant's seeds."""
    final = [r["final_accuracy"] for r in runs]
    reached = [r["steps_to_0.9"] for r in runs]

    def mean(key: str) -> float:
        return statistics.mean(r[key] for r in runs)

    return {
        "seeds": len(runs),
        "final_accuracy": statistics.mean(final),
        "final_accuracy_seeds": final,
        "final_accuracy_t95": t_interval(final),
        "steps_to_0.9": reached,
        "final_length": mean("final_length"),
        "final_entropy": mean("final_entropy"),
        "final_reflection": mean("final_reflection"),
        "final_train_accuracy": mean("final_train_accuracy"),
        "s_per_step": mean("s_per_step"),
        "step0_accuracy": mean("step0_accuracy"),
    }


def table(variants: dict[str, dict[str, Any]], steps: int) -> str:
    """The markdown table of docs/algorithms.md."""
    base = variants.get("grpo", {}).get("final_accuracy_seeds", [])
    lines = [
        f"| variant | seeds | held-out acc. at step {steps} (seeds) | 95% t-interval | vs grpo | "
        "steps to 0.9 | length | entropy | reflection | s/step |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in variants.items():
        seeds = ", ".join(f"{a:.3f}" for a in v["final_accuracy_seeds"])
        ci = v["final_accuracy_t95"]
        mark = "-"  # GRPO itself, or fewer than 2 seeds on a side
        if name != "grpo" and len(base) >= 2 and v["seeds"] >= 2:
            mark = "separated" if separated(v["final_accuracy_seeds"], base) else "within"
        reached = ", ".join("-" if s is None else str(s) for s in v["steps_to_0.9"])
        lines.append(
            f"| {name} | {v['seeds']} | {v['final_accuracy']:.3f} ({seeds}) | "
            f"{'-' if ci is None else f'{ci[0]:.3f}-{ci[1]:.3f}'} | {mark} | {reached} | "
            f"{v['final_length']:.1f} | {v['final_entropy']:.3f} | {v['final_reflection']:.3f} | "
            f"{v['s_per_step']:.2f} |"
        )
    return "\n".join(lines)


def write_table(text: str, path: Path = DOCS) -> bool:
    """Replace the text between the table markers of ``path``; False when the markers are missing."""
    doc = path.read_text()
    start, end = MARKERS
    if start not in doc or end not in doc:
        return False
    head, rest = doc.split(start, 1)
    path.write_text(f"{head}{start}\n{text}\n{end}{rest.split(end, 1)[1]}")
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/bench/algorithms"), help="where the runs go")
    p.add_argument("--steps", type=int, default=60, help="training steps of every run (the budget)")
    p.add_argument("--eval-every", type=int, default=10, help="held-out evaluation every k steps")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated variants")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    p.add_argument("--skip-train", action="store_true", help="summarise the runs under --out")
    p.add_argument("--json", type=Path, default=RESULTS / "algorithms.json")
    p.add_argument("--no-docs", action="store_true", help="do not rewrite the table in docs/algorithms.md")
    args = p.parse_args(argv)
    names = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if not args.skip_train:
        jobs = [(name, seed) for seed in seeds for name in names]
        run_all(jobs, args.out, args.steps, args.eval_every, args.jobs)

    runs: dict[str, dict[str, Any]] = {}
    for name in names:
        for seed in seeds:
            run_dir = args.out / f"{name}-s{seed}"
            if finished(run_dir, args.steps):
                runs[f"{name}-s{seed}"] = summarise_run(run_dir)
    variants = {
        name: summarise_variant([runs[f"{name}-s{s}"] for s in seeds if f"{name}-s{s}" in runs])
        for name in names
        if any(f"{name}-s{s}" in runs for s in seeds)
    }
    result = {
        "command": " ".join(["python", "bench/algorithms.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"cpu_count": os.cpu_count(), "load_at_end": os.getloadavg()},
        "steps": args.steps,
        "jobs": args.jobs,
        "threads_per_run": 1,
        "bench_wall_s": round(time.time() - t0, 1),  # this invocation (small with --skip-train)
        "runs_train_s_total": round(sum(r["wall_s"] for r in runs.values()), 1),  # every run's training time
        "settings": {name: " ".join(VARIANTS[name][1]) or f"--preset {VARIANTS[name][0]}" for name in names},
        "variants": variants,
        "runs": runs,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    text = table(variants, args.steps)
    print(text)
    if not args.no_docs and variants and not write_table(text):
        print(f"{DOCS} has no {MARKERS[0]} marker: table not written")
    seed0 = [args.out / f"{name}-s{seeds[0]}" for name in names if f"{name}-s{seeds[0]}" in runs]
    if seed0:
        from r1zero.eval.plots import plot_runs

        paths = plot_runs(seed0, args.out / "plots", formats=("png",), x="step")
        for path in paths:  # the overlay of every variant's seed 0, kept beside the JSON
            if path.stem in ("accuracy", "length", "reflection"):
                shutil.copy(path, args.json.parent / f"{args.json.stem}_{path.name}")
        print("plots:", ", ".join(str(path) for path in paths))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
