"""Surface forms: r1zero ``math`` vs math-verify on renderings of the shipped benchmark golds.

For each gold in ``data/benchmarks/*.jsonl`` (MATH-500, GSM8K, AIME 2024, AMC 2023, OlympiadBench) it
writes answers that are equivalent (``expected`` True: the gold boxed, labelled, in display math, with
thousands separators, as a decimal, with a unit, ...) and near misses (``expected`` False: off by one,
the sign, a factor of 10, percent vs fraction, a different sequence, an extra boxed candidate, a digit
changed), each inside ``<answer>…</answer>`` after a think block, and scores every pair with

- **r1zero**: ``verify_batch("math", ..., workers=1)``;
- **math-verify (answer tag)**: ``verify(parse("$gold$"), parse(tag content))`` with math-verify's own
  defaults and timeouts, in one worker process, as R1-Zero reward functions call it.

The generator's label is what the form means, not a grader's opinion: a disagreement between the two
systems is grouped into a class (kind of form x who rewarded it) and each class is adjudicated in
docs/verifiers.md. Writes ``bench/results/verifier_forms.json``.

    python bench/verifier_forms.py [--limit N] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import re
import time
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "verifier_forms.json"
THINK = "<think>Working it out step by step.</think> "
_INT = re.compile(r"-?\d+")
_FRAC = re.compile(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}")
_DECIMAL = re.compile(r"-?\d+\.\d+")


def load_golds() -> list[tuple[str, str]]:
    """(benchmark, gold) for every shipped benchmark row, in file order."""
    golds = []
    for path in sorted((ROOT / "data" / "benchmarks").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                golds.append((path.stem, str(json.loads(line)["answer"]).strip()))
    return golds


def _separated(n: int, sep: str) -> str:
    return f"{n:,}".replace(",", sep)


def _decimal(value: Fraction, places: int) -> str:
    scaled = round(value * 10**places)
    sign = "-" if scaled < 0 else ""
    whole, part = divmod(abs(scaled), 10**places)
    return f"{sign}{whole}.{part:0{places}d}"


def _terminates(value: Fraction) -> bool:
    d = value.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def renderings(gold: str) -> list[tuple[str, str, bool]]:
    """(kind, tag content, expected) for one gold: generic decorations, then forms by the gold's type."""
    out = [
        ("plain", gold, True),
        ("boxed", rf"\boxed{{{gold}}}", True),
        ("label_inline", f"Answer: ${gold}$", True),
        ("display", rf"\[ {gold} \]", True),
        ("final_answer_sentence", f"The final answer is ${gold}$.", True),
        ("extra_candidate", rf"\boxed{{{gold}}}, \boxed{{{gold}+1}}", False),
    ]
    if _INT.fullmatch(gold):
        n = int(gold)
        out += [
            ("int_off_by_one", str(n + 1), False),
            ("int_sign", str(-n) if n else "1", False),
            ("int_factor_10", str(n * 10) if n else "10", False),
            ("int_decimal_zero", f"{n}.0", True),
            ("int_unit_text", rf"{n} \text{{ units}}", True),
            ("int_percent_of_fraction", f"{_decimal(Fraction(n, 100), 2)}\\%" if n else "1\\%", False),
        ]
        if abs(n) >= 1000:
            out += [
                ("int_comma", f"{n:,}", True),
                ("int_comma_thinspace", _separated(n, r",\!"), True),
                ("int_space", _separated(n, " "), True),
                ("int_comma_off", f"{n + 1:,}", False),
            ]
    elif (frac := _FRAC.fullmatch(gold)) is not None and int(frac[3]) != 0:
        value = Fraction(int(frac[2]), int(frac[3])) * (-1 if frac[1] else 1)
        out += [
            ("frac_slash", f"{frac[1]}{frac[2]}/{frac[3]}", True),
            ("frac_reciprocal", rf"{frac[1]}\frac{{{frac[3]}}}{{{frac[2]}}}", value in (1, -1)),
            ("frac_sign", rf"{'' if frac[1] else '-'}\frac{{{frac[2]}}}{{{frac[3]}}}", value == 0),
            (
                "frac_decimal_short",
                _decimal(value, 2),
                _terminates(value) and value == Fraction(_decimal(value, 2)),
            ),
        ]
        if _terminates(value):
            out.append(("frac_decimal_exact", _decimal(value, 12).rstrip("0").rstrip("."), True))
        else:
            out.append(("frac_decimal_long", _decimal(value, 12), True))
    elif _DECIMAL.fullmatch(gold):
        value = Fraction(gold)
        out += [
            ("decimal_comma", gold.replace(".", ","), True),
            (
                "decimal_off",
                _decimal(value + Fraction(1, 10 ** len(gold.split(".")[1])), len(gold.split(".")[1])),
                False,
            ),
        ]
    elif "," in gold and not gold.startswith(("(", "[", "\\left")):
        items = [item.strip() for item in gold.split(",")]
        if len(items) > 1:
            out += [
                ("list_reversed", ", ".join(reversed(items)), True),
                ("list_boxed_each", ", ".join(rf"\boxed{{{item}}}" for item in items), True),
                ("list_dropped", ", ".join(items[:-1]), False),
            ]
    digit = re.search(r"\d", gold)
    if digit is not None and not _INT.fullmatch(gold):
        changed = gold[: digit.start()] + str((int(digit.group()) + 1) % 10) + gold[digit.end() :]
        out.append(("digit_changed", changed, False))
    return out


def make_pairs(golds: list[tuple[str, str]]) -> list[dict]:
    pairs = []
    for benchmark, gold in golds:
        for kind, content, expected in renderings(gold):
            pairs.append(
                {"benchmark": benchmark, "gold": gold, "kind": kind, "content": content, "expected": expected}
            )
    return pairs


def _math_verify_one(args: tuple[str, str]) -> bool:
    from math_verify import parse, verify

    gold, content = args
    try:
        return bool(verify(parse(f"${gold}$"), parse(content)))
    except Exception:
        return False


def score(pairs: list[dict], workers: int) -> tuple[list[bool], list[bool], dict]:
    from r1zero.verifiers.pool import verify_batch

    responses = [f"{THINK}<answer>{p['content']}</answer>" for p in pairs]
    start = time.perf_counter()
    ours = [v.correct for v in verify_batch("math", responses, [p["gold"] for p in pairs], workers=workers)]
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    with mp.get_context("fork").Pool(workers) as pool:
        theirs = pool.map(_math_verify_one, [(p["gold"], p["content"]) for p in pairs], chunksize=64)
    theirs_s = time.perf_counter() - start
    return ours, theirs, {"r1zero_s": round(ours_s, 1), "math_verify_s": round(theirs_s, 1)}


def summarise(pairs: list[dict], ours: list[bool], theirs: list[bool]) -> dict:
    def rates(verdicts: list[bool]) -> dict:
        near = [v for v, p in zip(verdicts, pairs, strict=True) if not p["expected"]]
        same = [v for v, p in zip(verdicts, pairs, strict=True) if p["expected"]]
        return {
            "agree_with_label": round(
                sum(v is p["expected"] for v, p in zip(verdicts, pairs, strict=True)) / len(pairs), 4
            ),
            "near_miss_fp": sum(near),
            "near_miss_fp_rate": round(sum(near) / max(len(near), 1), 4),
            "equivalent_fn": len(same) - sum(same),
            "equivalent_fn_rate": round((len(same) - sum(same)) / max(len(same), 1), 4),
        }

    classes: dict[tuple, list] = defaultdict(list)
    for p, a, b in zip(pairs, ours, theirs, strict=True):
        if a != b:
            classes[(p["kind"], p["expected"], a, b)].append(p)
    table = [
        {
            "kind": kind,
            "expected": expected,
            "r1zero": a,
            "math_verify": b,
            "count": len(rows),
            "examples": [{"gold": r["gold"], "answer": r["content"]} for r in rows[:3]],
        }
        for (kind, expected, a, b), rows in sorted(classes.items(), key=lambda kv: -len(kv[1]))
    ]
    return {
        "pairs": len(pairs),
        "equivalent": sum(p["expected"] for p in pairs),
        "near_miss": sum(not p["expected"] for p in pairs),
        "by_kind": dict(Counter(p["kind"] for p in pairs)),
        "r1zero": rates(ours),
        "math_verify_answer_tag": rates(theirs),
        "disagreements": sum(a != b for a, b in zip(ours, theirs, strict=True)),
        "disagreement_classes": table,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="score only the first N pairs (0: all)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    pairs = make_pairs(load_golds())
    if args.limit:
        pairs = pairs[: args.limit]
    ours, theirs, seconds = score(pairs, args.workers)
    result = {
        "command": "python bench/verifier_forms.py",
        **summarise(pairs, ours, theirs),
        "seconds": seconds,
    }
    RESULT.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        json.dumps(
            {k: v for k, v in result.items() if k not in ("disagreement_classes", "by_kind")}, indent=1
        )
    )
    for row in result["disagreement_classes"]:
        print(
            f"{row['count']:6d}  {row['kind']:28s} expected={row['expected']!s:5s} r1zero={row['r1zero']!s:5s} "
            f"math-verify={row['math_verify']!s:5s}  e.g. {row['examples'][0]}"
        )


if __name__ == "__main__":
    main()
