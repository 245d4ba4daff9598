"""``r1zero eval``: evaluate a model, or every checkpoint of a run, on benchmarks; print a table.

Options are those of ``r1zero train`` wherever they mean the same thing (``--model.name``,
``--data.template``, ``--rollout.temperature``, ``--rollout.max_new_tokens``, ``--run.seed``,
``--run.out_dir``, ...), plus evaluation's own (``--benchmarks``, ``--n``, ``--limit``, ``--data_dir``,
``--force``, ...). ``--config FILE`` (JSON, YAML or TOML; e.g. a suite in ``eval/``) sets any of them and
the command line overrides it. With several benchmarks the table ends with their macro average and its
95% CI. The result is saved (``r1zero.eval.results``: under ``RUN_DIR/eval/``, a writable local model
directory's ``eval/``, ``--run.out_dir``, or ``./eval_results/<model>/``; never replacing a file) and the
path printed. ``--compare OLD.result.json`` prints the two side by side; a suite with a ``paper`` block
(published figures) also gets a "paper vs this checkpoint" table. Every name (benchmarks, template,
verifiers, reflection preset, backend) and the ``--compare`` file are checked before a model is loaded.

Examples::

    r1zero eval --model.name tiny-base --benchmarks list_sum --data.template tiny-demo --n 8 --limit 128
    r1zero eval --config eval/math6.json --model.name Qwen/Qwen2.5-Math-1.5B --rollout.backend vllm \\
        --data_dir ../shared/data/benchmarks --run.out_dir results/qwen-math-1.5b
    r1zero eval --run runs/demo --benchmarks list_sum --n 4     # each checkpoint once; --force re-runs
    r1zero eval --suite demo --run runs/demo --compare runs/base/eval/demo-step000000.result.json
    r1zero eval --suite oat-zero --model.name sail/Qwen2.5-Math-7B-Oat-Zero --rollout.backend vllm \\
        --model.dtype bfloat16 --rollout.tensor_parallel 1 --rollout.gpu_memory_utilization 0.9
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path

from r1zero.eval.config import EvalConfig, check_benchmarks, check_names, eval_config, result_settings
from r1zero.eval.paper import Paper, load_paper, paper_table, pick_row
from r1zero.eval.results import (
    build_result,
    compare_table,
    load_result,
    result_dir,
    result_name,
    save_result,
    suite_name,
)
from r1zero.eval.summary import average_results
from r1zero.options import config_help, read_config_file, take_option

__all__ = ["format_table", "main", "save_results", "suite_paper"]

log = logging.getLogger(__name__)

_USAGE = (
    "usage: r1zero eval (--model.name MODEL | --run RUN_DIR) [--config FILE] [--benchmarks A,B] "
    "[--force] [--compare OLD.result.json] [--section.field VALUE ...]"
)


def suite_paper(argv: list[str], cfg: EvalConfig) -> tuple[Paper, str] | None:
    """The ``paper`` block of the ``--suite``/``--config`` file in ``argv`` and the row to compare with,
    or None (no file, no block, or several rows and none named like the model: then it says so)."""
    spec = _suite_spec(argv)
    paper = load_paper(spec) if spec else None
    if paper is None:
        return None
    model = cfg.model.name or _run_model(cfg.run_dir)
    row = pick_row(paper, model, cfg.paper_model)
    if row is None:
        log.info(
            "the suite's paper has figures for %s; --paper_model NAME prints one beside %s",
            ", ".join(paper.models), model,
        )  # fmt: skip
        return None
    return paper, row


def _run_model(run_dir: str) -> str:
    """The base model named in a run's config.json ("" when unreadable; build_config checks the run)."""
    try:
        return str(read_config_file(Path(run_dir) / "config.json")["model"]["name"])
    except (ValueError, KeyError, TypeError):
        return ""


def build_config(argv: list[str]) -> EvalConfig:
    """The config of a command line, every name in it checked (nothing is loaded or run).

    ``--run DIR`` is short for ``--run_dir DIR``, and ``--suite FILE`` for ``--config FILE``.
    """
    config_file, argv = take_option(argv, "--config")
    suite, argv = take_option(argv, "--suite")
    if config_file and suite:
        raise ValueError("give --config FILE or --suite FILE, not both")
    run_dir, argv = take_option(argv, "--run")
    if run_dir is not None:
        argv = [*argv, "--run_dir", run_dir]
    cfg = eval_config(argv, config_file or suite)
    if bool(cfg.model.name) == bool(cfg.run_dir):
        raise ValueError(
            "give --model.name MODEL (a directory, a hub name or tiny-base) or --run RUN_DIR"
            + (", not both" if cfg.model.name else "")
        )
    if cfg.data_dir and not Path(cfg.data_dir).is_dir():
        raise ValueError(f"data_dir {cfg.data_dir!r} is not a directory")
    resolved = check_benchmarks(cfg.benchmarks, cfg.data_dir)
    check_names(
        cfg.data.template, cfg.run.reflection, [(f"benchmark {name}: verifier", v) for name, v in resolved]
    )
    return replace(cfg, benchmarks=tuple(name for name, _ in resolved))


def format_table(results: list[dict]) -> str:
    """A plain-text table of the headline numbers, one row per (step and) benchmark, and the macro
    average of each step's benchmarks when there are several (``summary.average_results``).

    >>> a = {"benchmark": "a", "problems": 2, "n": 4, "pass@1": 0.5, "pass@1_ci": [0.25, 0.75],
    ...     "pass@1_se": 0.125, "pass@4": 1.0, "maj@4": 0.5, "format_rate": 1.0, "length/mean": 10.0,
    ...     "length/clip_ratio": 0.0, "reflection/per_response": 0.25, "accuracy/strict": 0.25}
    >>> b = {**a, "benchmark": "b", "problems": 3, "pass@1": 0.25, "pass@1_ci": [0.25, 0.25], "pass@1_se": 0.0,
    ...     "pass@4": 0.5, "length/mean": 20.0}
    >>> print(format_table([a, b]))
    benchmark      problems   n   pass@1  95% CI          pass@n   maj@n  strict  format   len  trunc  reflect
    a                     2   4    0.500  [0.250, 0.750]   1.000   0.500   0.250   1.000    10  0.000    0.250
    b                     3   4    0.250  [0.250, 0.250]   0.500   0.500   0.250   1.000    20  0.000    0.250
    average               5   4    0.375  [0.253, 0.497]   0.750   0.500   0.250   1.000    15  0.000    0.250
    average: the mean over benchmarks, each weighing the same; its 95% CI is the normal approximation
    mean +- 1.96 sqrt(sum se_b^2) / B (se_b: a benchmark's standard error over its problems), a benchmark's
    is a bootstrap over its problems
    """
    head = (
        f"{'benchmark':<14} {'problems':>8} {'n':>3} {'pass@1':>8}  {'95% CI':<15} {'pass@n':>6} {'maj@n':>7} "
        f"{'strict':>7} {'format':>7} {'len':>5} {'trunc':>6} {'reflect':>8}"
    )
    lines = [head]
    steps = sorted({r.get("step") for r in results}, key=lambda s: -1 if s is None else s)
    for step in steps:
        rows = [r for r in results if r.get("step") == step]
        lines += [_table_row(r) for r in rows]
        if len(rows) >= 2:
            lines.append(_table_row({**average_results(rows), "step": step}))
    if len(lines) > len(results) + 1:
        lines.append(_AVERAGE_NOTE)
    return "\n".join(lines)


_AVERAGE_NOTE = (
    "average: the mean over benchmarks, each weighing the same; its 95% CI is the normal approximation\n"
    "mean +- 1.96 sqrt(sum se_b^2) / B (se_b: a benchmark's standard error over its problems), a benchmark's\n"
    "is a bootstrap over its problems"
)


def _table_row(r: dict) -> str:
    """One line of ``format_table`` (a missing number prints as nan)."""
    nan = float("nan")
    n = r["n"] if r.get("n") is not None else "-"  # benchmarks with different n: no common pass@n
    name = r["benchmark"] if r.get("step") is None else f"{r['benchmark']}@{r['step']}"
    ci = "[{:.3f}, {:.3f}]".format(*r.get("pass@1_ci", (nan, nan)))
    return (
        f"{name:<14} {r['problems']:>8} {n:>3} {r['pass@1']:>8.3f}  {ci:<15} {r.get(f'pass@{n}', nan):>6.3f} "
        f"{r.get(f'maj@{n}', nan):>7.3f} {r.get('accuracy/strict', nan):>7.3f} {r.get('format_rate', nan):>7.3f} "
        f"{r.get('length/mean', nan):>5.0f} "
        f"{r.get('length/clip_ratio', nan):>6.3f} {r.get('reflection/per_response', nan):>8.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(_USAGE + "\n\n" + (__doc__ or ""))
        print(config_help(EvalConfig()))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = build_config(argv)
        compare = suite_paper(argv, cfg)
        previous = _load_previous(cfg.compare)
    except ValueError as exc:
        print(f"r1zero eval: {exc}", file=sys.stderr)
        return 2
    from r1zero.cli import quiet_libraries

    quiet_libraries()
    if cfg.run.threads:
        import torch

        torch.set_num_threads(cfg.run.threads)
    try:
        results = _evaluate(cfg)
    except (ValueError, OSError) as exc:  # data dir, model or settings: say which, no traceback
        print(f"r1zero eval: {exc}", file=sys.stderr)
        return 2
    if not results:
        print(
            f"every checkpoint of {cfg.run_dir} is already evaluated on {', '.join(cfg.benchmarks)} "
            "with these settings; --force re-runs them"
        )
        return 0
    saved, unsaved = _save(results, cfg, argv)
    print(format_table(results))
    if compare is not None:
        print("\n" + paper_table(results, *compare))
    if previous is not None:
        print("\n" + compare_table(results, previous, cfg.compare))
    if cfg.run.out_dir and not cfg.run_dir:
        print(f"per-benchmark results and samples: {cfg.run.out_dir}")
    for path, meant in saved:
        print(f"results: {path}" + (f" ({meant} already exists and is kept)" if path != meant else ""))
    if unsaved:
        print(unsaved, file=sys.stderr)
        return 1
    return 0


def _save(results: list[dict], cfg: EvalConfig, argv: list[str]) -> tuple[list[tuple[Path, Path]], str]:
    """``save_results`` unless ``run.save`` is off: ``(saved, "")``, or ``([], why)`` when it failed (the
    table is still printed)."""
    if not cfg.run.save:
        return [], ""
    try:
        return save_results(results, cfg, suite_name(_suite_spec(argv), cfg.benchmarks)), ""
    except OSError as exc:
        return [], f"r1zero eval: could not save the results: {exc}"


def _load_previous(path: str):
    """The ``--compare`` result file, read before anything runs (a bad one fails in one line)."""
    if not path:
        return None
    try:
        return load_result(path)
    except ValueError as exc:
        raise ValueError(f"--compare {exc}") from None


def _evaluate(cfg: EvalConfig) -> list[dict]:
    """The results to print and save: one per benchmark of a model; for a run, every benchmark of each
    step that had something new to evaluate (earlier lines of ``eval.jsonl`` fill the rest), none when
    there was nothing to do."""
    from r1zero.eval.harness import evaluate_model, evaluate_run, step_results

    if not cfg.run_dir:
        return evaluate_model(cfg.model.name, cfg, cfg.run.out_dir or None)
    new = evaluate_run(cfg.run_dir, cfg)
    settings = result_settings(cfg)
    steps = sorted({line["step"] for line in new})
    return [row for step in steps for row in step_results(cfg.run_dir, step, cfg.benchmarks, settings)]


def save_results(results: list[dict], cfg: EvalConfig, suite: str) -> list[tuple[Path, Path]]:
    """Save one result file per step (one for a model) where ``results.result_dir`` says, never replacing
    a file: ``[(path written, path meant)]`` (they differ when the meant one already existed)."""
    saved = []
    for step in sorted({r.get("step") for r in results}, key=lambda s: -1 if s is None else s):
        rows = [r for r in results if r.get("step") == step]
        model = str(rows[0].get("model", cfg.model.name))
        meant = result_dir(cfg.model.name, cfg.run_dir, cfg.run.out_dir) / result_name(suite, step)
        saved.append((save_result(build_result(rows, model, suite, step, cfg.run_dir), meant), meant))
    return saved


def _suite_spec(argv: list[str]) -> str | None:
    """The ``--config``/``--suite`` file named in ``argv``, if any."""
    return take_option(list(argv), "--config")[0] or take_option(list(argv), "--suite")[0]


if __name__ == "__main__":
    from r1zero.cli import main as r1zero_main

    raise SystemExit(r1zero_main(["eval", *sys.argv[1:]]))
