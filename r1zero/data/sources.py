"""``load_problems``: the single entry point from any source (task generator, file, dataset name) to problems."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1zero.data.generators import available_generators, generate
from r1zero.data.hub import (
    DATASETS,
    DatasetSpec,
    filter_levels,
    get_dataset_spec,
    load_hub,
    origin_of,
    parse_levels,
)
from r1zero.data.loaders import SUFFIXES, load_file, read_rows, rows_to_problems
from r1zero.data.problem import DataError, Problem
from r1zero.options import did_you_mean

__all__ = ["SourceInfo", "describe_source", "load_problems", "overlap", "parse_source", "question_hash"]

_GENERATOR_OPTIONS = ("n", "difficulty", "seed")
_FILE_OPTIONS = ("question", "answer", "id", "answer_rule", "question_rule", "verifier", "spec", "level")
_HUB_OPTIONS = ("split", "level")
_BY_HUB_ID = {spec.hub_id: name for name, spec in DATASETS.items() if spec.hub_id}


def parse_source(source: str) -> tuple[str, dict[str, str]]:
    """Split ``"name:key=value,key=value"`` (or ``"name:split"`` for datasets) into name and options.

    >>> parse_source("list_sum:n=100,difficulty=5-8,seed=1")
    ('list_sum', {'n': '100', 'difficulty': '5-8', 'seed': '1'})
    >>> parse_source("gsm8k:train")
    ('gsm8k', {'split': 'train'})
    """
    name, _, rest = source.partition(":")
    options: dict[str, str] = {}
    for part in filter(None, rest.split(",")):
        key, sep, value = part.partition("=")
        if sep:
            options[key.strip()] = value.strip()
        else:
            options["split"] = key.strip()
    return name, options


def load_problems(source: str | Path, **options: Any) -> list[Problem]:
    """Problems from a file path, a task generator, or a standard dataset name.

    Args:
        source: One of
            - a JSONL / JSON / CSV / Parquet file (options: ``question``, ``answer``, ``id``,
              ``answer_rule``, ``question_rule``, ``verifier``, or ``spec="gsm8k"`` to apply a standard
              set's columns and answer rule to a local copy);
            - a registered task generator, ``"list_sum"`` or ``"countdown:n=1000,difficulty=3,seed=0"``
              (options ``n`` (default 1000), ``difficulty``, ``seed``);
            - a dataset name from ``DATASETS``, ``"gsm8k"`` or ``"gsm8k:train"``, or its hub id
              (``"openai/gsm8k"``) (options ``split``, and ``level`` for sets with levels:
              ``"math:train,level=3-5"``);
            - any other hub id ``"owner/name"`` (options ``split`` (default "test"), ``question``,
              ``answer``, ``id``, ``answer_rule``, ``question_rule``, ``verifier``).
            A file's options may also follow its path: ``"orz.json:spec=orz57k"``.
        **options: As above; unknown keys are an error.

    >>> [p.answer for p in load_problems("list_sum:n=2,difficulty=3")]
    ['12', '14']
    """
    if isinstance(source, Path) or Path(str(source)).is_file():
        return _from_file(Path(source), options)
    if Path(str(source)).is_dir():
        raise DataError(f"is a directory, not a data file ({', '.join(SUFFIXES)})", file=str(source))
    name, inline = parse_source(str(source))
    options = {**inline, **options}
    if inline and Path(name).is_file():  # "path/to/file.json:spec=orz57k"
        return _from_file(Path(name), options)
    if name in available_generators():
        _check_options(options, _GENERATOR_OPTIONS, f"task generator {name!r}")
        try:
            return generate(
                name,
                _integer(options, "n", 1000),
                difficulty=options.get("difficulty"),
                seed=_integer(options, "seed", 0),
            )
        except DataError:
            raise
        except ValueError as exc:
            raise ValueError(f"task generator {name!r}: {exc}") from None
    name = _BY_HUB_ID.get(name, name)
    if name in DATASETS:
        _check_options(options, _HUB_OPTIONS, f"dataset {name!r}")
        levels = parse_levels(options["level"]) if "level" in options else ()
        return load_hub(name, options.get("split"), levels)
    if Path(str(source)).suffix.lower() in SUFFIXES or str(source).startswith((".", "/", "~")):
        raise DataError("file not found", file=str(source))
    if name.count("/") == 1:  # any other hub dataset: columns found by name or given as options
        _check_options(options, (*_HUB_OPTIONS, *_FILE_OPTIONS[:-1]), f"hub dataset {name!r}")
        split = options.pop("split", "test")
        spec = DatasetSpec(
            name.replace("/", "_"),
            name,
            split,
            options.pop("question", None),
            options.pop("answer", None),
            **options,
        )
        return load_hub(spec)
    known = [*available_generators(), *DATASETS]
    raise ValueError(
        f"unknown problem source {str(source)!r}{did_you_mean(name, known)}: not a file, not a task "
        f"generator ({', '.join(available_generators())}), not a dataset ({', '.join(DATASETS)})"
    )


def _integer(options: dict[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"option {key}={value!r} is not an integer") from None


def _from_file(path: Path, options: dict[str, Any]) -> list[Problem]:
    _check_options(options, _FILE_OPTIONS, f"file {str(path)!r}")
    options = dict(options)
    spec_name = options.pop("spec", None)
    level = options.pop("level", None)
    if spec_name is not None:
        spec = get_dataset_spec(spec_name)
        mapping = {
            "question": spec.question,
            "answer": spec.answer,
            "answer_rule": spec.answer_rule,
            "question_rule": spec.question_rule,
            "verifier": spec.verifier,
        }
        options = {**mapping, **options}
    if level is None:
        return load_file(path, **options)
    column = get_dataset_spec(spec_name).level if spec_name else "level"
    if column is None:
        raise ValueError(f"dataset {spec_name!r} has no difficulty levels; drop the level option")
    rows = filter_levels(read_rows(path), column, parse_levels(level), str(path))
    return rows_to_problems(rows, source=str(path), id_prefix=path.stem, **options)


def _check_options(options: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {what}; allowed: {', '.join(allowed)}")


def question_hash(question: str) -> str:
    """A question's identity for overlap checks: SHA-256 of its text with case and whitespace folded,
    first 16 hex digits (the same problem rendered by two copies of a set hashes alike).

    >>> question_hash("What is  $1+1$? ") == question_hash("what is $1+1$?")
    True
    >>> question_hash("What is $1+2$?") == question_hash("What is $1+1$?")
    False
    """
    folded = re.sub(r"\s+", " ", question).strip().lower()
    return hashlib.sha256(folded.encode("utf-8")).hexdigest()[:16]


def overlap(train: Iterable[Problem], heldout: Iterable[Problem]) -> list[Problem]:
    """The held-out problems whose ``question_hash`` is also a training problem's.

    >>> train = [Problem("t1", "What is 2+2?", "4", "math")]
    >>> [p.id for p in overlap(train, [Problem("h1", "what is 2+2? ", "4", "math"), Problem("h2", "3+3?", "6", "math")])]
    ['h1']
    """
    seen = {question_hash(p.question) for p in train}
    return [p for p in heldout if question_hash(p.question) in seen]


@dataclass(frozen=True)
class SourceInfo:
    """What a source string names, resolved without loading anything (no hub, no file read).

    Attributes:
        source: The string as given.
        kind: "generator", "dataset", "file" or "hub" (any other hub id).
        name: Generator or dataset name, the file's path or the hub id.
        split: The split read ("" for generators and files).
        origin: The collection and split the rows come from (``r1zero.data.hub.origin_of``); sources
            with different origins share no rows. A generator's is ``"generator:NAME"``.
        levels: Difficulty levels kept (empty: all).
        where: Where the rows come from, for a plan: hub id and split, download URL, or path.
    """

    source: str
    kind: str
    name: str
    split: str
    origin: str
    levels: tuple[int, ...]
    where: str


def describe_source(source: str) -> SourceInfo:
    """Resolve a source string as ``load_problems`` would, without loading it; an unknown name or option
    is a ``ValueError`` naming the valid ones (a file that does not exist yet is not an error).

    >>> info = describe_source("math:train,level=3-5")
    >>> info.kind, info.split, info.origin, info.levels
    ('dataset', 'train', 'math/train', (3, 4, 5))
    >>> describe_source("countdown").origin
    'generator:countdown'
    """
    if Path(source).is_file() or Path(source).suffix.lower() in SUFFIXES:
        return _file_info(source, source, {})
    name, options = parse_source(source)
    if Path(name).suffix.lower() in SUFFIXES:  # "path/to/file.json:spec=orz57k"
        return _file_info(source, name, options)
    if name in available_generators():
        _check_options(options, _GENERATOR_OPTIONS, f"task generator {name!r}")
        return SourceInfo(source, "generator", name, "", f"generator:{name}", (), "generated locally")
    name = _BY_HUB_ID.get(name, name)
    if name in DATASETS:
        _check_options(options, _HUB_OPTIONS, f"dataset {name!r}")
        spec = DATASETS[name]
        split = options.get("split") or spec.split
        levels = parse_levels(options["level"]) if "level" in options else ()
        if levels and spec.level is None:
            raise ValueError(f"dataset {name!r} has no difficulty levels; drop the level option")
        where = f"hf:{spec.hub_id}[{split}]" if spec.hub_id else f"download once: {spec.url}"
        return SourceInfo(source, "dataset", name, split, origin_of(name, split), levels, where)
    if name.count("/") == 1 and not source.startswith((".", "/", "~")):
        _check_options(options, (*_HUB_OPTIONS[:1], *_FILE_OPTIONS[:-2]), f"hub dataset {name!r}")
        split = options.get("split", "test")
        return SourceInfo(source, "hub", name, split, f"{name}/{split}", (), f"hf:{name}[{split}]")
    known = [*available_generators(), *DATASETS]
    raise ValueError(
        f"unknown problem source {source!r}{did_you_mean(name, known)}: not a file, not a task "
        f"generator ({', '.join(available_generators())}), not a dataset ({', '.join(DATASETS)})"
    )


def _file_info(source: str, path: str, options: dict[str, str]) -> SourceInfo:
    _check_options(options, _FILE_OPTIONS, f"file {path!r}")
    spec = get_dataset_spec(options["spec"]) if "spec" in options else None
    levels = parse_levels(options["level"]) if "level" in options else ()
    if levels and spec is not None and spec.level is None:
        raise ValueError(f"dataset {spec.name!r} has no difficulty levels; drop the level option")
    return SourceInfo(source, "file", path, "", f"file:{Path(path).expanduser().resolve()}", levels, path)
