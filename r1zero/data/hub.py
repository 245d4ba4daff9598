"""The standard math sets, one row each in ``DATASETS``: where they live and how their gold is stored.

This table is the only place that knows a dataset's name; every row it produces names its verifier.
Field names follow each set's Hugging Face dataset card. Offline (``HF_DATASETS_OFFLINE=1`` or no route
to huggingface.co) a hub name fails within seconds with a message saying how to load a local copy.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from r1zero.data.loaders import Row, read_rows, rows_to_problems
from r1zero.data.problem import DataError, Problem

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "cache_dir",
    "filter_levels",
    "get_dataset_spec",
    "load_hub",
    "origin_of",
    "parse_levels",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetSpec:
    """Where a standard set lives and how to read it.

    Attributes:
        name: Short name used by ``load_problems`` (``"gsm8k"``).
        hub_id: Hugging Face dataset id, or None for sets distributed as a plain file (see ``url``).
        split: Default split.
        question: Question column (dotted paths reach nested fields); None finds it by name.
        answer: Column holding the gold, or the text it is extracted from; None finds it by name.
        answer_rule: Name in ``r1zero.data.answers.ANSWER_RULES``.
        question_rule: Name in ``r1zero.data.answers.QUESTION_RULES``.
        config: Hugging Face config name, if the set has several.
        verifier: Verifier that checks answers to this set.
        url: Download address for sets that are not on the hub (fetched once into ``cache_dir()``).
        level: Column holding a difficulty level ("Level 3"), for the ``level`` option; None: no levels.
        origin: The collection the set is drawn from when it is part of another (MATH-500 is drawn from
            MATH's test split: origin "math"); None: the set itself. ``origin_of`` uses it.
    """

    name: str
    hub_id: str | None
    split: str
    question: str | None
    answer: str | None
    answer_rule: str = "as_is"
    question_rule: str = "as_is"
    config: str | None = None
    verifier: str = "math"
    url: str | None = None
    level: str | None = None
    origin: str | None = None


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("gsm8k", "openai/gsm8k", "test", "question", "answer", "after_hashes", config="main"),
        DatasetSpec(
            "math",
            "DigitalLearningGmbH/MATH-lighteval",
            "test",
            "problem",
            "solution",
            "last_boxed",
            level="level",
        ),
        DatasetSpec(
            "math500", "HuggingFaceH4/MATH-500", "test", "problem", "answer", level="level", origin="math"
        ),
        DatasetSpec("aime24", "HuggingFaceH4/aime_2024", "train", "problem", "answer", "number"),
        DatasetSpec("aime25", "math-ai/aime25", "test", "problem", "answer", "number"),
        DatasetSpec("amc23", "math-ai/amc23", "test", "question", "answer", "number"),
        DatasetSpec("minerva", "math-ai/minervamath", "test", "question", "answer"),
        DatasetSpec(
            "olympiadbench",
            "Hothan/OlympiadBench",
            "train",
            "question",
            "final_answer",
            "join_list",
            config="OE_TO_maths_en_COMP",
        ),
        DatasetSpec("deepscaler", "agentica-org/DeepScaleR-Preview-Dataset", "train", "problem", "answer"),
        DatasetSpec(
            "dapo17k",
            "BytedTsinghua-SIA/DAPO-Math-17k",
            "train",
            "prompt.0.content",
            "reward_model.ground_truth",
            question_rule="strip_dapo_instruction",
        ),
        DatasetSpec(
            "orz57k",
            None,
            "train",
            "0.value",
            "1.ground_truth.value",
            url="https://github.com/Open-Reasoner-Zero/Open-Reasoner-Zero/raw/main/data/orz_math_57k_collected.json",
        ),
    )
}


def get_dataset_spec(name: str) -> DatasetSpec:
    """The spec called ``name``; unknown names list the valid ones."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def origin_of(name: str, split: str | None = None) -> str:
    """The collection and split a standard set's rows come from: two sets with different origins share
    no source rows (MATH-500 is drawn from MATH's test split, so it is disjoint from MATH's train split).

    >>> origin_of("math500"), origin_of("math", "train"), origin_of("aime24")
    ('math/test', 'math/train', 'aime24/train')
    """
    spec = get_dataset_spec(name)
    return f"{spec.origin or spec.name}/{split or spec.split}"


def parse_levels(text: str) -> tuple[int, ...]:
    """Levels from ``"3-5"``, ``"3+4+5"`` or ``"4"`` (``+`` because ``,`` separates source options).

    >>> parse_levels("3-5"), parse_levels("1+5"), parse_levels("2")
    ((3, 4, 5), (1, 5), (2,))
    """
    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-"))
            levels = tuple(range(low, high + 1))
        else:
            levels = tuple(sorted({int(part) for part in text.split("+")}))
    except ValueError:
        levels = ()
    if not levels:
        raise ValueError(f"level {text!r} is not a level (4), a range (3-5) or a list (1+5)")
    return levels


def filter_levels(rows: list[Row], column: str, levels: tuple[int, ...], source: str) -> list[Row]:
    """The rows whose ``column`` ("Level 3" as in MATH, or 3 as in MATH-500) is one of ``levels``; rows
    with no readable level ("Level ?") are dropped.

    >>> rows = [(1, {"level": "Level 2"}), (2, {"level": "Level 4"}), (3, {"level": 5}), (4, {"level": "Level ?"})]
    >>> [n for n, _ in filter_levels(rows, "level", (3, 4, 5), "x")]
    [2, 3]
    """
    if rows and column not in rows[0][1]:
        raise DataError(
            f"no level column {column!r} to filter on", file=source, row=rows[0][0], column=column
        )
    kept = []
    for number, row in rows:
        digits = str(row.get(column, "")).rsplit(" ", 1)[-1]
        if digits.isdigit() and int(digits) in levels:
            kept.append((number, row))
    if not kept:
        raise DataError(f"no row has level {'/'.join(map(str, levels))}", file=source, column=column)
    return kept


def cache_dir() -> Path:
    """Where sets that are not on the hub are downloaded: ``$R1ZERO_CACHE`` or ``~/.cache/r1zero``."""
    return Path(os.environ.get("R1ZERO_CACHE") or Path.home() / ".cache" / "r1zero") / "datasets"


def load_hub(
    name: str | DatasetSpec, split: str | None = None, levels: tuple[int, ...] = ()
) -> list[Problem]:
    """Load a standard set (by name, or any ``DatasetSpec``) from the Hugging Face hub or its local cache;
    a set published as a plain file (``url``) is downloaded once into ``cache_dir()``. ``levels`` keeps
    the rows of those levels (sets with a ``level`` column only)."""
    spec = name if isinstance(name, DatasetSpec) else get_dataset_spec(name)
    name, split = spec.name, split or spec.split
    if levels and spec.level is None:
        raise ValueError(f"dataset {name!r} has no difficulty levels; drop the level option")
    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in _OFFLINE_VARS)
    if spec.hub_id is None:
        return _load_url(spec, offline)
    if not offline and not _hub_reachable():
        raise DataError(_offline_message(spec, split, "huggingface.co cannot be reached"))
    import datasets

    try:
        table = datasets.load_dataset(spec.hub_id, spec.config, split=split)
    except Exception as exc:  # offline mode and missing caches raise a variety of types
        raise DataError(_offline_message(spec, split, f"{type(exc).__name__}: {exc}")) from exc
    source = f"hf:{spec.hub_id}[{split}]"
    rows = list(enumerate(table, start=1))
    if levels and spec.level:
        rows = filter_levels(rows, spec.level, levels, source)
    return rows_to_problems(
        rows,
        source=source,
        question=spec.question,
        answer=spec.answer,
        answer_rule=spec.answer_rule,
        question_rule=spec.question_rule,
        verifier=spec.verifier,
        id_prefix=f"{name}-{split}",
    )


def _load_url(spec: DatasetSpec, offline: bool) -> list[Problem]:
    """A set published as one file: read from ``cache_dir()``, downloaded there first if missing."""
    url = spec.url or ""
    path = cache_dir() / spec.name / url.rsplit("/", 1)[-1]
    how = (
        f"download {url} and load it with load_problems(PATH, spec={spec.name!r}) "
        f"(CLI: --spec {spec.name}; training: --data.source PATH:spec={spec.name})"
    )
    if not path.is_file():
        if offline or not _reachable(url):
            raise DataError(
                f"dataset {spec.name!r} is not on the Hugging Face hub and {url} cannot be reached; {how}"
            )
        import urllib.request

        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".partial")
        try:
            with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
                out.write(response.read())
        except OSError as exc:
            raise DataError(f"dataset {spec.name!r}: downloading {url} failed ({exc}); {how}") from exc
        partial.replace(path)
        logger.info("downloaded %s to %s", url, path)
    return rows_to_problems(
        read_rows(path),
        source=str(path),
        question=spec.question,
        answer=spec.answer,
        answer_rule=spec.answer_rule,
        question_rule=spec.question_rule,
        verifier=spec.verifier,
        id_prefix=f"{spec.name}-{spec.split}",
    )


def _reachable(url: str, timeout_s: float = 3.0) -> bool:
    host = url.split("://", 1)[-1].split("/", 1)[0]
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


_OFFLINE_VARS = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    return _reachable("https://huggingface.co", timeout_s)


def _offline_message(spec: DatasetSpec, split: str, why: str) -> str:
    config = f" (config {spec.config!r})" if spec.config else ""
    if spec.name in DATASETS:
        how = (
            f"load_problems('path/to/{spec.name}.parquet', spec={spec.name!r}) applies this set's columns and "
            f"answer rule to a local JSONL/JSON/CSV/Parquet file (CLI: r1zero data inspect FILE --spec {spec.name})"
        )
    else:
        how = (
            "load_problems('path/to/file.parquet', question=COLUMN, answer=COLUMN) reads a local "
            "JSONL/JSON/CSV/Parquet file (CLI: r1zero data inspect FILE --question COLUMN --answer COLUMN)"
        )
    return (
        f"could not load dataset {spec.hub_id}{config}, split {split!r}, from the Hugging Face hub ({why}). "
        f"Point at a local copy instead: {how}; a file in the shape {{id, problem, answer}} needs no mapping."
    )
