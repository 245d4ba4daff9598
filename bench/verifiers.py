"""Benchmark: r1zero ``math`` vs plain math-verify on the labelled rows, side by side in one run.

For each system and worker count (1 and 2) it scores every row of ``tests/verifiers/rows/*.jsonl``
(``--repeat`` times) and reports accuracy, false positives (rewarded but labelled wrong), false
negatives, false positives on the reward-hacking rows, verifications/s and the workers' CPU ms per item.

- **r1zero**: ``VerifierPool(workers).verify("math", ...)``, the pool behind ``verify_batch`` (worker
  processes, per-item wall-clock limit).
- **math-verify**: ``verify(parse(gold), parse(response))`` with its default (SIGALRM) timeouts, in a
  ``multiprocessing`` pool (SIGALRM works there: each worker runs the call on its main thread).
- **math-verify $gold$**: the same with the gold wrapped in ``$…$``, the common way to feed it a LaTeX
  gold; shown so that plain math-verify is not judged on a gold-parsing quirk alone.
- **math-verify answer-tag** and **math-verify answer-tag $gold$**: math-verify as R1-Zero reward functions
  call it: ``parse`` on the content of the ``<answer>…</answer>`` block (the last one, as TinyZero's
  ``extract_solution`` takes it), or on the whole response when there is none, then
  ``verify(parse(gold), answer)``; the gold plain or in ``$…$`` as above.

Where a math-verify side is right and r1zero is not, the rows are listed under ``disagreements`` (and
counted the other way round), so a win is visible row by row.

Throughput is also measured on the labelled rows with a numeric gold, and on a synthetic numeric
workload (2,000 GSM8K-like tagged answers in ``$…$``, which plain math-verify can read too): the common
case in training. A last micro-benchmark times one numeric check in-process.

Timing is fair and steady-state: each system's workers are started once, then before every timed pass
every worker scores all the rows once (warm-up: imports, math-verify's ANTLR parser tables, which
otherwise cost a cold worker ~4x on its first LaTeX, sympy's caches), and then every per-string cache
is cleared in every worker (r1zero's gold/answer caches and
math-verify's ``parse_latex_cached``/``parse_expr_cached``/``extract_latex``), so no timed item is a
cache hit left by the warm-up. Each (system, workers) pass is repeated ``--trials`` times, interleaved
(1 and 2 workers, all systems, in turn) with the load average recorded before each pass; the table
gives the median. A pass over the 392 rows lasts ~0.1-0.3 s, so on a shared machine its wall-clock
throughput swings with the load (``verifications_per_s_trials``); the workers' CPU ms per item is the
steadier figure. Writes ``bench/results/verifiers.json`` and prints markdown tables.

Caches, said plainly: r1zero caches each distinct gold's reading (and each (gold, answer) check) and
math-verify caches each LaTeX string's parse. The pool passes above are **cold**: every such cache is
empty when a pass starts, so only a gold or answer repeated inside the pass hits. Two more figures:

- **In-process, per category** (``in_process``): one pass over the rows in this process, single worker,
  CPU ms per category, r1zero ``math`` run as inside a worker (no sandbox round trip, as in the pool) vs
  plain math-verify; **cold** (caches cleared before the pass) and **warm** (the same pass again with
  nothing cleared: every gold and answer seen before, as when all G samples of a prompt give the same
  answer; an upper bound, not the typical case).
- **2 workers vs 1** (``scaling``): the rows replicated ``--scale-repeat`` times (3,136 items at 8), cold
  at the start of each pass; the replicas hit the caches, as GRPO's G samples of one gold do. Each trial
  runs 1 and 2 workers in the same round; the speed-up is the median of those paired ratios. It can
  reach 2 only when two cores are free: the load average before each pass is recorded, and the workers'
  CPU ms per item (the same at 1 and 2 workers when the pool itself scales).

    python bench/verifiers.py [--trials 3] [--repeat 1] [--workers 1 2] [--timeout 5] [--scale-repeat 8]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import multiprocessing as mp
import os
import platform
import re
import statistics
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


#: The ``<answer>`` block of an R1-Zero completion, as reward functions find it with a regex.
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def answer_tag_content(response: str) -> str:
    """The last ``<answer>…</answer>`` content (stripped), else the whole response.

    >>> answer_tag_content("<think>2+2</think> <answer> 4 </answer>"), answer_tag_content("so 4")
    ('4', 'so 4')
    """
    blocks = _ANSWER_TAG.findall(response)
    return blocks[-1].strip() if blocks else response


def answer_tag_math_verify(item: tuple[str, str]) -> bool:
    """math-verify on the answer block: ``verify(parse(gold), parse(answer_tag_content(response)))``."""
    response, gold = item
    return plain_math_verify((answer_tag_content(response), gold))


def answer_tag_math_verify_dollar(item: tuple[str, str]) -> bool:
    """math-verify on the answer block, with the gold wrapped in ``$…$``."""
    response, gold = item
    return plain_math_verify((answer_tag_content(response), f"${gold}$"))


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
        "predicted": [bool(p) for p in predicted],  # per row; turned into ``disagreements``, then dropped
    }
    if reasons is not None:
        result["reasons"] = dict(Counter(reasons))
    return result


def warm_r1zero_worker(response: str, gold: str, *, rows: list[tuple[str, str]], **meta):
    """A "verifier" run once in each r1zero worker: scores every row (warm-up), then clears every
    per-string cache, so that the timed pass starts warm but with no cache hit left by the warm-up."""
    from r1zero.verifiers.base import Verdict
    from r1zero.verifiers.builtin import math as math_verifier

    for item_response, item_gold in rows:
        math_verifier.verify_math(item_response, item_gold)
    clear_r1zero_caches()
    time.sleep(0.2)  # hold this worker, so that the other worker takes the next item
    return Verdict(0.0, False, False, "wrong", str(os.getpid()), {})


def clear_r1zero_caches() -> None:
    """Empty every per-string cache of r1zero's ``math`` (and math-verify's, which it calls)."""
    from r1zero.verifiers.builtin import math as math_verifier
    from r1zero.verifiers.support import symbolic

    for cached in (
        math_verifier._read_gold,
        symbolic.symbolic_check,
        symbolic._parse_gold_symbolic,
        symbolic._fast_read,
        symbolic._fast_equation,
        symbolic._fast_list,
    ):
        cached.cache_clear()
    math_verifier._READABLE.clear()
    _clear_math_verify_caches()


def _clear_math_verify_caches() -> None:
    from math_verify import parser

    for cached in (parser.parse_latex_cached, parser.parse_expr_cached, parser.extract_latex):
        cached.cache_clear()


def warm_plain_worker(task: tuple) -> int:
    """Run once in each plain math-verify worker: scores every row (warm-up), then clears math-verify's
    per-string caches."""
    fn, items = task
    for item in items:
        fn(item)
    _clear_math_verify_caches()
    time.sleep(0.2)  # hold this worker, so that the other worker takes the next item
    return os.getpid()


class R1zeroSystem:
    """r1zero ``math`` in ``verify_batch``'s pool (``VerifierPool``), started once."""

    def __init__(self, workers: int, timeout: float) -> None:
        from r1zero.verifiers.pool import VerifierPool

        self.workers, self.timeout = workers, timeout
        self.pool = VerifierPool(workers)

    def run(self, rows: list[dict], warm_rows: list[dict] | None = None) -> dict:
        responses, golds = [r["response"] for r in rows], [r["gold"] for r in rows]
        self.pool.verify("math", ["<answer>1</answer>"], ["1"], timeout=self.timeout)  # start the workers
        warm = f"{Path(__file__).resolve()}:warm_r1zero_worker"
        warm_items = [(r["response"], r["gold"]) for r in (warm_rows or rows)]
        metas = [{"rows": warm_items}] * self.workers
        pids = self.pool.verify(warm, ["x"] * self.workers, ["x"] * self.workers, metas=metas, timeout=300)
        if len({v.extracted for v in pids}) != self.workers:
            raise RuntimeError(
                f"warm-up reached workers {[v.extracted for v in pids]}, not all {self.workers}"
            )
        pids = [pid for pid in self.pool.pids if pid is not None]
        cpu, start = _cpu_seconds(pids), time.perf_counter()
        verdicts = self.pool.verify("math", responses, golds, timeout=self.timeout)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds(pids) - cpu
        result = score(rows, [v.correct for v in verdicts], seconds, [v.reason for v in verdicts])
        return {**result, "worker_cpu_seconds": round(cpu, 3)}

    def close(self) -> None:
        self.pool.close()


class PlainSystem:
    """Plain math-verify (``fn``) in a ``multiprocessing`` pool, started once."""

    def __init__(self, workers: int, fn) -> None:
        self.workers, self.fn = workers, fn
        self.pool = mp.get_context("spawn").Pool(workers, initializer=_quiet)

    def run(self, rows: list[dict], warm_rows: list[dict] | None = None) -> dict:
        items = [(r["response"], r["gold"]) for r in rows]
        warm_items = [(r["response"], r["gold"]) for r in (warm_rows or rows)]
        pids = self.pool.map(warm_plain_worker, [(self.fn, warm_items)] * self.workers, chunksize=1)
        if len(set(pids)) != self.workers:
            raise RuntimeError(f"warm-up reached workers {pids}, not all {self.workers}")
        cpu, start = _cpu_seconds(pids), time.perf_counter()
        predicted = self.pool.map(self.fn, items, chunksize=16)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds(pids) - cpu
        return {**score(rows, predicted, seconds), "worker_cpu_seconds": round(cpu, 3)}

    def close(self) -> None:
        self.pool.terminate()


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


def in_process(rows: list[dict], passes: int = 3) -> dict:
    """CPU ms per category of one pass over ``rows`` in this process (median of ``passes``), cold and warm,
    for r1zero ``math`` (run as inside a worker: no sandbox round trip) and plain math-verify."""
    from r1zero.verifiers.builtin import math as math_verifier
    from r1zero.verifiers.support import sandbox

    systems = {
        "r1zero math": lambda r: math_verifier.verify_math(r["response"], r["gold"]),
        "math-verify": lambda r: plain_math_verify((r["response"], r["gold"])),
    }
    was_in_worker, sandbox._IN_WORKER = sandbox._IN_WORKER, True
    try:
        for check in systems.values():  # warm-up: imports, parser tables
            for row in rows:
                check(row)
        out: dict[str, dict] = {}
        for name, check in systems.items():
            for mode in ("cold", "warm"):
                runs = []
                for _ in range(passes):
                    clear_r1zero_caches()
                    if mode == "warm":
                        for row in rows:
                            check(row)
                    runs.append(_category_ms(rows, check))
                categories = sorted(runs[0])
                out.setdefault(name, {})[mode] = {
                    c: round(statistics.median(run[c] for run in runs), 1) for c in categories
                }
    finally:
        sandbox._IN_WORKER = was_in_worker
    for modes in out.values():
        for per in modes.values():
            per["total"] = round(sum(per.values()), 1)
            per["ms_per_item"] = round(per["total"] / len(rows), 3)
    return out


def _category_ms(rows: list[dict], check) -> dict[str, float]:
    gc.collect()
    per: dict[str, float] = Counter()
    for row in rows:
        start = time.process_time()
        check(row)
        per[row["category"]] += 1000 * (time.process_time() - start)
    return dict(per)


def scaling(rows: list[dict], repeat: int, timeout: float, trials: int) -> dict:
    """Throughput of 1 and 2 workers on the rows replicated ``repeat`` times (see the module docstring)."""
    replicated = rows * repeat
    factories = {
        "r1zero math": lambda w: R1zeroSystem(w, timeout),
        "math-verify": lambda w: PlainSystem(w, plain_math_verify),
    }
    systems = {(name, w): make(w) for w in (1, 2) for name, make in factories.items()}
    runs: dict[tuple[str, int], list[dict]] = {key: [] for key in systems}
    try:
        for _ in range(trials):
            for key, system in systems.items():
                load = os.getloadavg()[0]
                result = system.run(replicated, warm_rows=rows)
                runs[key].append({**result, "load": round(load, 2)})
    finally:
        for system in systems.values():
            system.close()
    out: dict[str, dict] = {"items": len(replicated)}
    for name in factories:
        per_workers = {}
        for w in (1, 2):
            trials_w = runs[(name, w)]
            per_workers[w] = {
                "verifications_per_s": statistics.median(r["verifications_per_s"] for r in trials_w),
                "verifications_per_s_trials": [r["verifications_per_s"] for r in trials_w],
                "worker_cpu_ms_per_item": round(
                    1000 * statistics.median(r["worker_cpu_seconds"] for r in trials_w) / len(replicated), 3
                ),
                "load_average_1min_before_trials": [r["load"] for r in trials_w],
            }
        out[name] = {
            "1 worker": per_workers[1],
            "2 workers": per_workers[2],
            # Each trial runs 1 and 2 workers in one round: the ratio within a trial is the fair pair.
            "speed-up_trials": [
                round(two["verifications_per_s"] / one["verifications_per_s"], 2)
                for one, two in zip(runs[(name, 1)], runs[(name, 2)], strict=True)
            ],
        }
        out[name]["speed-up"] = statistics.median(out[name]["speed-up_trials"])
    return out


def markdown(results: dict) -> str:
    lines = [
        "| system | workers | accuracy | FP | FN | FP on hack rows | verifications/s | on numeric golds "
        "| numeric workload: verifications/s (accuracy) | worker CPU ms/item | load avg (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        system, workers = key.rsplit("@", 1)
        lines.append(
            f"| {system} | {workers} | {r['accuracy']:.3f} | {r['false_positives']} | {r['false_negatives']} "
            f"| {r['hack_false_positives']} | {r['verifications_per_s']:.0f} "
            f"| {r['numeric_gold_verifications_per_s']:.0f} "
            f"| {r['numeric_workload']['verifications_per_s']:.0f} ({r['numeric_workload']['accuracy']:.3f}) "
            f"| {r['worker_cpu_ms_per_item']:.2f} "
            f"| {statistics.median(r['load_average_1min_before_trials']):.1f} |"
        )
    return "\n".join(lines)


def markdown_in_process(profile: dict) -> str:
    """Categories as rows; r1zero and math-verify, cold and warm, as columns (CPU ms for all rows)."""
    columns = [(name, mode) for name in profile for mode in ("cold", "warm")]
    lines = [
        "| category | " + " | ".join(f"{name} {mode}" for name, mode in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for category in profile["r1zero math"]["cold"]:
        cells = [f"{profile[name][mode][category]:g}" for name, mode in columns]
        label = "**ms per item**" if category == "ms_per_item" else category
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="score each row this many times")
    parser.add_argument("--trials", type=int, default=3, help="timed passes per system (median reported)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run")
    parser.add_argument("--timeout", type=float, default=5.0, help="r1zero per-item time limit (s)")
    parser.add_argument("--scale-repeat", type=int, default=8, help="replicas of the rows for 1 vs 2 workers")
    parser.add_argument("--out", type=Path, default=RESULT, help="where to write the JSON results")
    args = parser.parse_args(argv)
    _quiet()
    labelled = load_rows()
    rows = labelled * args.repeat
    numeric = [r for r in rows if _NUMERIC_GOLD.match(r["gold"])]
    workload = numeric_workload()
    factories = {
        "r1zero math": lambda w: R1zeroSystem(w, args.timeout),
        "math-verify": lambda w: PlainSystem(w, plain_math_verify),
        "math-verify $gold$": lambda w: PlainSystem(w, plain_math_verify_dollar),
        "math-verify answer-tag": lambda w: PlainSystem(w, answer_tag_math_verify),
        "math-verify answer-tag $gold$": lambda w: PlainSystem(w, answer_tag_math_verify_dollar),
    }
    systems = {(name, w): make(w) for w in args.workers for name, make in factories.items()}
    trials: dict[tuple[str, int], list[dict]] = {key: [] for key in systems}
    try:
        for _ in range(args.trials):  # interleaved: every system and worker count in each round
            for key, system in systems.items():
                load = os.getloadavg()[0]
                result = system.run(rows)
                result["numeric_gold"] = system.run(numeric)
                result["numeric_workload"] = system.run(workload)
                result["load_average_1min_before"] = round(load, 2)
                trials[key].append(result)
    finally:
        for system in systems.values():
            system.close()
    results = {f"{name}@{w}": _median_result(runs) for (name, w), runs in trials.items()}
    disagreements = compare_rows(rows, results)
    scale = scaling(labelled, args.scale_repeat, args.timeout, args.trials) if args.scale_repeat else {}
    profile = in_process(labelled)
    micro = per_call_microseconds()
    table = markdown(results)
    table_in_process = markdown_in_process(profile)
    meta = {
        "labelled_rows": len(labelled),
        "repeat": args.repeat,
        "trials": args.trials,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "python": platform.python_version(),
        "math_verify": _version("math-verify"),
        "sympy": _version("sympy"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "meta": meta,
                "results": results,
                "disagreements": disagreements,
                "in_process": profile,
                "scaling": scale,
                "per_call_us_numeric": micro,
                "table": table,
                "table_in_process": table_in_process,
            },
            indent=1,
        )
        + "\n"
    )
    print(table)
    for name, d in disagreements.items():
        print(
            f"\n{name}: right where r1zero math is wrong on {len(d['right_where_r1zero_wrong'])} rows "
            f"{[(r['category'], r['note']) for r in d['right_where_r1zero_wrong']]}; wrong where r1zero is "
            f"right on {d['wrong_where_r1zero_right']} rows"
        )
    print("\nIn-process CPU ms per category, single worker (cold | warm):\n")
    print(table_in_process)
    for name in ("r1zero math", "math-verify") if scale else ():
        one, two = scale[name]["1 worker"], scale[name]["2 workers"]
        print(
            f"\n{name}, {scale['items']} items: 1 worker {one['verifications_per_s']:.0f}/s, 2 workers "
            f"{two['verifications_per_s']:.0f}/s; speed-up x{scale[name]['speed-up']} (median of the paired "
            f"trials {scale[name]['speed-up_trials']}); load before the 2-worker passes "
            f"{two['load_average_1min_before_trials']}"
        )
    return 0


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (Linux ``/proc``; 0 elsewhere).

    On a shared machine the wall clock of 2 workers says how many cores were free; the workers' CPU
    seconds say whether the pool itself scales (the same CPU seconds for the same rows at 1 and 2 workers).
    """
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def compare_rows(rows: list[dict], results: dict) -> dict:
    """For each math-verify side (at its first worker count): the rows it gets right and r1zero ``math``
    gets wrong, and how many rows it gets wrong that r1zero gets right. Pops the per-row predictions."""
    predicted = {key: r.pop("predicted") for key, r in results.items()}
    out: dict[str, dict] = {}
    reference = next(key for key in predicted if key.startswith("r1zero math@"))
    for key, side in predicted.items():
        name = key.rsplit("@", 1)[0]
        if name == "r1zero math" or name in out:
            continue
        wins = [
            {k: row.get(k) for k in ("category", "note", "gold", "expected")}
            | {"response": row["response"][:200]}
            for row, mine, theirs in zip(rows, side, predicted[reference], strict=True)
            if mine == row["expected"] and theirs != row["expected"]
        ]
        losses = sum(
            mine != row["expected"] and theirs == row["expected"]
            for row, mine, theirs in zip(rows, side, predicted[reference], strict=True)
        )
        out[name] = {"right_where_r1zero_wrong": wins, "wrong_where_r1zero_right": losses}
    return out


def _median_result(runs: list[dict]) -> dict:
    """The first run's scores (identical in every run) with the median throughput over the runs."""
    result = {k: v for k, v in runs[0].items() if k not in ("numeric_gold", "numeric_workload")}
    result["verifications_per_s"] = statistics.median(r["verifications_per_s"] for r in runs)
    result["verifications_per_s_trials"] = [r["verifications_per_s"] for r in runs]
    result["worker_cpu_seconds"] = statistics.median(r["worker_cpu_seconds"] for r in runs)
    result["worker_cpu_ms_per_item"] = round(1000 * result["worker_cpu_seconds"] / result["rows"], 2)
    result["load_average_1min_before_trials"] = [r["load_average_1min_before"] for r in runs]
    result["numeric_gold_verifications_per_s"] = statistics.median(
        r["numeric_gold"]["verifications_per_s"] for r in runs
    )
    workload = {
        k: v for k, v in runs[0]["numeric_workload"].items() if k not in ("per_category", "predicted")
    }
    workload["verifications_per_s"] = statistics.median(
        r["numeric_workload"]["verifications_per_s"] for r in runs
    )
    result["numeric_workload"] = workload
    if any(r["accuracy"] != result["accuracy"] for r in runs):
        result["accuracy_trials"] = [r["accuracy"] for r in runs]  # e.g. a timeout under load
    return result


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    raise SystemExit(main())
