"""The verifier table: r1zero ``math`` vs math-verify on labelled rows, accuracy, FP, FN, hack FP and speed.

Row sets (each row: response, gold, expected; ``category == "hack"`` marks reward-hacking rows):

- **project**: ``tests/verifiers/rows/*.jsonl`` (written for this project; ``surface.jsonl`` holds the
  surface-form kinds of docs/verifiers.md, the rest predates it);
- **external-tune** / **external-blind** / **external-blind2**: ``data/verifier_external.jsonl`` (Math-Verify's
  own test tables, built by ``bench/verifier_external.py``); the blind splits are scored only with ``--blind``.
  ``blind`` was scored once before its misses were read (:data:`BLIND_SCORED_ONCE`, kept in the results);
  its later figures are no longer blind. ``blind2`` (rows added later) is scored once, by the final run.

Systems: **r1zero** (``verify_batch("math", workers=1)``); **math-verify answer-tag**
(``verify(parse("$gold$"), parse(content of the last <answer> block, else the whole response))``);
**math-verify whole** (the same on the whole response). math-verify runs with its own defaults and
timeouts in one worker process.

Speed: verifications/s on the project rows, one worker per system, in the same run: each worker is
first warmed up on the external rows (imports, parser tables) so that no timed row is a cache hit.
Writes ``bench/results/verifier_table.json`` (one file: the final ``--blind`` run) and prints a markdown table.

    python bench/verifier_table.py [--blind] [--out bench/results/verifier_table.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "verifier_table.json"
#: The one scoring of the blind split, before any of its rows was read (``--blind``, 89 rows; accuracy, FP, FN).
BLIND_SCORED_ONCE = {
    "rows": 89,
    "r1zero": {"accuracy": 0.9438, "fp": 0, "fn": 5, "hack_fp": 0},
    "math_verify_tag": {"accuracy": 0.9775, "fp": 0, "fn": 2, "hack_fp": 0},
    "math_verify_whole": {"accuracy": 0.9101, "fp": 0, "fn": 8, "hack_fp": 0},
}
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|\Z)", re.DOTALL)


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def row_sets(blind: bool) -> dict[str, list[dict]]:
    rows_dir = ROOT / "tests" / "verifiers" / "rows"
    project = [row for path in sorted(rows_dir.glob("*.jsonl")) for row in load(path)]
    external = load(ROOT / "data" / "verifier_external.jsonl")
    sets = {
        "project": project,
        "project-before-surface": [
            r for p in sorted(rows_dir.glob("*.jsonl")) if p.stem != "surface" for r in load(p)
        ],
        "external-tune": [r for r in external if r["split"] == "tune"],
    }
    if blind:
        sets["external-blind"] = [r for r in external if r["split"] == "blind"]
        sets["external-blind2"] = [r for r in external if r["split"] == "blind2"]
        sets["external-all"] = external
    return sets


def _tag_content(response: str) -> str:
    blocks = _ANSWER.findall(response)
    return blocks[-1] if blocks else response


def _math_verify(args: tuple[str, str, str]) -> bool:
    from math_verify import parse, verify

    mode, gold, response = args
    text = _tag_content(response) if mode == "tag" else response
    try:
        return bool(verify(parse(f"${gold}$"), parse(text)))
    except Exception:
        return False


def metrics(rows: list[dict], verdicts: list[bool]) -> dict:
    fp = sum(v and not r["expected"] for r, v in zip(rows, verdicts, strict=True))
    fn = sum(r["expected"] and not v for r, v in zip(rows, verdicts, strict=True))
    hack = sum(
        v and not r["expected"] and r.get("category") == "hack" for r, v in zip(rows, verdicts, strict=True)
    )
    return {
        "rows": len(rows),
        "accuracy": round(1 - (fp + fn) / len(rows), 4),
        "fp": fp,
        "fn": fn,
        "hack_fp": hack,
    }


def run_r1zero(rows: list[dict]) -> list[bool]:
    from r1zero.verifiers.pool import verify_batch

    verdicts = verify_batch("math", [r["response"] for r in rows], [r["gold"] for r in rows], workers=1)
    return [v.correct for v in verdicts]


def timed_speed(warm: list[dict], rows: list[dict]) -> dict:
    """Verifications/s of each system on ``rows``, one fresh worker each, warmed up on ``warm``."""
    from r1zero.verifiers.pool import VerifierPool

    out = {}
    with VerifierPool(1) as pool:
        pool.verify("math", [r["response"] for r in warm], [r["gold"] for r in warm])
        start = time.perf_counter()
        pool.verify("math", [r["response"] for r in rows], [r["gold"] for r in rows])
        out["r1zero"] = round(len(rows) / (time.perf_counter() - start), 1)
    for mode in ("tag", "whole"):
        with mp.get_context("fork").Pool(1) as pool:
            pool.map(_math_verify, [(mode, r["gold"], r["response"]) for r in warm], chunksize=16)
            start = time.perf_counter()
            pool.map(_math_verify, [(mode, r["gold"], r["response"]) for r in rows], chunksize=16)
            out[f"math_verify_{mode}"] = round(len(rows) / (time.perf_counter() - start), 1)
    out["ratio_vs_math_verify_tag"] = round(out["r1zero"] / out["math_verify_tag"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blind", action="store_true", help="also score the blind external split")
    parser.add_argument("--out", type=Path, default=RESULT, help="where to write the results JSON")
    args = parser.parse_args()
    sets = row_sets(args.blind)
    table: dict[str, dict] = {}
    for name, rows in sets.items():
        table[name] = {"r1zero": metrics(rows, run_r1zero(rows))}
        for mode in ("tag", "whole"):
            with mp.get_context("fork").Pool(1) as pool:
                verdicts = pool.map(
                    _math_verify, [(mode, r["gold"], r["response"]) for r in rows], chunksize=16
                )
            table[name][f"math_verify_{mode}"] = metrics(rows, verdicts)
    speed = timed_speed(sets["external-tune"], sets["project"])
    result = {
        "command": "python bench/verifier_table.py" + (" --blind" if args.blind else ""),
        "host": {"cpus": mp.cpu_count(), "python": platform.python_version()},
        "table": table,
        "external_blind_scored_once": BLIND_SCORED_ONCE,
        "verifications_per_s": speed,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print("| rows | n | system | accuracy | FP | FN | hack FP |\n|---|---|---|---|---|---|---|")
    for name, systems in table.items():
        for system, m in systems.items():
            print(
                f"| {name} | {m['rows']} | {system} | {m['accuracy']:.3f} | {m['fp']} | {m['fn']} | {m['hack_fp']} |"
            )
    print(json.dumps(speed))


if __name__ == "__main__":
    main()
