"""The ``Problem`` record every source is turned into, and the error raised for bad data.

A problem names its own verifier, so nothing downstream dispatches on where a row came from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DataError", "Problem", "check_unique_ids", "problems_to_jsonl", "write_problems"]


class DataError(ValueError):
    """Bad input data; the message names the file, the row (1-based) and the column when known.

    >>> str(DataError("empty gold answer", file="f.jsonl", row=3, column="answer"))
    "f.jsonl, row 3, column 'answer': empty gold answer"
    """

    def __init__(
        self, message: str, *, file: str | None = None, row: int | None = None, column: str | None = None
    ):
        self.file, self.row, self.column, self.detail = file, row, column, message
        where = [part for part in (file, None if row is None else f"row {row}") if part]
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


@dataclass(frozen=True)
class Problem:
    """One task instance: a question, its gold answer and the verifier that checks answers to it.

    Attributes:
        id: Unique within its source (e.g. ``"gsm8k-test-0007"``, ``"countdown-d3-s0-000012"``).
        question: The raw question text; templates turn it into a prompt.
        answer: The gold answer as a string (``"18"``, ``"\\frac{1}{2}"``).
        verifier: Registry name of the verifier (``"math"``, ``"integer"``, ``"countdown"``).
        meta: Anything else (source, difficulty, numbers for Countdown); passed to the verifier.
    """

    id: str
    question: str
    answer: str
    verifier: str
    meta: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in ("id", "question", "answer", "verifier"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise DataError(f"Problem.{name} must be a string, got {type(value).__name__} {value!r}")
        if not isinstance(self.meta, dict):
            raise DataError(f"Problem.meta must be a dict, got {type(self.meta).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "verifier": self.verifier,
            "meta": dict(self.meta),
        }


def problems_to_jsonl(problems: Iterable[Problem]) -> str:
    """Serialise problems as JSONL text, one object per line, byte-stable for equal inputs.

    >>> problems_to_jsonl([Problem("a", "1+1", "2", "integer")])
    '{"id": "a", "question": "1+1", "answer": "2", "verifier": "integer", "meta": {}}\\n'
    """
    return "".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in problems)


def write_problems(problems: Iterable[Problem], path: str | Path) -> Path:
    """Write problems to a JSONL file (read back with ``load_problems(path)``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(problems_to_jsonl(problems), encoding="utf-8")
    return path


def check_unique_ids(problems: list[Problem], file: str | None = None) -> None:
    """Raise ``DataError`` naming both rows when two problems share an id.

    >>> check_unique_ids([Problem("a", "q", "1", "math"), Problem("a", "r", "2", "math")])
    Traceback (most recent call last):
    ...
    r1zero.data.problem.DataError: row 2, column 'id': duplicate id 'a' (first seen in row 1)
    """
    seen: dict[str, int] = {}
    for row, problem in enumerate(problems, start=1):
        if problem.id in seen:
            raise DataError(
                f"duplicate id {problem.id!r} (first seen in row {seen[problem.id]})",
                file=file,
                row=row,
                column="id",
            )
        seen[problem.id] = row
