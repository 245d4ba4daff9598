"""Local files (JSONL, JSON, CSV, Parquet) to ``Problem`` records, with column mapping and validation.

Columns are found by name: ``question`` defaults to the first of ``QUESTION_COLUMNS`` present,
``answer`` to the first of ``ANSWER_COLUMNS``. A column may be a dotted path into nested fields
(``reward_model.ground_truth``, ``prompt.0.content``). Every problem in the input gives a clear
``DataError`` naming file, row and column: missing or renamed columns, empty files, duplicate ids,
empty golds, non-string fields, and a ``verifier`` column naming anything but a registered verifier.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from r1zero.data.answers import ANSWER_RULES, QUESTION_RULES
from r1zero.data.problem import DataError, Problem, check_unique_ids

__all__ = ["ANSWER_COLUMNS", "QUESTION_COLUMNS", "SUFFIXES", "load_file", "read_rows", "rows_to_problems"]

logger = logging.getLogger(__name__)

QUESTION_COLUMNS = ("question", "problem", "prompt", "query")
ANSWER_COLUMNS = ("answer", "gold", "final_answer", "target")
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
#: columns that are not copied into meta
_RESERVED = ("meta",)

Row = tuple[int, dict[str, Any]]  # (1-based row number in the file, fields)


def read_rows(path: str | Path) -> list[Row]:
    """Rows of a JSONL / JSON (a list of objects) / CSV / Parquet file, numbered from 1."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"is a directory, not a data file ({', '.join(SUFFIXES)})", file=str(path))
    if not path.is_file():
        raise DataError("file not found", file=str(path))
    suffix = path.suffix.lower()
    readers = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet}
    if suffix not in readers:
        raise DataError(f"unsupported file type {suffix!r}; supported: {', '.join(SUFFIXES)}", file=str(path))
    rows = readers[suffix](path)
    if not rows:
        raise DataError("the file has no rows", file=str(path))
    for number, row in rows:
        if not isinstance(row, dict):
            raise DataError(
                f"expected an object per row, got {type(row).__name__}", file=str(path), row=number
            )
    return rows


def _read_jsonl(path: Path) -> list[Row]:
    """Rows numbered by their 1-based line (blank lines are skipped but counted)."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"invalid JSON (json says: {exc.msg} at line {number}, column {exc.colno})",
                    file=str(path),
                    row=number,
                ) from None
    return rows


def _read_json(path: Path) -> list[Row]:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "[]")
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc.msg} at line {exc.lineno})", file=str(path)) from None
    if not isinstance(data, list):
        raise DataError(f"expected a JSON list of rows, got {type(data).__name__}", file=str(path))
    # A row that is a list (ORZ stores [question turn, answer turn]) gets keys "0", "1", ...
    rows = [{str(k): v for k, v in enumerate(row)} if isinstance(row, list) else row for row in data]
    return list(enumerate(rows, start=1))


def _read_csv(path: Path) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(enumerate(csv.DictReader(handle), start=1))


def _read_parquet(path: Path) -> list[Row]:
    import pyarrow.parquet as pq  # installed with `datasets`

    return list(enumerate(pq.read_table(path).to_pylist(), start=1))


def load_file(
    path: str | Path,
    *,
    question: str | None = None,
    answer: str | None = None,
    id: str | None = None,
    answer_rule: str = "as_is",
    question_rule: str = "as_is",
    verifier: str = "math",
) -> list[Problem]:
    """Problems from a local file; see ``rows_to_problems`` for the mapping arguments.

    A row's own ``verifier`` column, when present, wins over the ``verifier`` argument; it must be a
    registered name (``DataError`` otherwise), while the argument may also be a path.
    """
    path = Path(path)
    return rows_to_problems(
        read_rows(path),
        source=str(path),
        question=question,
        answer=answer,
        id=id,
        answer_rule=answer_rule,
        question_rule=question_rule,
        verifier=verifier,
        id_prefix=path.stem,
    )


def rows_to_problems(
    rows: Iterable[Row],
    *,
    source: str,
    question: str | None = None,
    answer: str | None = None,
    id: str | None = None,
    answer_rule: str = "as_is",
    question_rule: str = "as_is",
    verifier: str = "math",
    id_prefix: str = "row",
) -> list[Problem]:
    """Map and validate rows.

    Args:
        rows: ``(row number, fields)`` pairs.
        source: Name of the file or dataset, used in errors and as ``meta["source"]`` by default.
        question: Column (or dotted path) of the question; None picks the first of ``QUESTION_COLUMNS``.
        answer: Column of the gold; None picks the first of ``ANSWER_COLUMNS``.
        id: Column of the id; None uses an ``id`` column if present, else ``f"{id_prefix}-{row:05d}"``.
        answer_rule: Name in ``ANSWER_RULES`` turning the answer field into the gold string.
        question_rule: Name in ``QUESTION_RULES`` turning the question field into the question.
        verifier: Verifier for rows without their own ``verifier`` column: the caller's spec, so it may
            also be ``module:function`` or a ``.py`` path; a row's own must be a registered name.
        id_prefix: Prefix of generated ids.
    """
    for name, table, kind in (
        (answer_rule, ANSWER_RULES, "answer"),
        (question_rule, QUESTION_RULES, "question"),
    ):
        if name not in table:
            raise ValueError(f"unknown {kind} rule {name!r}; valid: {', '.join(table)}")
    rows = list(rows)
    if not rows:
        raise DataError("no rows", file=source)
    first = rows[0][1]
    question_col = _pick_column(question, QUESTION_COLUMNS, first, source, rows[0][0], "question")
    answer_col = _pick_column(answer, ANSWER_COLUMNS, first, source, rows[0][0], "answer")
    id_col = id if id is not None else ("id" if "id" in first else None)
    used = {question_col, answer_col, id_col, "verifier", *_RESERVED}
    problems = []
    for number, row in rows:
        where = {"file": source, "row": number}
        question_text = _field(row, question_col, question_rule, QUESTION_RULES, where, what="question")
        gold = _field(row, answer_col, answer_rule, ANSWER_RULES, where, what="gold answer")
        problem_id = _row_id(row, id_col, id_prefix, number, where)
        row_verifier = _row_verifier(row.get("verifier"), where) or verifier
        meta = dict(row["meta"]) if isinstance(row.get("meta"), dict) else {}
        meta.update({k: v for k, v in row.items() if k not in used})
        meta.setdefault("source", source)
        problems.append(Problem(problem_id, question_text, gold, row_verifier, meta))
    check_unique_ids(problems, file=source)
    logger.info("loaded %d problems from %s", len(problems), source)
    return problems


def _row_verifier(value: Any, where: dict) -> str | None:
    """A row's own verifier: a registered name only. A row that could name ``module:function`` or a
    ``.py`` file would make loading a dataset run its code; paths come from the caller (``verifier=``,
    ``--data.verifier``)."""
    from r1zero.verifiers.base import registered_verifier

    if value is None or value == "":
        return None
    try:
        registered_verifier(value)
    except ValueError as exc:
        raise DataError(str(exc), column="verifier", **where) from None
    return value


def _pick_column(
    wanted: str | None, candidates: tuple[str, ...], row: dict, source: str, number: int, role: str
) -> str:
    available = ", ".join(map(repr, row)) or "none"
    if wanted is not None:
        if _lookup(row, wanted) is _MISSING:
            raise DataError(
                f"no {role} column {wanted!r}; columns are: {available}",
                file=source,
                row=number,
                column=wanted,
            )
        return wanted
    for candidate in candidates:
        if candidate in row:
            return candidate
    raise DataError(
        f"no {role} column (looked for {', '.join(map(repr, candidates))}); columns are: {available}. "
        f"Name it with {role}=... (CLI: --{role} COLUMN)",
        file=source,
        row=number,
    )


_MISSING = object()


def _lookup(row: dict, column: str) -> Any:
    """``row[column]``, or a dotted path into nested dicts/lists; ``_MISSING`` when absent."""
    if column in row:
        return row[column]
    value: Any = row
    for part in column.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _field(row: dict, column: str, rule: str, rules: dict, where: dict, what: str) -> str:
    value = _lookup(row, column)
    if value is _MISSING:
        fields = ", ".join(map(repr, row)) or "none"
        raise DataError(f"no {what} field {column!r} (fields in this row: {fields})", column=column, **where)
    try:
        text = rules[rule](value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what}: {exc}", column=column, **where) from None
    if not text:
        raise DataError(f"empty {what}", column=column, **where)
    return text


def _row_id(row: dict, column: str | None, prefix: str, number: int, where: dict) -> str:
    if column is None:
        return f"{prefix}-{number:05d}"
    value = _lookup(row, column)
    if value is _MISSING:
        raise DataError("missing id", column=column, **where)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise DataError(f"expected a non-empty string or integer id, got {value!r}", column=column, **where)
    return str(value)
