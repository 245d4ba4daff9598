"""GRPO vs PPO with a critic on the CPU demo, and a run on a learned reward model (docs/ppo_vs_grpo.md).

Four training runs on tiny-base's demo task (``list_sum``, 5-8 digits), all with the real trainer:

- ``grpo``: the ``cpu-demo`` preset (group-relative advantages, DAPO dynamic sampling, beta 0.01);
- ``ppo``: the ``cpu-demo-ppo`` preset (a critic, GAE with lambda = gamma = 1, no KL: Open-Reasoner-Zero's
  settings), same rollouts per step, learning rate and steps;
- ``grpo-fixed``: ``cpu-demo`` without dynamic sampling, so it samples exactly PPO's rollouts (dynamic
  sampling draws extra prompts until groups have unequal rewards: more tokens per step);
- ``learned-reward``: ``cpu-demo`` with the rule reward replaced by a Bradley-Terry reward model trained on
  the synthetic preference task (``r1zero data preferences`` + ``r1zero rm train``); the verifier still
  scores every completion, and the ``reward_divergence`` monitor compares the two.

GRPO and PPO run at the same time, one thread each, so both see the same machine load (their step times
and memory are the comparison); ``grpo-fixed`` and the learned-reward run follow. The summary reports per
run: median seconds per step, peak RSS, rollouts and tokens generated, held-out accuracy (T = 1) at step 0,
at the end, and at equal wall time (the last evaluation before the shorter run's end). Writes
``bench/results/ppo_vs_grpo.json`` and plots (``r1zero plot``).

    python bench/ppo_vs_grpo.py                 # ~15-20 minutes on 2 cores
    python bench/ppo_vs_grpo.py --steps 20      # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def train_argv(
    preset: str, name: str, out: Path, steps: int, seed: int, threads: int, *extra: str
) -> list[str]:
    """The ``r1zero train`` command line of one run."""
    return [
        sys.executable, "-m", "r1zero", "train", "--preset", preset,
        "--run.name", name, "--run.out_dir", str(out), "--run.steps", str(steps),
        "--run.seed", str(seed), "--run.threads", str(threads), "--run.progress", "false",
        "--run.overwrite", "true", *extra,
    ]  # fmt: skip


def launch(argv: list[str], log: Path, threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    handle = log.open("w")
    return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env)


def wait(procs: dict[str, subprocess.Popen], out: Path) -> None:
    for name, proc in procs.items():
        if proc.wait() != 0:
            tail = (out / f"{name}.log").read_text()[-3000:]
            raise RuntimeError(f"run {name!r} failed (exit {proc.returncode}):\n{tail}")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarise_run(run_dir: Path) -> dict[str, Any]:
    """Step time, memory, work done and the held-out accuracy curve of one finished run."""
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    evals = [e for e in read_jsonl(run_dir / "eval.jsonl") if e.get("benchmark") == "heldout"]
    clock = {m["step"]: m["time/elapsed"] for m in metrics}
    steps = [m for m in metrics if m["step"] >= 1]
    config = json.loads((run_dir / "config.json").read_text())
    per_step = config["rollout"]["prompts_per_step"] * config["rollout"]["group_size"]
    curve = [
        {"step": e["step"], "wall_s": round(clock.get(e["step"], 0.0), 1), "accuracy": e["pass@1"],
         "format_rate": e["format_rate"], "length_mean": e["length/mean"]}
        for e in evals
    ]  # fmt: skip
    out: dict[str, Any] = {
        "preset": config.get("preset"),
        "estimator": config["algo"].get("estimator", "grpo"),
        "steps": len(steps),
        "median_step_s": statistics.median(m["time/step"] for m in steps),
        "median_generate_s": statistics.median(m["time/generate"] for m in steps),
        "median_update_s": statistics.median(m["time/update"] for m in steps),
        "wall_s": round(steps[-1]["time/elapsed"], 1),
        "peak_rss_mb": max(m.get("perf/peak_rss_mb", 0.0) for m in steps),
        # dynamic sampling draws extra rounds: count what was generated, from tokens/s x generate time
        "tokens_generated": int(sum(m["perf/tokens_per_s"] * m["time/generate"] for m in steps)),
        "rollouts_trained": per_step * len(steps),
        "heldout": curve,
    }
    if any("critic/value_loss" in m for m in steps):
        tail = steps[-10:]
        ev = [m["critic/explained_variance"] for m in tail if m.get("critic/explained_variance") is not None]
        out["critic_explained_variance_last10"] = statistics.mean(ev) if ev else None
    if any("train/reward/learned" in m for m in steps):
        fired = [m["step"] for m in steps if m.get("monitor/reward_divergence")]
        out["divergence_monitor_first_step"] = fired[0] if fired else None
        out["learned_reward"] = [round(m["train/reward/learned"], 4) for m in steps]
        out["train_accuracy"] = [round(m["train/accuracy"], 4) for m in steps]
    return out


def accuracy_at(curve: list[dict], wall_s: float) -> dict[str, Any] | None:
    """The last held-out evaluation at or before ``wall_s`` seconds.

    >>> accuracy_at([{"wall_s": 0, "accuracy": 0.3}, {"wall_s": 50, "accuracy": 0.8}], 40)["accuracy"]
    0.3
    """
    before = [point for point in curve if point["wall_s"] <= wall_s]
    return before[-1] if before else None


def model_state_mb(parameters: int, estimator: str, beta: float) -> float:
    """Bytes of weights, gradients and AdamW state (float32) the learner side holds, in MiB.

    GRPO: policy (weights, grads, 2 Adam moments) plus a frozen reference when beta > 0; PPO adds a critic
    of the same size with its own grads and moments. (The tiny demo model makes this small next to the
    Python/torch runtime; at 7B it is the whole story.)

    >>> model_state_mb(1_000_000, "grpo", 0.0), model_state_mb(1_000_000, "ppo", 0.0)
    (15.2587890625, 30.517578125)
    """
    copies = 4 + (1 if beta > 0 else 0) + (4 if estimator == "ppo" else 0)
    return copies * parameters * 4 / 2**20


def compare(runs: dict[str, dict[str, Any]], parameters: int, betas: dict[str, float]) -> dict[str, Any]:
    grpo, ppo = runs["grpo"], runs["ppo"]
    equal = min(grpo["wall_s"], ppo["wall_s"])
    return {
        "step_time_ratio_ppo_over_grpo": ppo["median_step_s"] / grpo["median_step_s"],
        "update_time_ratio_ppo_over_grpo": ppo["median_update_s"] / grpo["median_update_s"],
        "peak_rss_ratio_ppo_over_grpo": ppo["peak_rss_mb"] / grpo["peak_rss_mb"],
        "model_state_mb": {
            "grpo": model_state_mb(parameters, "grpo", betas["grpo"]),
            "ppo": model_state_mb(parameters, "ppo", betas["ppo"]),
        },
        "equal_wall_time_s": equal,
        "accuracy_at_equal_wall_time": {
            "grpo": accuracy_at(grpo["heldout"], equal),
            "ppo": accuracy_at(ppo["heldout"], equal),
        },
        "final_accuracy": {"grpo": grpo["heldout"][-1]["accuracy"], "ppo": ppo["heldout"][-1]["accuracy"]},
        "step0_accuracy": {"grpo": grpo["heldout"][0]["accuracy"], "ppo": ppo["heldout"][0]["accuracy"]},
    }


def train_reward_model(out: Path, pairs: int, seed: int) -> dict[str, Any]:
    """Write the synthetic preference file and train the Bradley-Terry reward model on it."""
    prefs, rm_dir = out / "prefs.jsonl", out / "rm"
    r1zero = [sys.executable, "-m", "r1zero"]
    subprocess.run([*r1zero, "data", "preferences", "--n", str(pairs), "--seed", str(seed), "--out", str(prefs)],
                   check=True)  # fmt: skip
    subprocess.run([*r1zero, "rm", "train", "--data", str(prefs), "--out", str(rm_dir)], check=True)
    return json.loads((rm_dir / "rm.json").read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/ppo-vs-grpo"), help="where the runs go")
    p.add_argument("--steps", type=int, default=120, help="training steps of every run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pairs", type=int, default=4000, help="synthetic preference pairs for the reward model")
    p.add_argument(
        "--pairs-seed", type=int, default=1, help="seed of the preference problems (not the training seed's)"
    )
    p.add_argument("--skip-train", action="store_true", help="summarise existing runs under --out")
    p.add_argument("--only", choices=("all", "ppo", "fixed", "rm"), default="all", help="which part to run")
    p.add_argument("--json", type=Path, default=RESULTS / "ppo_vs_grpo.json")
    args = p.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    load = {"before": os.getloadavg()}
    if not args.skip_train and args.only in ("all", "ppo"):
        procs = {
            name: launch(train_argv(preset, name, out, args.steps, args.seed, 1), out / f"{name}.log", 1)
            for name, preset in (("grpo", "cpu-demo"), ("ppo", "cpu-demo-ppo"))
        }
        wait(procs, out)
        load["after_grpo_ppo"] = os.getloadavg()
    if not args.skip_train and args.only in ("all", "fixed"):
        extra = ("--algo.dynamic_sampling", "false")
        argv_fixed = train_argv("cpu-demo", "grpo-fixed", out, args.steps, args.seed, 1, *extra)
        wait({"grpo-fixed": launch(argv_fixed, out / "grpo-fixed.log", 1)}, out)
    rm_stats = None
    if not args.skip_train and args.only in ("all", "rm"):
        rm_stats = train_reward_model(out, args.pairs, args.pairs_seed)
        extra = ("--reward.model", str(out / "rm"), "--reward.rule_weight", "0")
        proc = launch(train_argv("cpu-demo", "learned-reward", out, args.steps, args.seed, 2, *extra),
                      out / "learned-reward.log", 2)  # fmt: skip
        wait({"learned-reward": proc}, out)
    elif (out / "rm" / "rm.json").is_file():
        rm_stats = json.loads((out / "rm" / "rm.json").read_text())

    from r1zero.train.presets import get_preset

    names = ("grpo", "ppo", "grpo-fixed", "learned-reward")
    runs = {name: summarise_run(out / name) for name in names if (out / name).is_dir()}
    parameters = _parameters()
    result: dict[str, Any] = {
        "command": " ".join(
            ["python", "bench/ppo_vs_grpo.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": {"cpu_count": os.cpu_count(), "load": load},
        "threads": {"grpo": 1, "ppo": 1, "grpo-fixed": 1, "learned-reward": 2},
        "wall_s": round(time.time() - t0, 1),
        "runs": runs,
        "reward_model": rm_stats,
    }
    if "grpo" in runs and "ppo" in runs:
        betas = {"grpo": get_preset("cpu-demo").algo.beta, "ppo": get_preset("cpu-demo-ppo").algo.beta}
        result["comparison"] = compare(runs, parameters, betas)
        both = [out / "grpo", out / "ppo"] + ([out / "grpo-fixed"] if "grpo-fixed" in runs else [])
        _plot(both, out / "plots", "time")
        _plot(both, out / "plots", "step")
    if "grpo-fixed" in runs and "ppo" in runs:
        fixed, ppo = runs["grpo-fixed"], runs["ppo"]
        result["same_rollouts"] = {
            "tokens_generated": {"grpo-fixed": fixed["tokens_generated"], "ppo": ppo["tokens_generated"]},
            "heldout_by_step": {
                "grpo-fixed": [(p["step"], p["accuracy"]) for p in fixed["heldout"]],
                "ppo": [(p["step"], p["accuracy"]) for p in ppo["heldout"]],
            },
        }
    if "learned-reward" in runs:
        _plot([out / "learned-reward"], out / "plots-learned-reward", "step")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result.get("comparison", {}), indent=1))
    print(f"wrote {args.json}")
    return 0


def _parameters() -> int:
    from safetensors import safe_open

    from r1zero.models.loading import resolve_model_path

    path = Path(resolve_model_path("tiny-base")) / "model.safetensors"
    with safe_open(str(path), "pt") as handle:
        return sum(math.prod(handle.get_slice(k).get_shape()) for k in handle.keys())  # noqa: SIM118


def _plot(run_dirs: list[Path], dest: Path, x: str) -> None:
    from r1zero.eval.plots import plot_runs

    paths = plot_runs(run_dirs, dest, formats=("png",), x=x)
    RESULTS.mkdir(exist_ok=True)
    for path in paths:
        if path.stem.split("_")[0] in ("accuracy", "critic", "reward"):
            shutil.copy(path, RESULTS / f"ppo_vs_grpo_{dest.name}_{path.name}")


if __name__ == "__main__":
    raise SystemExit(main())
