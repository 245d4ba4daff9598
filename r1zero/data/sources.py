"""``load_problems``: the single entry point from any source (task generator, file, dataset name) to problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from r1zero.data.generators import available_generators, generate
from r1zero.data.hub import DATASETS, DatasetSpec, get_dataset_spec, load_hub
from r1zero.data.loaders import SUFFIXES, load_file
from r1zero.data.problem import DataError, Problem
from r1zero.options import did_you_mean

__all__ = ["load_problems", "parse_source"]

_GENERATOR_OPTIONS = ("n", "difficulty", "seed")
_FILE_OPTIONS = ("question", "answer", "id", "answer_rule", "question_rule", "verifier", "spec")
_HUB_OPTIONS = ("split",)
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
              (``"openai/gsm8k"``) (option ``split``);
            - any other hub id ``"owner/name"`` (options ``split`` (default "test"), ``question``,
              ``answer``, ``id``, ``answer_rule``, ``question_rule``, ``verifier``).
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
        return load_hub(name, options.get("split"))
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
    return load_file(path, **options)


def _check_options(options: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {what}; allowed: {', '.join(allowed)}")
