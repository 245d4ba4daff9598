"""Where each benchmark's problems come from: a local JSONL file, a hub dataset, or a task generator.

A benchmark names its verifier here, once; nothing downstream dispatches on benchmark names. Local files
use the shape of ``../shared/data/benchmarks`` (``{"id", "problem", "answer", ...}`` per line; the LICENSES
file there gives each file's origin). ``--data-dir DIR`` points at such a directory, so evaluation runs
offline; without a file, the hub id is tried through ``r1zero.data`` (which fails with a clear message
when there is no network).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from r1zero.data.problem import DataError, Problem

logger = logging.getLogger(__name__)

__all__ = ["BENCHMARKS", "Benchmark", "get_benchmark", "load_benchmark"]


@dataclass(frozen=True)
class Benchmark:
    """One evaluation set.

    Attributes:
        name: Short name used on the command line (``math500``).
        verifier: Registry name of the verifier that scores it.
        file: File name inside ``--data-dir`` (JSONL, one problem per line), if it is a file benchmark.
        hub_id: Hugging Face dataset id for the same problems (used only when no local file is found).
        generator: Task generator name (``r1zero.data.generators``) for synthetic benchmarks.
        size: Problems drawn from a generator.
        seed: Generator seed; kept away from training seeds so evaluation problems are held out.
        question_field: Column holding the question in a local file.
        answer_field: Column holding the gold answer in a local file.
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


#: The benchmarks of the R1-Zero / SimpleRL-Zoo / Dr. GRPO evaluations, plus the synthetic tasks.
BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("gsm8k", "math", file="gsm8k_test.jsonl", hub_id="openai/gsm8k"),
        Benchmark("math500", "math", file="math500_test.jsonl", hub_id="HuggingFaceH4/MATH-500"),
        Benchmark("aime24", "math", file="aime24_test.jsonl", hub_id="HuggingFaceH4/aime_2024"),
        Benchmark("aime25", "math", file="aime25_test.jsonl", hub_id="math-ai/aime25"),
        Benchmark("amc23", "math", file="amc23_test.jsonl", hub_id="zwhe99/amc23"),
        Benchmark("minerva", "math", file="minerva_math_test.jsonl", hub_id="math-ai/minervamath"),
        Benchmark("olympiadbench", "math", file="olympiadbench_test.jsonl", hub_id="Hothan/OlympiadBench"),
        Benchmark("countdown", "countdown", generator="countdown"),
        Benchmark("list_sum", "integer", generator="list_sum"),
    )
}


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name``; a task generator name also works (scored by its own verifier)."""
    if name in BENCHMARKS:
        return BENCHMARKS[name]
    from r1zero.data.generators import available_generators, get_generator

    if name in available_generators():
        return Benchmark(name, get_generator(name).verifier, generator=name)
    raise ValueError(
        f"unknown benchmark {name!r}; valid: {', '.join(BENCHMARKS)} or a task generator "
        f"({', '.join(available_generators())})"
    )


def load_benchmark(
    bench: Benchmark, data_dir: str | Path | None = None, limit: int | None = None
) -> list[Problem]:
    """The benchmark's problems (the first ``limit`` of them), each naming the benchmark's verifier."""
    if bench.generator is not None:
        from r1zero.data.generators import generate

        problems = generate(bench.generator, limit or bench.size, seed=bench.seed)
    elif data_dir is not None and bench.file and (Path(data_dir) / bench.file).is_file():
        problems = _read_jsonl(Path(data_dir) / bench.file, bench, limit)
    else:
        problems = _from_hub(bench, data_dir)
    return problems[:limit] if limit else problems


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

    where = f"{bench.file!r} not found in --data-dir {str(data_dir)!r}" if data_dir else "no --data-dir given"
    source = bench.name if bench.name in DATASETS else bench.hub_id
    logger.info("benchmark %s: %s; trying the hub dataset %s", bench.name, where, source)
    try:
        problems = list(load_problems(source))
    except Exception as exc:
        raise ValueError(
            f"benchmark {bench.name!r}: {where}, and the hub dataset {source!r} could not be loaded "
            f"({exc}); pass --data-dir DIR holding {bench.file}"
        ) from exc
    return [Problem(p.id, p.question, p.answer, bench.verifier, p.meta) for p in problems]
