"""``r1zero train``: build a config from a preset, a config file and overrides, run the recipe, print
step 0 vs final.

r1zero train                                   # the CPU demo (preset cpu-demo)
r1zero train --preset dapo --model.name DIR    # a preset, with overrides
r1zero train --config FILE [--run.name again]  # a config file: JSON, YAML or TOML, e.g. a run's config.json
r1zero train --resume runs/demo [--run.steps 200]
r1zero train --preset dapo --dry-run           # resolve names, sources and memory; load nothing, train nothing
r1zero train --help | --list-presets

Precedence: preset < config file < command line. A config file holds any part of config.json's
sections and may name a preset ("preset": "dapo"); --preset on the command line wins over it.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from r1zero.options import did_you_mean, read_config_file, take_option
from r1zero.train.config import TrainConfig, apply_overrides, config_from_dict, config_help
from r1zero.train.presets import PRESETS, check_data, check_model, get_preset

__all__ = ["build_config", "check_names", "dry_run", "main", "summary_table"]

log = logging.getLogger(__name__)

_USAGE = "usage: r1zero train [--preset NAME] [--config FILE] [--resume RUN_DIR] [--dry-run] [--section.field VALUE ...]"


def _preset(name: object) -> TrainConfig:
    if not isinstance(name, str) or name not in PRESETS:
        hint = did_you_mean(name, list(PRESETS)) if isinstance(name, str) else ""
        raise ValueError(f"unknown preset {name!r}{hint}; valid: {', '.join(PRESETS)}")
    return get_preset(name)


def build_config(argv: list[str]) -> tuple[TrainConfig, bool]:
    """``(config, resume)`` from command-line arguments (see the module docstring)."""
    preset, argv = take_option(argv, "--preset")
    config_file, argv = take_option(argv, "--config")
    resume_dir, argv = take_option(argv, "--resume")
    if resume_dir is not None:
        if preset is not None or config_file is not None:
            raise ValueError(
                "--resume continues a run with its saved config; do not pass --preset or --config with it"
            )
        path = Path(resume_dir)
        saved_file = path / "config.json"
        if not saved_file.is_file():
            raise ValueError(
                f"{resume_dir!r} is not a run directory (no config.json); pass a directory that 'r1zero train' wrote"
            )
        try:
            saved = config_from_dict(json.loads(saved_file.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, ValueError, TypeError) as exc:
            raise ValueError(f"{str(saved_file)!r} is not a valid r1zero config: {exc}") from exc
        # the run directory is where it is now (it may have been moved or copied)
        saved = apply_overrides(saved, ["--run.out_dir", str(path.parent), "--run.name", path.name])
        resumed = apply_overrides(saved, argv)
        check_resume_overrides(saved, resumed)
        return resumed, True
    if config_file is None:
        return apply_overrides(_preset(preset or "cpu-demo"), argv), False
    data = read_config_file(config_file)
    preset = preset or data.get("preset") or "cpu-demo"
    try:
        config = config_from_dict({**data, "preset": preset}, base=_preset(preset))
    except ValueError as exc:
        raise ValueError(f"{config_file}: {exc}") from None
    return apply_overrides(config, argv), False


#: what a resumed run cannot change: its seed, model and problems (the run would no longer be the one saved)
FIXED_ON_RESUME = ("run.seed", "model.name", "data.source", "data.difficulty", "data.train_size",
                   "data.heldout_source", "data.heldout_size", "data.template", "data.think_prefix")  # fmt: skip


def check_resume_overrides(saved: TrainConfig, resumed: TrainConfig) -> None:
    """A ``ValueError`` naming the first ``FIXED_ON_RESUME`` field an override changed.

    >>> from r1zero.train.config import apply_overrides
    >>> check_resume_overrides(TrainConfig(), apply_overrides(TrainConfig(), ["--run.steps", "9"]))
    """
    for key in FIXED_ON_RESUME:
        section, name = key.split(".")
        before, after = getattr(getattr(saved, section), name), getattr(getattr(resumed, section), name)
        if before != after:
            raise ValueError(
                f"--{key} {after!r} differs from the run's {before!r}; a resumed run keeps its seed, model "
                "and problems (start a new run with another --run.name to change them)"
            )


def check_names(config: TrainConfig) -> None:
    """The names a run looks up after loading its model (template, verifier, reflection preset), checked
    before anything is loaded; a miss is a ``ValueError`` naming the valid ones."""
    from r1zero.eval.config import check_names as check

    verifier = [("data.verifier", config.data.verifier)] if config.data.verifier else []
    check(config.data.template, config.run.reflection, verifier)


def dry_run(config: TrainConfig, resume: bool = False) -> str:
    """The plan of a run, from everything that needs no model weights and no hub: the validated config,
    problem sources and held-out set (names resolved, disjointness checked), template, verifier, the run
    directory, and ``r1zero plan``'s memory table for the GPUs a GPU preset assumes. A bad name or an
    overlapping train/held-out pair is a ``ValueError``."""
    from r1zero.train.config import validate

    config = validate(config)
    c = config
    lines = [
        f"r1zero train --dry-run: preset {c.preset or '(none)'}, model {c.model.name}",
        f"algorithm: {c.algo.estimator} advantage {c.algo.advantage}, loss {c.algo.loss_agg}, beta {c.algo.beta:g}, "
        f"eps {c.algo.eps_low:g}/{c.algo.eps_high:g}, lr {c.optim.lr:g}, {c.run.steps} steps",
        f"rollouts: {c.rollout.backend}, {c.rollout.prompts_per_step} prompts x G {c.rollout.group_size}, "
        f"T {c.rollout.temperature:g}, top-p {c.rollout.top_p:g}, max {c.rollout.max_new_tokens} new tokens",
        *check_data(config),
        f"template: {c.data.template}{'+think' if c.data.think_prefix else ''}; verifier: "
        f"{c.data.verifier or 'each problem its own'}",
        _run_dir_line(config, resume),
        "",
        _memory_table(config),
    ]
    return "\n".join(lines)


def _run_dir_line(config: TrainConfig, resume: bool) -> str:
    run_dir = Path(config.run.out_dir) / config.run.name
    if resume:
        state = "resumes from its latest checkpoint"
    elif run_dir.is_dir() and any(run_dir.iterdir()):
        state = "exists: " + (
            "--run.overwrite clears it" if config.run.overwrite else "refused without --run.overwrite"
        )
    else:
        state = "new"
    return f"run directory: {run_dir} ({state})"


def _memory_table(config: TrainConfig) -> str:
    """``r1zero plan``'s table for the preset's GPUs, from a shipped shape or a local config.json."""
    from r1zero.train.plan import inputs_from_config, load_shape, plan_memory
    from r1zero.train.plan_cli import default_logits_chunk, format_plan
    from r1zero.train.presets import PRESET_GPUS

    if config.rollout.backend not in ("vllm", "vllm-server") and config.preset not in PRESET_GPUS:
        return f"memory: a CPU run (backend {config.rollout.backend}); r1zero plan --preset NAME --gpus N plans GPUs"
    gpus, gib = PRESET_GPUS.get(config.preset, (1, 80.0))
    try:
        shape = load_shape(config.model.name)
    except FileNotFoundError:
        return (
            f"memory: no shape for {config.model.name!r}; the memory table needs the model's config.json "
            "(a local model directory, or r1zero plan --model path/to/config.json)"
        )
    chunk, _ = default_logits_chunk(
        config.algo.micro_batch_size, config.rollout.max_new_tokens, shape.vocab_size
    )
    inputs = inputs_from_config(config, gpus, gib, logits_chunk=chunk)
    title = (
        f"memory (r1zero plan --preset {config.preset} --gpus {gpus} --gpu-mem {gib:g}): model {shape.name}"
    )
    return format_plan(shape, inputs, plan_memory(shape, inputs), title=title)


def summary_table(step0: dict[str, float], final: dict[str, float], wall_time: float) -> str:
    """Step-0 vs final held-out metrics as a small text table.

    >>> print(summary_table({"heldout/accuracy": 0.1}, {"heldout/accuracy": 0.8}, 60.0))
    metric                              step 0     final
    heldout/accuracy                     0.100     0.800
    wall time (s)                                   60.0
    """
    lines = [f"{'metric':<32} {'step 0':>9} {'final':>9}"]
    for key in (
        "heldout/accuracy",
        "heldout/format_rate",
        "heldout/length_mean",
        "heldout/reflection_per_response",
    ):
        if key in step0 or key in final:
            a, b = step0.get(key, float("nan")), final.get(key, float("nan"))
            lines.append(f"{key:<32} {a:>9.3f} {b:>9.3f}")
    lines.append(f"{'wall time (s)':<32} {'':>9} {wall_time:>9.1f}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    argv = list(argv)
    if "--list-presets" in argv:
        for name, fn in PRESETS.items():
            print(f"{name:<14} {(fn.__doc__ or '').strip().splitlines()[0]}")
        return 0
    if "-h" in argv or "--help" in argv:
        try:  # the values shown are those of the preset and config file given, if any
            preset, rest = take_option([a for a in argv if a not in ("-h", "--help")], "--preset")
            config_file, _ = take_option(rest, "--config")
            chosen = {"--preset": preset, "--config": config_file}
            shown = build_config([x for flag, v in chosen.items() if v for x in (flag, v)])[0]
        except ValueError:
            shown = get_preset("cpu-demo")
        print(_USAGE + "\n\n" + (__doc__ or "") + "\npresets: " + ", ".join(PRESETS))
        print(config_help(shown))
        return 0
    dry = "--dry-run" in argv
    argv = [a for a in argv if a != "--dry-run"]
    if not dry:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config, resume = build_config(argv)
        check_names(config)
        check_data(config)  # sources and held-out set resolved before a run directory or model exists
        if dry:
            print(dry_run(config, resume))
            return 0
        check_model(config)  # a missing local base is named before a run directory exists
    except (ValueError, FileNotFoundError) as exc:
        print(f"r1zero train: {exc}", file=sys.stderr)
        return 2
    from r1zero.cli import quiet_libraries
    from r1zero.train.checkpoint import CheckpointError
    from r1zero.train.recipe import train
    from r1zero.train.session import TrainingError

    quiet_libraries()
    try:
        result = train(config, resume=resume)
    # bad input found once loading starts (a data file, a run directory) or a run that cannot go on:
    # one line, no traceback
    except (CheckpointError, TrainingError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"r1zero train: {exc}", file=sys.stderr)
        return 2
    if not result.is_main:
        return 0
    print(f"\nrun directory: {result.run_dir} ({result.steps_done} steps)")
    if result.step0 or result.final:
        print(summary_table(result.step0, result.final, result.wall_time))
    _write_plots(result.run_dir)
    return 0


def _write_plots(run_dir: Path) -> None:
    """Draw the run's curves with ``r1zero plot`` (a plotting failure never fails a finished run)."""
    try:
        from r1zero.eval.plots import plot_runs

        plot_runs([run_dir])
    except Exception as exc:  # matplotlib backends, fonts, a partial run: report, do not raise
        log.warning("plots not written (%s: %s); run 'r1zero plot %s'", type(exc).__name__, exc, run_dir)
        return
    print(f"plots: {run_dir / 'plots'}")
