"""Self-checking on a CPU, measured (docs/aha.md): the ``cpu-aha`` preset on several seeds, beside the
random-reward and format-only controls on the same base model and task.

1. The variant base is pretrained once (``r1zero pretrain --preset tiny-aha --out BASE``), unless BASE
   already holds a checkpoint.
2. ``r1zero train --preset cpu-aha --model.name BASE`` runs once per seed, and the two controls
   (``--reward.verifier random`` / ``format_only``) once per control seed, ``--jobs`` at a time with one
   thread each. A finished run is kept and not run again.
3. Per run, from its directory: held-out accuracy; the held-out keyword reflection rate and exact check
   rate (``r1zero.eval.checks``) at step 0 and at the end, and their ratio; among checking responses,
   the share whose check turned a wrong answer right and the share it turned a right answer wrong (pooled
   over the held-out evaluations after step 0, and over the training rollouts); the held-out length in
   phases (``r1zero.eval.aha.length_phases``); training wall time.

Writes ``bench/results/aha.json`` and ``bench/results/aha.png`` (held-out accuracy, reflection and check
rates, and length; seeds solid, controls dashed).

    python bench/aha.py                       # about 30 minutes on 2 cores, the base included
    python bench/aha.py --seeds 0 --controls ""  # one run of the preset
    python bench/aha.py --skip-train          # summarise what is there
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench scripts' shared job runner
from jobs import run_jobs

from r1zero.eval.aha import length_phases
from r1zero.eval.rundir import heldout_check_series, load_run, series

RESULTS = Path(__file__).resolve().parent / "results"
CONTROLS = {"random_reward": "random", "format_only": "format_only"}


def pretrain_base(base: Path, preset: str) -> None:
    """Pretrain the variant base into ``base`` unless it already holds a checkpoint."""
    if (base / "model.safetensors").is_file():
        print(f"base: {base} (kept)", flush=True)
        return
    argv = [
        sys.executable,
        "-m",
        "r1zero",
        "pretrain",
        "--preset",
        preset,
        "--out",
        str(base),
        "--threads",
        "2",
    ]
    print("base:", " ".join(argv[1:]), flush=True)
    subprocess.run(argv, check=True)


def train_argv(name: str, seed: int, base: Path, preset: str, out: Path, steps: int | None) -> list[str]:
    """The ``r1zero train`` command line of one run (``name``: ``aha`` or a control)."""
    argv = [
        sys.executable, "-m", "r1zero", "train", "--preset", preset, "--model.name", str(base),
        "--run.name", f"{name}-s{seed}", "--run.out_dir", str(out), "--run.seed", str(seed),
        "--run.threads", "1", "--run.progress", "false", "--run.overwrite", "true",
    ]  # fmt: skip
    if steps is not None:
        argv += ["--run.steps", str(steps)]
    if name in CONTROLS:
        argv += ["--reward.verifier", CONTROLS[name]]
    return argv


def finished(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run whose metrics reached its configured steps."""
    config, metrics = run_dir / "config.json", run_dir / "metrics.jsonl"
    if not (config.is_file() and metrics.is_file()):
        return False
    lines = [line for line in metrics.read_text().splitlines() if line.strip()]
    try:
        return (
            bool(lines)
            and json.loads(lines[-1]).get("step") == json.loads(config.read_text())["run"]["steps"]
        )
    except (ValueError, KeyError):  # a half-written last line, or not a run's config
        return False


def run_all(jobs: list[tuple[str, int]], argv_of, out: Path, parallel: int) -> None:
    """Run every ``(name, seed)`` not finished yet, ``parallel`` at a time."""
    run_jobs([job for job in jobs if not finished(out / f"{job[0]}-s{job[1]}")], argv_of, out, parallel)


def pooled(per_step: dict[int, dict[str, float]], prefix: str, min_step: int = 1) -> dict[str, float]:
    """Checking responses and the fixed / broke shares among them, pooled over steps >= ``min_step``.

    >>> pooled({0: {"c/n": 4, "c/fixed": 1.0}, 5: {"c/n": 2, "c/fixed": 0.5, "c/broke": 0.0}}, "c/")
    {'n': 2, 'fixed': 0.5, 'broke': 0.0}
    """
    rows = [v for s, v in per_step.items() if s >= min_step and v.get(f"{prefix}n", 0) > 0]
    n = sum(v[f"{prefix}n"] for v in rows)
    out: dict[str, float] = {"n": int(n)}
    if n:
        for name in ("fixed", "broke"):
            out[name] = sum(v.get(f"{prefix}{name}", 0.0) * v[f"{prefix}n"] for v in rows) / n
    return out


def ratio(final: float, start: float) -> float | None:
    """``final / start``, or None when the start is 0.

    >>> ratio(0.3, 0.05), ratio(0.1, 0.0)
    (6.0, None)
    """
    return round(final / start, 3) if start > 0 else None


def summarise_run(run_dir: Path) -> dict[str, Any]:
    """One finished run's figures (held-out at step 0 and at the end; pooled check outcomes; phases)."""
    run = load_run(run_dir)
    acc = dict(zip(*series(run.metrics, "heldout/accuracy"), strict=True))
    keyword = dict(zip(*series(run.metrics, "heldout/reflection_per_response"), strict=True))
    steps, lengths = series(run.metrics, "heldout/length_mean")
    held = heldout_check_series(run)
    check_rate = {s: v["heldout/checks/rate"] for s, v in held.items()}
    train = {int(m["step"]): m for m in run.metrics if m.get("step", 0) >= 1 and "checks/rate" in m}
    first, last = steps[0], steps[-1]
    train_steps = sorted(train)
    head, tail = train_steps[:10], train_steps[-10:]
    return {
        "heldout_size": run.heldout_size,
        "accuracy": {"step0": acc[first], "final": acc[last]},
        "keyword_rate": {
            "step0": keyword[first],
            "final": keyword[last],
            "ratio": ratio(keyword[last], keyword[first]),
        },
        "check_rate": {
            "step0": check_rate.get(first),
            "final": check_rate.get(last),
            "ratio": ratio(check_rate.get(last, 0.0), check_rate.get(first, 0.0)),
        },
        "train_check_rate": {
            "first10": statistics.mean(train[s]["checks/rate"] for s in head) if head else None,
            "last10": statistics.mean(train[s]["checks/rate"] for s in tail) if tail else None,
        },
        "checks_heldout": pooled(held, "heldout/checks/"),
        "checks_heldout_step0": pooled(held, "heldout/checks/", min_step=0) if 0 in held else {},
        "checks_train": pooled(train, "checks/"),
        "length": length_phases(steps, lengths).to_dict(),
        "curves": {
            "steps": steps,
            "accuracy": [acc[s] for s in steps],
            "keyword_rate": [keyword.get(s) for s in steps],
            "check_rate": [check_rate.get(s) for s in steps],
            "length": lengths,
        },
        "train_wall_s": run.metrics[-1].get("time/elapsed"),
        "threads": 1,
    }


def plot(runs: dict[str, dict[str, Any]], path: Path) -> None:
    """Held-out accuracy, reflection (keyword rate as lines, exact checks dotted) and length; the preset's
    seeds one colour each, each control one colour for all its seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    colours = {"random_reward": "#d9822b", "format_only": "#7a7a7a"}
    seeds = ["#1f4e9c", "#3b7dd8", "#7fb2f0"]
    groups = [key.rsplit("-s", 1)[0] for key in runs]
    for i, (key, r) in enumerate(runs.items()):
        name = groups[i]
        first = groups.index(name) == i
        if name == "aha":
            colour, style, label = seeds[groups[:i].count("aha") % len(seeds)], "-", key
        else:
            colour, style = colours.get(name, "#444444"), "--"
            label = f"{name} ({groups.count(name)} seeds)" if first else None
        c = r["curves"]
        axes[0].plot(c["steps"], c["accuracy"], style, marker="o", ms=3, color=colour, label=label)
        axes[1].plot(c["steps"], c["keyword_rate"], style, marker="o", ms=3, color=colour)
        axes[1].plot(c["steps"], c["check_rate"], ":", marker="s", ms=3, color=colour)
        axes[2].plot(c["steps"], c["length"], style, marker="o", ms=3, color=colour)
        jump = r["length"]["jump_step"]
        if name == "aha" and jump is not None and jump != r["length"]["final_step"]:
            axes[2].axvline(jump, color=colour, linestyle="-.", linewidth=0.8)
    titles = (
        "Held-out accuracy",
        "Held-out reflection: keywords (o), exact checks (s, dotted)",
        "Held-out length (first jump ends at -.)",
    )
    for ax, title, ylabel in zip(
        axes, titles, ("accuracy (T = 1)", "share of responses", "tokens"), strict=True
    ):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-0.02, 1.02)
    axes[1].set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarise_group(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each seed's headline figures, side by side."""

    def each(*keys: str) -> list[Any]:
        out = []
        for r in runs:
            value: Any = r
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            out.append(value)
        return out

    return {
        "seeds": len(runs),
        "accuracy_final": each("accuracy", "final"),
        "keyword_rate_step0": each("keyword_rate", "step0"),
        "keyword_rate_final": each("keyword_rate", "final"),
        "keyword_rate_ratio": each("keyword_rate", "ratio"),
        "check_rate_step0": each("check_rate", "step0"),
        "check_rate_final": each("check_rate", "final"),
        "check_rate_ratio": each("check_rate", "ratio"),
        "heldout_fixed": each("checks_heldout", "fixed"),
        "heldout_broke": each("checks_heldout", "broke"),
        "train_fixed": each("checks_train", "fixed"),
        "train_broke": each("checks_train", "broke"),
        "length_step0": each("length", "step0_length"),
        "length_jump": each("length", "jump_length"),
        "length_final": each("length", "final_length"),
        "second_rise": each("length", "second_rise"),
        "train_wall_s": each("train_wall_s"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", type=Path, default=Path("runs/bench/aha/base"), help="the variant base model")
    p.add_argument("--pretrain-preset", default="tiny-aha", help="r1zero pretrain preset of the base")
    p.add_argument("--preset", default="cpu-aha", help="r1zero train preset")
    p.add_argument("--out", type=Path, default=Path("runs/bench/aha"), help="where the runs go")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds of the preset's runs")
    p.add_argument("--controls", default="random_reward,format_only", help="comma-separated controls")
    p.add_argument("--control-seeds", default="0,1,2", help="comma-separated seeds of the controls")
    p.add_argument("--steps", type=int, default=None, help="override the preset's steps")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    p.add_argument("--skip-train", action="store_true", help="summarise the runs under --out")
    p.add_argument("--json", type=Path, default=RESULTS / "aha.json")
    args = p.parse_args(argv)
    controls = [c for c in args.controls.split(",") if c]
    unknown = sorted(set(controls) - set(CONTROLS))
    if unknown:
        p.error(f"unknown controls {unknown}; known: {', '.join(CONTROLS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    control_seeds = [int(s) for s in args.control_seeds.split(",") if s]
    jobs = [("aha", s) for s in seeds] + [(c, s) for s in control_seeds for c in controls]
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if not args.skip_train:
        pretrain_base(args.base, args.pretrain_preset)

        def argv_of(name: str, seed: int) -> list[str]:
            return train_argv(name, seed, args.base, args.preset, args.out, args.steps)

        run_all(jobs, argv_of, args.out, args.jobs)
    runs = {
        f"{n}-s{s}": summarise_run(args.out / f"{n}-s{s}")
        for n, s in jobs
        if finished(args.out / f"{n}-s{s}")
    }
    base_record = args.base / "pretrain.json"
    pretrain_stats = json.loads(base_record.read_text())["stats"] if base_record.is_file() else {}
    groups = {
        name: summarise_group([r for k, r in runs.items() if k.rsplit("-s", 1)[0] == name])
        for name in ["aha", *controls]
        if any(k.rsplit("-s", 1)[0] == name for k in runs)
    }
    result = {
        "command": " ".join(["python", "bench/aha.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"cpu_count": os.cpu_count(), "load_at_end": os.getloadavg()},
        "base": str(args.base),
        "pretrain": {k: pretrain_stats.get(k) for k in ("steps", "final_loss", "wall_seconds", "threads")},
        "preset": args.preset,
        "jobs": args.jobs,
        "bench_wall_s": round(time.time() - t0, 1),
        "groups": groups,
        "runs": runs,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    if runs:
        plot(runs, args.json.with_suffix(".png"))
    print(json.dumps(groups, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
