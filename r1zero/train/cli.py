"""``r1zero train``: build a config from a preset, a config file and overrides, run the recipe, print
step 0 vs final.

r1zero train                                   # the CPU demo (preset cpu-demo)
r1zero train --preset dapo --model.name DIR    # a preset, with overrides
r1zero train --config FILE [--run.name again]  # a config file: JSON, YAML or TOML, e.g. a run's config.json
r1zero train --resume runs/demo [--run.steps 200]
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
from r1zero.train.presets import PRESETS, get_preset

__all__ = ["build_config", "check_names", "main", "summary_table"]

log = logging.getLogger(__name__)

_USAGE = "usage: r1zero train [--preset NAME] [--config FILE] [--resume RUN_DIR] [--section.field VALUE ...]"


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config, resume = build_config(argv)
        check_names(config)
    except ValueError as exc:
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
