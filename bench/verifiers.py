"""Benchmark: r1zero ``math`` vs plain math-verify on the labelled rows, side by side in one run.

For each system and worker count (1 and 2) it scores every row of ``tests/verifiers/rows/*.jsonl``
(``--repeat`` times; GRPO checks each gold G times, and both systems cache parses) and reports accuracy, false positives (rewarded
but labelled wrong), false negatives, false positives on the reward-hacking rows, and verifications/s.

- **r1zero**: ``VerifierPool(workers).verify("math", ...)``, the pool behind ``verify_batch`` (worker
  processes, per-item wall-clock limit).
- **math-verify**: ``verify(parse(gold), parse(response))`` with its default (SIGALRM) timeouts, in a
  ``multiprocessing`` pool (SIGALRM works there: each worker runs the call on its main thread).
- **math-verify $gold$**: the same with the gold wrapped in ``$…$``, the common way to feed it a LaTeX
  gold; shown so that plain math-verify is not judged on a gold-parsing quirk alone.

Throughput is also measured on the labelled rows with a numeric gold, and on a synthetic numeric
workload (2,000 GSM8K-like tagged answers in ``$…$``, which plain math-verify can read too): the common
case in training. Workers are started and warmed before the clock starts. A last micro-benchmark times
one numeric check in-process. Writes ``bench/results/verifiers.json`` and
prints a markdown table.

    python bench/verifiers.py [--repeat 1] [--workers 1 2] [--timeout 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import platform
import re
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS_DIR = ROOT / "tests" / "verifiers" / "rows"
RESULT = ROOT / "bench" / "results" / "verifiers.json"
#: Golds that are plain numbers (most of GSM8K and MATH): the throughput that matters most in training.
_NUMERIC_GOLD = re.compile(r"^-?\d[\d,]*(?:\.\d+)?$")


def load_rows(rows_dir: Path = ROWS_DIR) -> list[dict]:
    """All labelled rows, in file order."""
    return [
        json.loads(line)
        for path in sorted(rows_dir.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def _quiet() -> None:
    logging.disable(logging.WARNING)  # math-verify logs every timeout and its disabled-timeout warning


def plain_math_verify(item: tuple[str, str]) -> bool:
    """Plain math-verify as most reward functions call it: parse both, verify, default timeouts."""
    from math_verify import parse, verify

    response, gold = item
    try:
        return bool(verify(parse(gold), parse(response)))
    except Exception:
        return False


def plain_math_verify_dollar(item: tuple[str, str]) -> bool:
    """Plain math-verify with the gold wrapped in ``$…$``."""
    response, gold = item
    return plain_math_verify((response, f"${gold}$"))


def score(rows: list[dict], predicted: list[bool], seconds: float, reasons: list[str] | None = None) -> dict:
    """Accuracy, false positives/negatives (overall and on hack rows) and throughput of one run."""
    n = len(rows)
    fp = sum(p and not r["expected"] for r, p in zip(rows, predicted, strict=True))
    fn = sum(r["expected"] and not p for r, p in zip(rows, predicted, strict=True))
    hack_fp = sum(
        p and not r["expected"] and r["category"] == "hack" for r, p in zip(rows, predicted, strict=True)
    )
    per_category: dict[str, dict[str, int]] = {}
    for row, p in zip(rows, predicted, strict=True):
        cat = per_category.setdefault(row["category"], {"rows": 0, "right": 0, "fp": 0, "fn": 0})
        cat["rows"] += 1
        cat["right"] += p == row["expected"]
        cat["fp"] += p and not row["expected"]
        cat["fn"] += row["expected"] and not p
    result = {
        "rows": n,
        "accuracy": round((n - fp - fn) / n, 4),
        "false_positives": fp,
        "false_negatives": fn,
        "hack_false_positives": hack_fp,
        "seconds": round(seconds, 3),
        "verifications_per_s": round(n / seconds, 1),
        "per_category": per_category,
    }
    if reasons is not None:
        result["reasons"] = dict(Counter(reasons))
    return result


def run_r1zero(rows: list[dict], workers: int, timeout: float) -> dict:
    """``verify_batch``'s pool, fresh for each run so that no cache carries over from an earlier run."""
    from r1zero.verifiers.pool import VerifierPool

    responses, golds = [r["response"] for r in rows], [r["gold"] for r in rows]
    with VerifierPool(workers) as pool:
        warm = ["<answer>\\sqrt{2}</answer>"] * 2 * workers  # start the workers, import sympy and math-verify
        pool.verify("math", warm, ["\\sqrt{2}"] * len(warm), timeout=timeout)
        start = time.perf_counter()
        verdicts = pool.verify("math", responses, golds, timeout=timeout)
        seconds = time.perf_counter() - start
    return score(rows, [v.correct for v in verdicts], seconds, [v.reason for v in verdicts])


def run_plain(rows: list[dict], workers: int, fn) -> dict:
    items = [(r["response"], r["gold"]) for r in rows]
    with mp.get_context("spawn").Pool(workers, initializer=_quiet) as pool:
        pool.map(fn, [("$\\sqrt{2}$", "\\sqrt{2}")] * 2 * workers, chunksize=1)  # start + warm workers
        start = time.perf_counter()
        predicted = pool.map(fn, items, chunksize=16)
        seconds = time.perf_counter() - start
    return score(rows, predicted, seconds)


def numeric_workload(n: int = 2000) -> list[dict]:
    """GSM8K-like rows: tagged responses with a ``$number$`` answer (right for half), numeric golds.

    The answer is written in ``$…$`` so that plain math-verify finds it too and both do the full job.
    """
    rows = []
    for i in range(n):
        gold = 10 + (i * 37) % 990
        answer = gold if i % 2 == 0 else gold + 1 + i % 7
        response = f"<think>{gold - 3} + 3 = {gold}</think> <answer>${answer}$</answer>"
        rows.append(
            {"response": response, "gold": str(gold), "expected": answer == gold, "category": "numeric"}
        )
    return rows


def per_call_microseconds(calls: int = 2000) -> dict[str, float]:
    """In-process cost of one numeric check, r1zero (exact fast path) vs math-verify (parse + verify).

    The answer is written ``$18$`` so that plain math-verify finds it too: both do the full job.
    """
    from math_verify import parse, verify

    from r1zero.verifiers import get_verifier

    math_check = get_verifier("math")
    response = "<think>16 - 3 - 4 = 9 eggs, 9 * 2 = 18 dollars.</think> <answer>$18$</answer>"
    golds = [str(10 + i % 50) for i in range(calls)]  # 50 distinct golds, each checked many times
    start = time.perf_counter()
    for gold in golds:
        math_check(response, gold)
    r1zero = (time.perf_counter() - start) / calls
    start = time.perf_counter()
    for gold in golds:
        verify(parse(gold), parse(response))
    plain = (time.perf_counter() - start) / calls
    return {"r1zero math": round(r1zero * 1e6, 1), "math-verify": round(plain * 1e6, 1)}


def markdown(results: dict) -> str:
    lines = [
        "| system | workers | accuracy | FP | FN | FP on hack rows | verifications/s | on numeric golds "
        "| numeric workload: verifications/s (accuracy) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        system, workers = key.rsplit("@", 1)
        lines.append(
            f"| {system} | {workers} | {r['accuracy']:.3f} | {r['false_positives']} | {r['false_negatives']} "
            f"| {r['hack_false_positives']} | {r['verifications_per_s']:.0f} "
            f"| {r['numeric_gold_verifications_per_s']:.0f} "
            f"| {r['numeric_workload']['verifications_per_s']:.0f} ({r['numeric_workload']['accuracy']:.3f}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="score each row this many times")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run")
    parser.add_argument("--timeout", type=float, default=5.0, help="r1zero per-item time limit (s)")
    parser.add_argument("--out", type=Path, default=RESULT, help="where to write the JSON results")
    args = parser.parse_args(argv)
    _quiet()
    labelled = load_rows()
    rows = labelled * args.repeat
    results: dict[str, dict] = {}
    numeric = [r for r in rows if _NUMERIC_GOLD.match(r["gold"])]
    workload = numeric_workload()
    systems = {
        "r1zero math": lambda subset, w: run_r1zero(subset, w, args.timeout),
        "math-verify": lambda subset, w: run_plain(subset, w, plain_math_verify),
        "math-verify $gold$": lambda subset, w: run_plain(subset, w, plain_math_verify_dollar),
    }
    for workers in args.workers:
        for name, run in systems.items():
            result = run(rows, workers)
            result["numeric_gold_verifications_per_s"] = run(numeric, workers)["verifications_per_s"]
            result["numeric_workload"] = {
                k: v for k, v in run(workload, workers).items() if k != "per_category"
            }
            results[f"{name}@{workers}"] = result
    micro = per_call_microseconds()
    table = markdown(results)
    meta = {
        "labelled_rows": len(labelled),
        "repeat": args.repeat,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "python": platform.python_version(),
        "math_verify": _version("math-verify"),
        "sympy": _version("sympy"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"meta": meta, "results": results, "per_call_us_numeric": micro, "table": table}, indent=1)
        + "\n"
    )
    print(table)
    print(
        f"\none numeric check in-process: r1zero {micro['r1zero math']} us, math-verify {micro['math-verify']} us"
    )
    print(
        f"\n{len(labelled)} labelled rows x {args.repeat} ({len(numeric)} with a numeric gold); "
        f"{meta['cpu_count']} CPUs, load average {meta['load_average_at_end']}"
    )
    return 0


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    raise SystemExit(main())
