"""``r1zero verify``: score one response, or a JSONL file of labelled rows, from the command line.

    r1zero verify --gold 4 --response "<think>2+2</think> <answer>4</answer>"
    r1zero verify --file rows.jsonl --verifier math --workers 2 --timeout 5

A row is ``{"response": str, "gold": str, "expected": bool?, "category": str?, "verifier": str?,
"meta": dict?}``; other keys are ignored. A row's ``verifier`` must be a registered name (a file of rows
is data, and data never names code to import); ``--verifier`` may also be ``module:function`` or a
``.py`` path, and the names such a file registers may then appear in rows. With ``expected``, the table reports agreement (accuracy),
false positives (rewarded but labelled wrong) and false negatives (labelled right but not rewarded).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from r1zero.verifiers.base import Verdict, get_verifier, registered_verifier
from r1zero.verifiers.pool import verify_batch

__all__ = ["Row", "Stats", "format_table", "main", "read_rows", "summarize"]

#: Files with at least this many rows get a progress bar (unless --no-progress).
PROGRESS_ROWS = 200


class RowError(ValueError):
    """A row of a verify file is malformed; the message names file, line and field."""


@dataclass(frozen=True)
class Row:
    """One labelled row of a verify file."""

    response: str
    gold: str
    expected: bool | None = None
    category: str = "uncategorized"
    verifier: str | None = None
    meta: dict = field(default_factory=dict)
    line: int = 0


@dataclass
class Stats:
    """Counts for one category (or "overall")."""

    rows: int = 0
    labelled: int = 0
    agree: int = 0
    correct: int = 0
    false_pos: int = 0
    false_neg: int = 0
    timeouts: int = 0
    errors: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.agree / self.labelled if self.labelled else None


def read_rows(path: Path) -> list[Row]:
    """Parse a JSONL file of rows; raise RowError naming the file, line and field of the first bad row."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                rows.append(_parse_row(line, f"{path}:{line_number}", line_number))
    return rows


def _parse_row(line: str, where: str, line_number: int) -> Row:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RowError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise RowError(f"{where}: a row must be a JSON object, got {type(data).__name__}")
    for name in ("response", "gold"):
        if name not in data:
            raise RowError(f"{where}: missing field {name!r} (a row needs 'response' and 'gold')")
    gold = data["gold"]
    if isinstance(gold, int | float) and not isinstance(gold, bool):
        gold = str(gold)
    checks = [
        ("response", data["response"], str, "a string"),
        ("gold", gold, str, "a string (or a number)"),
        ("expected", data.get("expected"), bool | None, "true, false or absent"),
        ("category", data.get("category", ""), str, "a string"),
        ("verifier", data.get("verifier"), str | None, "a verifier name or absent"),
        ("meta", data.get("meta", {}), dict, "an object"),
    ]
    for name, value, kind, wanted in checks:
        if not isinstance(value, kind):
            raise RowError(f"{where}: field {name!r} must be {wanted}, got {json.dumps(value)[:60]}")
    if data.get("verifier"):
        try:
            registered_verifier(data["verifier"])
        except ValueError as exc:
            raise RowError(f"{where}: field 'verifier': {exc}") from None
    return Row(
        data["response"],
        gold,
        data.get("expected"),
        data.get("category") or "uncategorized",
        data.get("verifier"),
        data.get("meta", {}),
        line_number,
    )


def summarize(rows: Sequence[Row], verdicts: Sequence[Verdict]) -> dict[str, Stats]:
    """Stats per category plus "overall".

    >>> rows = [Row("a", "1", True, "x"), Row("b", "1", False, "x"), Row("c", "1", True, "y")]
    >>> verdicts = [Verdict(1.0, True, False, "correct"), Verdict(1.0, True, False, "correct"),
    ...             Verdict(0.0, False, False, "timeout")]
    >>> s = summarize(rows, verdicts)
    >>> (s["overall"].agree, s["overall"].false_pos, s["overall"].false_neg, s["y"].timeouts)
    (1, 1, 1, 1)
    """
    stats: dict[str, Stats] = {"overall": Stats()}
    for row, verdict in zip(rows, verdicts, strict=True):
        for key in ("overall", row.category):
            _count(stats.setdefault(key, Stats()), row, verdict)
    return stats


def _count(stats: Stats, row: Row, verdict: Verdict) -> None:
    stats.rows += 1
    stats.correct += verdict.correct
    stats.timeouts += verdict.reason == "timeout"
    stats.errors += verdict.reason == "error"
    if row.expected is not None:
        stats.labelled += 1
        stats.agree += verdict.correct == row.expected
        stats.false_pos += verdict.correct and not row.expected
        stats.false_neg += row.expected and not verdict.correct


def format_table(stats: dict[str, Stats]) -> str:
    """A fixed-width table, "overall" first, then categories by name."""
    header = f"{'category':<24}{'rows':>6}{'accuracy':>10}{'false_pos':>11}{'false_neg':>11}"
    header += f"{'timeouts':>10}{'errors':>8}{'rewarded':>10}"
    lines = [header, "-" * len(header)]
    for name in ["overall", *sorted(k for k in stats if k != "overall")]:
        s = stats[name]
        accuracy = "-" if s.accuracy is None else f"{s.accuracy:.3f}"
        lines.append(
            f"{name[:23]:<24}{s.rows:>6}{accuracy:>10}{s.false_pos:>11}{s.false_neg:>11}"
            f"{s.timeouts:>10}{s.errors:>8}{s.correct:>10}"
        )
    return "\n".join(lines)


def score_rows(
    rows: Sequence[Row], default: str, workers: int, timeout: float, progress: bool
) -> list[Verdict]:
    """Verdicts for rows, in order; rows are grouped by verifier and each group scored in worker processes.

    ``default`` is the caller's spec (any form ``get_verifier`` takes); a row's own verifier must be a
    registered name, checked here for every row before any worker starts, since the workers import
    whatever spec they are given.
    """
    verdicts: list[Verdict | None] = [None] * len(rows)
    groups: dict[str, list[int]] = {}
    for k, row in enumerate(rows):
        if row.verifier:
            registered_verifier(row.verifier)
        groups.setdefault(row.verifier or default, []).append(k)
    for name, indices in groups.items():
        batch = verify_batch(
            name,
            [rows[k].response for k in indices],
            [rows[k].gold for k in indices],
            metas=[rows[k].meta for k in indices],
            workers=workers,
            timeout=timeout,
            progress=progress,
        )
        for k, verdict in zip(indices, batch, strict=True):
            verdicts[k] = verdict
    return verdicts  # type: ignore[return-value]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r1zero verify", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--file", type=Path, help="JSONL file of rows {response, gold[, expected, category, ...]}"
    )
    source.add_argument("--response", help="one model output to score (with --gold)")
    parser.add_argument("--gold", help="the reference answer (with --response)")
    parser.add_argument("--meta", default="{}", help="JSON object of verifier meta (with --response)")
    parser.add_argument(
        "--verifier",
        default="math",
        help="name, 'module:function' or .py path (default: math); a row's own 'verifier' must be a name",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes for --file (default: 1)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per item (default: 5)")
    parser.add_argument("--json", action="store_true", help="print the --file summary as JSON")
    parser.add_argument("--mismatches", action="store_true", help="also list false positives and negatives")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    return parser


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.response is not None:
        return _score_one(parser, args)
    if args.gold is not None:
        parser.error("--gold goes with --response; rows of --file carry their own gold")
    if args.workers < 1 or not math.isfinite(args.timeout) or args.timeout <= 0:
        parser.error(f"--workers must be >= 1 and --timeout > 0, got {args.workers} and {args.timeout}")
    try:
        get_verifier(args.verifier)  # first: the names a --verifier file registers may appear in rows
        rows = read_rows(args.file)
    except (RowError, OSError, ValueError, ImportError) as exc:
        print(f"r1zero verify: {exc}", file=sys.stderr)
        return 2
    progress = len(rows) >= PROGRESS_ROWS if args.progress is None else args.progress
    verdicts = score_rows(rows, args.verifier, args.workers, args.timeout, progress)
    stats = summarize(rows, verdicts)
    if args.json:
        print(json.dumps({k: {**vars(s), "accuracy": s.accuracy} for k, s in stats.items()}, indent=2))
    else:
        print(f"{args.file}: {len(rows)} rows, verifier {args.verifier!r}")
        print(format_table(stats))
    if args.mismatches:
        _print_mismatches(rows, verdicts)
    return 0


def _score_one(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.gold is None:
        parser.error("--response needs --gold")
    try:
        meta = json.loads(args.meta)
        verifier = get_verifier(args.verifier)
    except (ValueError, json.JSONDecodeError) as exc:
        parser.error(str(exc))
    if not isinstance(meta, dict):
        parser.error(f"--meta must be a JSON object, got {args.meta!r}")
    if not math.isfinite(args.timeout) or args.timeout <= 0:
        parser.error(f"--timeout must be a finite number > 0, got {args.timeout}")
    del verifier  # resolved above only to report a bad --verifier here; the worker resolves it again
    # scored in a worker process, so that --timeout bounds a hung verifier here as it does for --file
    [verdict] = verify_batch(args.verifier, [args.response], [args.gold], metas=[meta], timeout=args.timeout)
    print(json.dumps(_finite(verdict).to_dict(), allow_nan=False))
    return 0


def _finite(verdict: Verdict) -> Verdict:
    """``verdict``, or reward 0 with reason "non_finite_reward" where the reward or a part is NaN or
    infinite (JSON has no such numbers)."""
    numbers = [verdict.reward, *verdict.parts.values()]
    if all(isinstance(x, int | float) and math.isfinite(x) for x in numbers):
        return verdict
    return Verdict(0.0, False, verdict.formatted, "non_finite_reward", verdict.extracted, {})


def _print_mismatches(rows: Sequence[Row], verdicts: Sequence[Verdict]) -> None:
    for row, verdict in zip(rows, verdicts, strict=True):
        if row.expected is not None and row.expected != verdict.correct:
            kind = "false_pos" if verdict.correct else "false_neg"
            print(
                f"{kind} line {row.line} [{row.category}] gold={row.gold!r} extracted={verdict.extracted!r} "
                f"reason={verdict.reason}"
            )
