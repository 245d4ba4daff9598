"""Where each benchmark's problems come from: a local JSONL file, a hub dataset, or a task generator.

A benchmark names its verifier here, once; nothing downstream dispatches on benchmark names. Local files
hold ``{"id", "problem", "answer", ...}`` per line. The repository ships GSM8K, MATH-500, AIME24, AMC23 and
OlympiadBench in ``data/benchmarks/`` (``LICENSES.md`` there gives each file's origin), so evaluation runs
offline with no flag. Where a file is looked for (``data_dirs``):

1. ``--data-dir DIR`` (``data_dir=``) when given, and nowhere else;
2. else ``$R1ZERO_DATA_DIR``, then the checkout's ``data/benchmarks/`` (beside the ``r1zero`` package: an
   editable install), then ``./data/benchmarks/``: the first that holds the file.

Without a file, the hub id is tried through ``r1zero.data`` (which fails with a clear message when there
is no network). Minerva Math is not shipped (its problems are CC BY-NC-SA); ``runnable_benchmarks``
drops it from a suite, with a warning that says how to get it, when its file is missing.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import r1zero
from r1zero.data.problem import DataError, Problem

logger = logging.getLogger(__name__)

__all__ = [
    "ALIASES",
    "BENCHMARKS",
    "DATA_DIR_ENV",
    "REPO_DATA_DIR",
    "Benchmark",
    "data_dirs",
    "find_benchmark_file",
    "get_benchmark",
    "load_benchmark",
    "runnable_benchmarks",
    "validate_benchmarks",
]

#: Environment variable naming a directory searched for benchmark files before the checkout's own.
DATA_DIR_ENV = "R1ZERO_DATA_DIR"
#: The repository's ``data/benchmarks/``: present in a checkout (the README's editable install).
REPO_DATA_DIR = Path(r1zero.__file__).resolve().parents[1] / "data" / "benchmarks"


@dataclass(frozen=True)
class Benchmark:
    """One evaluation set.

    Attributes:
        name: Short name used on the command line (``math500``).
        verifier: Registry name of the verifier that scores it.
        file: File name in a data directory (``data_dirs``), JSONL, one problem per line, if it is a file
            benchmark.
        hub_id: Hugging Face dataset id for the same problems (used only when no local file is found).
        generator: Task generator name (``r1zero.data.generators``) for synthetic benchmarks.
        size: Problems drawn from a generator.
        seed: Generator seed; kept away from training seeds so evaluation problems are held out.
        question_field: Column holding the question in a local file.
        answer_field: Column holding the gold answer in a local file.
        not_shipped: Why ``file`` is not in ``data/benchmarks/`` and how to get it, for a file the
            repository cannot ship; when set and the file is missing, a suite skips the benchmark.
    """

    name: str
    verifier: str
    file: str | None = None
    hub_id: str | None = None
    generator: str | None = None
    size: int = 200
    seed: int = 1_000_003
    question_field: str = "problem"
    answer_field: str = "answer"
    not_shipped: str | None = None


_MINERVA_NOTE = (
    "not shipped with r1zero (MIT OpenCourseWare problems, CC BY-NC-SA 4.0); data/benchmarks/LICENSES.md "
    "says how to get it: save it as minerva_math_test.jsonl in data/benchmarks/ or in $R1ZERO_DATA_DIR, "
    "or pass --data-dir DIR holding it"
)


#: The benchmarks of the R1-Zero / SimpleRL-Zoo / Dr. GRPO evaluations, plus the synthetic tasks.
BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("gsm8k", "math", file="gsm8k_test.jsonl", hub_id="openai/gsm8k"),
        Benchmark("math500", "math", file="math500_test.jsonl", hub_id="HuggingFaceH4/MATH-500"),
        Benchmark("aime24", "math", file="aime24_test.jsonl", hub_id="HuggingFaceH4/aime_2024"),
        Benchmark("aime25", "math", file="aime25_test.jsonl", hub_id="math-ai/aime25"),
        Benchmark("amc23", "math", file="amc23_test.jsonl", hub_id="zwhe99/amc23"),
        Benchmark(
            "minerva",
            "math",
            file="minerva_math_test.jsonl",
            hub_id="math-ai/minervamath",
            not_shipped=_MINERVA_NOTE,
        ),
        Benchmark("olympiadbench", "math", file="olympiadbench_test.jsonl", hub_id="Hothan/OlympiadBench"),
        Benchmark("countdown", "countdown", generator="countdown"),
        Benchmark("list_sum", "integer", generator="list_sum"),
    )
}


#: Other accepted names: ``minerva_math`` is the name Minerva's data file uses.
ALIASES: dict[str, str] = {"minerva_math": "minerva"}


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name`` (or an alias); a task generator name also works (scored by its own
    verifier).

    >>> get_benchmark("minerva_math").name
    'minerva'
    """
    name = ALIASES.get(name, name)
    if name in BENCHMARKS:
        return BENCHMARKS[name]
    from r1zero.data.generators import available_generators, get_generator

    if name in available_generators():
        return Benchmark(name, get_generator(name).verifier, generator=name)
    raise ValueError(_unknown_message(name))


def validate_benchmarks(names: Sequence[str]) -> list[str]:
    """The canonical names of ``names`` (aliases resolved, repeats dropped), checked before any work.

    Raises:
        ValueError: naming the first unknown name, the valid ones and the closest match.

    >>> validate_benchmarks(["gsm8k", "minerva_math", "list_sum"])
    ['gsm8k', 'minerva', 'list_sum']
    >>> validate_benchmarks(["math50"])
    Traceback (most recent call last):
    ...
    ValueError: unknown benchmark 'math50' (did you mean 'math500'?); valid: gsm8k, math500, ...
    """
    if isinstance(names, str):
        raise ValueError(f"benchmark names must be a list, got the string {names!r}")
    canonical: list[str] = []
    for name in names:
        bench = get_benchmark(name.strip() if isinstance(name, str) else name)
        if bench.name not in canonical:
            canonical.append(bench.name)
    return canonical


def runnable_benchmarks(names: Sequence[str], data_dir: str | Path | None = None) -> list[str]:
    """``validate_benchmarks(names)`` less the benchmarks whose data the repository cannot ship and that
    are not found locally (Minerva), each dropped with a warning that names its file and how to get it.

    For suites: six benchmarks minus Minerva is still an evaluation, while one benchmark alone that
    cannot be loaded is an error, so a lone such name is kept and ``load_benchmark`` explains it.
    """
    canonical = validate_benchmarks(names)
    if len(canonical) < 2:
        return canonical
    kept = []
    for name in canonical:
        bench = get_benchmark(name)
        if bench.not_shipped and find_benchmark_file(bench, data_dir) is None:
            where = ", ".join(str(d) for d in data_dirs(data_dir)) or "no data directory"
            logger.warning(
                "skipping %s: %s not found (searched %s); %s", name, bench.file, where, bench.not_shipped
            )
        else:
            kept.append(name)
    return kept or canonical  # nothing left to run: let load_benchmark say why


def data_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """Directories searched for benchmark files, in order: ``data_dir`` alone when given; else
    ``$R1ZERO_DATA_DIR``, the checkout's ``data/benchmarks/`` and ``./data/benchmarks/``, those that exist."""
    if data_dir is not None:
        return [Path(data_dir)]
    candidates = [REPO_DATA_DIR, Path.cwd() / "data" / "benchmarks"]
    if os.environ.get(DATA_DIR_ENV):
        env_dir = Path(os.environ[DATA_DIR_ENV])
        if not env_dir.is_dir():
            raise ValueError(f"{DATA_DIR_ENV}={str(env_dir)!r} is not a directory")
        candidates.insert(0, env_dir)
    found: list[Path] = []
    for path in candidates:
        if path.is_dir() and path.resolve() not in {p.resolve() for p in found}:
            found.append(path)
    return found


def find_benchmark_file(bench: Benchmark, data_dir: str | Path | None = None) -> Path | None:
    """The first ``data_dirs(data_dir)`` entry holding ``bench.file``, or None (also for generators)."""
    if not bench.file:
        return None
    for directory in data_dirs(data_dir):
        if (directory / bench.file).is_file():
            return directory / bench.file
    return None


def load_benchmark(
    bench: Benchmark, data_dir: str | Path | None = None, limit: int | None = None
) -> list[Problem]:
    """The benchmark's problems (the first ``limit`` of them), each naming the benchmark's verifier."""
    if bench.generator is not None:
        from r1zero.data.generators import generate

        problems = generate(bench.generator, limit or bench.size, seed=bench.seed)
    elif (path := find_benchmark_file(bench, data_dir)) is not None:
        problems = _read_jsonl(path, bench, limit)
    else:
        problems = _from_hub(bench, data_dir)
    return problems[:limit] if limit else problems


def _unknown_message(name: object) -> str:
    from r1zero.data.generators import available_generators

    valid = [*BENCHMARKS, *ALIASES]
    close = difflib.get_close_matches(str(name), valid + available_generators(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"unknown benchmark {name!r}{hint}; valid: {', '.join(valid)} or a task generator "
        f"({', '.join(available_generators())})"
    )


def _read_jsonl(path: Path, bench: Benchmark, limit: int | None) -> list[Problem]:
    problems: list[Problem] = []
    with path.open(encoding="utf-8") as f:
        for row_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            for column in (bench.question_field, bench.answer_field):
                if not isinstance(row.get(column), str) or not row[column].strip():
                    raise DataError("missing or empty", file=str(path), row=row_number, column=column)
            pid = str(row.get("id", f"{bench.name}-{row_number - 1:05d}"))
            meta = {k: v for k, v in row.items() if k not in ("id", bench.question_field, bench.answer_field)}
            problems.append(
                Problem(pid, row[bench.question_field], row[bench.answer_field], bench.verifier, meta)
            )
            if limit and len(problems) >= limit:
                break
    if not problems:
        raise DataError("no problems", file=str(path))
    return problems


def _from_hub(bench: Benchmark, data_dir: str | Path | None) -> list[Problem]:
    """Through ``r1zero.data.load_problems`` (its standard-set answer rules), by name or hub id."""
    from r1zero.data.sources import DATASETS, load_problems

    searched = ", ".join(str(d) for d in data_dirs(data_dir)) or "no data directory"
    where = (
        f"{bench.file!r} not found in --data-dir {str(data_dir)!r}"
        if data_dir
        else f"{bench.file!r} not found"
    )
    source = bench.name if bench.name in DATASETS else bench.hub_id
    logger.info(
        "benchmark %s: %s (searched %s); trying the hub dataset %s", bench.name, where, searched, source
    )
    try:
        problems = list(load_problems(source))
    except Exception as exc:
        if bench.not_shipped:  # one line: the file, why it is missing, how to get it
            raise ValueError(
                f"benchmark {bench.name!r}: {bench.file} not found (searched {searched}) and the hub copy "
                f"{bench.hub_id} could not be loaded; the file is {bench.not_shipped}"
            ) from exc
        raise ValueError(
            f"benchmark {bench.name!r}: {where}, and the hub dataset {source!r} could not be loaded "
            f"({exc}); pass --data-dir DIR holding {bench.file}"
        ) from exc
    return [Problem(p.id, p.question, p.answer, bench.verifier, p.meta) for p in problems]
