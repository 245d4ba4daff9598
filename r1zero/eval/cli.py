"""``r1zero eval``: evaluate a model, or every checkpoint of a run, on benchmarks; print a table.

Examples::

    r1zero eval --model tiny-base --benchmarks list_sum --n 8 --temperature 1.0 --max-new-tokens 128
    r1zero eval --model Qwen/Qwen2.5-Math-1.5B --suite eval/math6.json --backend vllm \\
        --data-dir ../shared/data/benchmarks --out results/qwen-math-1.5b
    r1zero eval --run runs/demo --benchmarks list_sum --n 4
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import fields
from pathlib import Path

from r1zero.eval.harness import EvalConfig, evaluate_model, evaluate_run

__all__ = ["format_table", "main"]

#: settings a suite file may give (command-line flags override them)
_SUITE_KEYS = {f.name for f in fields(EvalConfig)} | {"benchmarks", "description"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="r1zero eval", description=__doc__.split("\n\n")[0])
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--model", help='model directory, hub name, or "tiny-base"')
    target.add_argument("--run", help="run directory: evaluate step 0 and every checkpoint not yet evaluated")
    p.add_argument("--benchmarks", help="comma-separated names (gsm8k,math500,aime24,amc23,minerva,...)")
    p.add_argument("--suite", help="a suite JSON (benchmarks and default settings), e.g. eval/math6.json")
    p.add_argument("--n", type=int, help="samples per problem (default 16)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default 0.6; 0 = greedy)")
    p.add_argument("--top-p", type=float, help="nucleus mass (default 0.95)")
    p.add_argument("--max-new-tokens", type=int, help="completion length cap (default 1024)")
    p.add_argument("--template", help="prompt template name (default r1zero)")
    p.add_argument("--no-think-prefix", action="store_true", help='do not end prompts with "<think>"')
    p.add_argument("--backend", choices=("hf", "fast", "vllm"), help="rollout engine (default hf)")
    p.add_argument("--device", help='"auto" (default), "cpu", "cuda" or "cuda:N"')
    p.add_argument("--data-dir", help="directory with benchmark JSONL files (offline)")
    p.add_argument("--limit", type=int, help="only the first K problems of each benchmark")
    p.add_argument("--out", help="directory for results JSON and per-sample JSONL (with --model)")
    p.add_argument("--seed", type=int, help="sampling and bootstrap seed (default 0)")
    p.add_argument("--batch-size", type=int, help="prompts per generate call (default 64)")
    p.add_argument("--workers", type=int, help="verifier processes (default 1; 0 = in process)")
    p.add_argument("--reflection", help="reflection keyword preset (default r1zero)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def load_suite(spec: str) -> dict:
    """A suite JSON by path, or by name from the repository's ``eval/`` directory."""
    path = Path(spec)
    if not path.is_file():
        path = Path("eval") / f"{spec}.json"
    if not path.is_file():
        raise ValueError(f"suite {spec!r} not found (give a JSON path, or a name in ./eval/)")
    suite = json.loads(path.read_text(encoding="utf-8"))
    unknown = set(suite) - _SUITE_KEYS
    if unknown:
        raise ValueError(f"suite {str(path)!r}: unknown keys {sorted(unknown)}; valid: {sorted(_SUITE_KEYS)}")
    return suite


def _run_defaults(run_dir: Path) -> dict:
    path = run_dir / "config.json"
    if not path.is_file():
        raise ValueError(f"{str(run_dir)!r} is not a run directory: no config.json")
    config = json.loads(path.read_text(encoding="utf-8"))
    data, rollout = config.get("data", {}), config.get("rollout", {})
    out = {"template": data.get("template"), "think_prefix": data.get("think_prefix")}
    out["stop"] = tuple(rollout["stop"]) if rollout.get("stop") else None
    out["max_new_tokens"] = rollout.get("max_new_tokens")
    return {k: v for k, v in out.items() if v is not None}


def build_config(args: argparse.Namespace, suite: dict) -> EvalConfig:
    """Defaults, then the suite's settings, then the command line."""
    values = {k: v for k, v in suite.items() if k not in ("benchmarks", "description")}
    if "stop" in values:
        values["stop"] = tuple(values["stop"])
    flags = {
        "n": args.n,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_new_tokens": args.max_new_tokens,
        "template": args.template,
        "backend": args.backend,
        "device": args.device,
        "limit": args.limit,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "reflection": args.reflection,
    }
    if args.run:  # a run is evaluated with its own template and stop strings unless told otherwise
        values = {**_run_defaults(Path(args.run)), **values}
    values.update({k: v for k, v in flags.items() if v is not None})
    if args.no_think_prefix:
        values["think_prefix"] = False
    return EvalConfig(**values)


def format_table(results: list[dict]) -> str:
    """A plain-text table of the headline numbers, one row per (step and) benchmark.

    >>> print(format_table([{"benchmark": "b", "problems": 2, "n": 4, "pass@1": 0.5, "pass@1_ci": [0.25, 0.75],
    ...     "pass@4": 1.0, "maj@4": 0.5, "format_rate": 1.0, "length/mean": 10.0, "length/clip_ratio": 0.0,
    ...     "reflection/per_response": 0.25, "accuracy/strict": 0.25}]))
    benchmark      problems   n   pass@1  95% CI          pass@n   maj@n  strict  format   len  trunc  reflect
    b                     2   4    0.500  [0.250, 0.750]   1.000   0.500   0.250   1.000    10  0.000    0.250
    """
    head = (
        f"{'benchmark':<14} {'problems':>8} {'n':>3} {'pass@1':>8}  {'95% CI':<15} {'pass@n':>6} {'maj@n':>7} "
        f"{'strict':>7} {'format':>7} {'len':>5} {'trunc':>6} {'reflect':>8}"
    )
    lines = [head]
    for r in results:
        n = r["n"]
        name = r["benchmark"] if "step" not in r else f"{r['benchmark']}@{r['step']}"
        ci = "[{:.3f}, {:.3f}]".format(*r["pass@1_ci"])
        lines.append(
            f"{name:<14} {r['problems']:>8} {n:>3} {r['pass@1']:>8.3f}  {ci:<15} {r[f'pass@{n}']:>6.3f} "
            f"{r[f'maj@{n}']:>7.3f} {r.get('accuracy/strict', float('nan')):>7.3f} {r['format_rate']:>7.3f} "
            f"{r['length/mean']:>5.0f} "
            f"{r['length/clip_ratio']:>6.3f} {r['reflection/per_response']:>8.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        suite = load_suite(args.suite) if args.suite else {}
    except ValueError as exc:
        print(f"r1zero eval: {exc}", file=sys.stderr)
        return 2
    names = args.benchmarks.split(",") if args.benchmarks else suite.get("benchmarks", [])
    if not names:
        print("r1zero eval: give --benchmarks or a --suite that lists them", file=sys.stderr)
        return 2
    try:
        cfg = build_config(args, suite)
    except (TypeError, ValueError) as exc:
        print(f"r1zero eval: {exc}", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    progress = not args.no_progress
    try:
        if args.run:
            results = evaluate_run(args.run, names, cfg, args.data_dir, progress)
            if not results:
                print(f"every checkpoint of {args.run} is already evaluated on {', '.join(names)}")
                return 0
        else:
            results = evaluate_model(args.model, names, cfg, args.data_dir, args.out, progress)
    except (
        ValueError,
        OSError,
    ) as exc:  # bad benchmark, data dir, model or settings: say which, no traceback
        print(f"r1zero eval: {exc}", file=sys.stderr)
        return 2
    print(format_table(results))
    if args.out and args.model:
        print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
