"""``r1zero plot RUN_DIR [RUN_DIR ...]``: the curves that show what RL did, as PNG and SVG.

Four panels, each its own figure and together in ``overview``:

- ``accuracy``: train reward and accuracy per step, held-out accuracy, and eval pass@1 with its 95% band;
- ``length``: mean response length with the p10-p90 band, and correct vs incorrect mean length (the
  analogue of the R1 paper's length figure);
- ``reflection``: share of responses with a reflection keyword, against the step-0 baseline, with the aha
  step marked (``r1zero.eval.aha``); on running-sum tasks also the exact check rate (``checks/rate``,
  ``r1zero.eval.checks``: a step re-done or a check word), dotted, and the held-out one (step 0 on) as
  squares;
- ``format``: tag-format rate and truncation (clip) rate.

Runs that have them also get ``critic`` (PPO: value loss and explained variance) and ``reward_model`` (a
learned reward against the verifier's score of the same completions, with the ``reward_divergence``
monitor's firings shaded: where reward hacking shows) and ``behaviour`` (the share of completions showing
verification, backtracking, subgoal setting and enumeration; ``r1zero.eval.behaviour_types``). ``--x time`` puts wall-clock seconds on the x
axis instead of steps, to compare runs whose steps cost differently (GRPO vs PPO) at equal time.

Per-step training metrics are noisy (64 samples swing by about 0.1), so they are drawn smoothed (EMA) with
the raw values faint behind. Several runs are overlaid, one colour per run, the legend naming each run's
variant from its ``config.json``. Reads only the run directory (``docs/run_format.md``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from r1zero.eval.aha import length_phases
from r1zero.eval.rundir import (
    Run,
    aha_for_run,
    ema,
    heldout_check_series,
    load_run,
    reflection_baseline,
    series,
)

logger = logging.getLogger(__name__)

__all__ = ["PANELS", "main", "plot_runs"]

_COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _smoothed(
    ax: Axes,
    steps: list[int],
    values: list[float],
    color: str,
    label: str | None,
    style: str = "-",
    alpha: float = 0.2,
) -> None:
    if not steps:
        return
    ax.plot(steps, values, style, color=color, alpha=0.18, linewidth=0.8)
    ax.plot(steps, ema(values, alpha), style, color=color, linewidth=1.8, label=label)


def _labeller(runs: Sequence[Run], i: int) -> Callable[..., str | None]:
    """Legend labels: one run names every curve; several runs name their main curve ``variant: metric``
    and only the first run names the other curves (same line styles in every colour)."""

    def label(metric: str, main: bool = False) -> str | None:
        if len(runs) == 1:
            return metric
        if main:
            return f"{runs[i].variant}: {metric}"
        return metric if i == 0 else None

    return label


def _eval_benchmarks(run: Run) -> list[str]:
    return sorted({row["benchmark"] for row in run.evals if "benchmark" in row})


def draw_accuracy(ax: Axes, runs: Sequence[Run]) -> None:
    for i, run in enumerate(runs):
        color = _COLORS[i % len(_COLORS)]
        lab = _labeller(runs, i)
        _smoothed(ax, *series(run.metrics, "train/reward", 1), color, lab("train reward", main=True))
        s, v = series(run.metrics, "train/accuracy", 1)
        if s:
            ax.plot(s, ema(v), ":", color=color, linewidth=1.4, label=lab("train accuracy"))
        s, v = series(run.metrics, "heldout/accuracy")
        if s and "heldout" not in _eval_benchmarks(run):  # else drawn below from eval.jsonl, with its CI
            ax.plot(s, v, "o--", color=color, markersize=4, linewidth=1.0, label=lab("held-out accuracy"))
        for j, bench in enumerate(_eval_benchmarks(run)):
            rows = [r for r in run.evals if r.get("benchmark") == bench and "pass@1" in r]
            rows.sort(key=lambda r: r["step"])
            steps = [r["step"] for r in rows]
            marker = "sD^v"[j % 4]
            ax.plot(
                steps,
                [r["pass@1"] for r in rows],
                marker + "-",
                color=color,
                markersize=5,
                label=lab(f"eval {bench} pass@1"),
            )
            cis = [r.get("pass@1_ci") for r in rows]
            if all(ci and len(ci) == 2 for ci in cis):
                ax.fill_between(
                    steps,
                    [c[0] for c in cis],
                    [c[1] for c in cis],
                    color=color,
                    alpha=0.15,
                    linewidth=0,
                    label=lab(f"{bench} 95% CI"),
                )
    ax.set_title("Accuracy")
    ax.set_ylabel("reward / accuracy")
    ax.set_ylim(-0.02, 1.02)


def draw_length(ax: Axes, runs: Sequence[Run]) -> None:
    for i, run in enumerate(runs):
        color = _COLORS[i % len(_COLORS)]
        lab = _labeller(runs, i)
        steps, values = series(run.metrics, "length/mean", 1)
        _smoothed(ax, steps, values, color, lab("mean", main=True))
        lo_s, lo = series(run.metrics, "length/p10", 1)
        hi_s, hi = series(run.metrics, "length/p90", 1)
        if lo_s and lo_s == hi_s:
            ax.fill_between(
                lo_s, ema(lo), ema(hi), color=color, alpha=0.12, linewidth=0, label=lab("p10-p90")
            )
        for key, style, name in (
            ("length/correct_mean", "--", "correct"),
            ("length/incorrect_mean", ":", "incorrect"),
        ):
            s, v = series(run.metrics, key, 1)
            if s:
                ax.plot(s, ema(v), style, color=color, linewidth=1.3, label=lab(f"{name}"))
        s, v = series(run.metrics, "heldout/length_mean")
        if s:
            ax.plot(s, v, "o", color=color, markersize=4, label=lab("held-out mean"))
            _mark_length_phases(ax, s, v, color, lab)
    ax.set_title("Response length")
    ax.set_ylabel("tokens")


def _mark_length_phases(
    ax: Axes, steps: list[int], lengths: list[float], color: str, lab: Callable[..., str | None]
) -> None:
    """Mark where the held-out length's first jump ends, and the change from there to the end."""
    phases = length_phases(steps, lengths)
    if phases.jump_step is None or phases.jump_step == phases.final_step:
        return
    ax.axvline(
        phases.jump_step,
        color=color,
        linestyle="-.",
        linewidth=1.0,
        label=lab(f"first jump ends (step {phases.jump_step}), then {phases.second_rise:+.0%}"),
    )


def draw_reflection(ax: Axes, runs: Sequence[Run]) -> None:
    for i, run in enumerate(runs):
        color = _COLORS[i % len(_COLORS)]
        lab = _labeller(runs, i)
        _smoothed(
            ax, *series(run.metrics, "reflection/per_response", 1), color, lab("per response", main=True)
        )
        # the exact check rate of running-sum tasks (r1zero.eval.checks) beside the keyword rate
        _smoothed(ax, *series(run.metrics, "checks/rate", 1), color, lab("exact checks"), style=":")
        held = heldout_check_series(run)
        if held:
            steps = sorted(held)
            rates = [held[s]["heldout/checks/rate"] for s in steps]
            ax.plot(steps, rates, "s", color=color, markersize=4, label=lab("held-out exact checks"))
        baseline, _ = reflection_baseline(run)
        if baseline is not None:
            ax.axhline(baseline, color=color, linestyle="--", linewidth=1.0, label=lab("step-0 baseline"))
            ax.plot([0], [baseline], "o", color=color, markersize=4)
        aha = aha_for_run(run)
        if aha is not None and aha.step is not None:
            ax.axvline(
                aha.step,
                color=color,
                linestyle="-.",
                linewidth=1.2,
                label=lab(f"aha (step {aha.step})", main=True),
            )
            ax.annotate(
                "aha",
                (aha.step, ax.get_ylim()[1]),
                xytext=(3, -12),
                textcoords="offset points",
                color=color,
                fontsize=9,
            )
    ax.set_title("Reflection")
    ax.set_ylabel("share of responses")
    ax.set_ylim(bottom=0)


def draw_format(ax: Axes, runs: Sequence[Run]) -> None:
    for i, run in enumerate(runs):
        color = _COLORS[i % len(_COLORS)]
        lab = _labeller(runs, i)
        _smoothed(ax, *series(run.metrics, "train/format_rate", 1), color, lab("format rate", main=True))
        _smoothed(ax, *series(run.metrics, "length/clip_ratio", 1), color, lab("truncation rate"), style="--")
        s, v = series(run.metrics, "heldout/format_rate")
        if s:
            ax.plot(s, v, "o", color=color, markersize=4, label=lab("held-out format"))
    ax.set_title("Format and truncation")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.02, 1.02)


def draw_critic(ax: Axes, runs: Sequence[Run]) -> None:
    # every curve is named per run here: in an overlay, runs without a critic draw nothing
    for i, run in enumerate(runs):
        color = _COLORS[i % len(_COLORS)]
        lab = _labeller(runs, i)
        _smoothed(ax, *series(run.metrics, "critic/value_loss", 1), color, lab("value loss", main=True))
        s, v = series(run.metrics, "critic/explained_variance", 1)
        if s:
            ax.plot(s, ema(v), "--", color=color, linewidth=1.4, label=lab("explained variance", main=True))
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_title("Critic (PPO)")
    ax.set_ylabel("value loss / explained variance")


def draw_reward_model(ax: Axes, runs: Sequence[Run]) -> None:
    for i, run in enumerate(runs):
        color = _COLORS[i % len(_COLORS)]
        lab = _labeller(runs, i)
        _smoothed(
            ax, *series(run.metrics, "train/reward/learned", 1), color, lab("learned reward", main=True)
        )
        s, v = series(run.metrics, "train/accuracy", 1)
        if s:
            ax.plot(
                s, ema(v), ":", color=color, linewidth=1.6, label=lab("verifier score (accuracy)", main=True)
            )
        s, v = series(run.metrics, "heldout/learned_reward")
        if s:
            ax.plot(s, v, "s", color=color, markersize=4, label=lab("held-out learned reward", main=True))
        s, v = series(run.metrics, "heldout/accuracy")
        if s:
            ax.plot(s, v, "o", color=color, markersize=4, label=lab("held-out verifier score", main=True))
        fired, _ = series([r for r in run.metrics if r.get("monitor/reward_divergence")], "step")
        for k, step in enumerate(fired):
            first = k == 0
            ax.axvspan(
                step - 0.5,
                step + 0.5,
                color="red",
                alpha=0.12,
                label=lab("divergence monitor") if first else None,
            )
    ax.set_title("Learned reward vs verifier")
    ax.set_ylabel("reward / accuracy")


def draw_behaviour(ax: Axes, runs: Sequence[Run]) -> None:
    """Share of training completions of each behaviour type (``r1zero.eval.behaviour_types``) per step,
    one line style per type, held-out shares at evaluation steps as dots."""
    from r1zero.eval.behaviour_types import BEHAVIOUR_TYPES

    styles = dict(zip(BEHAVIOUR_TYPES, ("-", "--", ":", "-."), strict=True))
    for i, run in enumerate(runs):
        color = _COLORS[i % len(_COLORS)]
        lab = _labeller(runs, i)
        for kind, style in styles.items():
            main = kind == BEHAVIOUR_TYPES[0]
            _smoothed(
                ax, *series(run.metrics, f"behaviour/{kind}", 1), color, lab(kind, main=main), style=style
            )
        s, v = series(run.metrics, "heldout/behaviour/any")
        if s:
            ax.plot(s, v, "o", color=color, markersize=4, label=lab("held-out: any type"))
    ax.set_title("Behaviour types")
    ax.set_ylabel("share of responses")
    ax.set_ylim(bottom=0)


#: panel name -> drawing function (the overview's four)
PANELS: dict[str, Callable[[Axes, Sequence[Run]], None]] = {
    "accuracy": draw_accuracy,
    "length": draw_length,
    "reflection": draw_reflection,
    "format": draw_format,
}

#: panel name -> (metric a run must have for the panel to be drawn, drawing function)
OPTIONAL_PANELS: dict[str, tuple[str, Callable[[Axes, Sequence[Run]], None]]] = {
    "critic": ("critic/value_loss", draw_critic),
    "reward_model": ("train/reward/learned", draw_reward_model),
    "behaviour": ("behaviour/any", draw_behaviour),
}


def on_wall_time(run: Run) -> Run:
    """The run with every ``step`` replaced by the wall-clock seconds at which that step ended
    (``time/elapsed``), so curves of runs with different step costs line up at equal time."""
    clock = {row["step"]: row["time/elapsed"] for row in run.metrics if "time/elapsed" in row}

    def retime(rows: list[dict]) -> list[dict]:
        return [{**r, "step": clock[r["step"]]} for r in rows if r.get("step") in clock]

    return replace(run, metrics=retime(run.metrics), samples=retime(run.samples), evals=retime(run.evals))


def finish_axes(ax: Axes, x: str = "step") -> None:
    ax.set_xlabel("wall time (s)" if x == "time" else "step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=7, loc="best")


def plot_runs(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path | None = None,
    formats=("png", "svg"),
    x: str = "step",
) -> list[Path]:
    """Write every panel and the 2x2 overview for ``run_dirs``; returns the files written.

    ``out_dir`` defaults to the first run's ``plots/``; ``x`` is ``"step"`` or ``"time"`` (wall seconds;
    files then end in ``_time``).
    """
    if x not in ("step", "time"):
        raise ValueError(f"x must be 'step' or 'time'; got {x!r}")
    runs = [load_run(d) for d in run_dirs]
    if x == "time":
        runs = [on_wall_time(r) for r in runs]
    suffix = "_time" if x == "time" else ""
    if not runs:
        raise ValueError("plot_runs needs at least one run directory")
    out = Path(out_dir) if out_dir is not None else runs[0].path / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    optional = {
        name: draw
        for name, (key, draw) in OPTIONAL_PANELS.items()
        if any(key in m for r in runs for m in r.metrics)
    }
    for name, draw in {**PANELS, **optional}.items():
        fig, ax = plt.subplots(figsize=(7, 4.2))
        draw(ax, runs)
        finish_axes(ax, x)
        fig.tight_layout()
        written += _save(fig, out / f"{name}{suffix}", formats)
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    for ax, draw in zip(axes.flat, PANELS.values(), strict=True):
        draw(ax, runs)
        finish_axes(ax, x)
    fig.suptitle(" vs ".join(r.variant for r in runs))
    fig.tight_layout()
    written += _save(fig, out / f"overview{suffix}", formats)
    return written


def _save(fig, stem: Path, formats: Sequence[str]) -> list[Path]:
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        # SVG text stays text (smaller, searchable, selectable in the report)
        with plt.rc_context({"svg.fonttype": "none"}):
            fig.savefig(path, dpi=110 if fmt == "png" else None)
        paths.append(path)
    plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="r1zero plot", description="Plot a run's curves (PNG and SVG).")
    p.add_argument("runs", nargs="+", help="run directories (several are overlaid)")
    p.add_argument("--out", help="output directory (default: the first run's plots/)")
    p.add_argument("--formats", default="png,svg", help="comma-separated formats (default png,svg)")
    p.add_argument(
        "--x", choices=("step", "time"), default="step", help="x axis: training step or wall-clock seconds"
    )
    args = p.parse_args(argv)
    try:
        paths = plot_runs(args.runs, args.out, tuple(args.formats.split(",")), args.x)
    except (ValueError, OSError) as exc:  # a missing, empty or corrupt run directory: say which
        print(f"r1zero plot: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
