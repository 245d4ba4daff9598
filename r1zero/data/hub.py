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

from r1zero.data.loaders import rows_to_problems
from r1zero.data.problem import DataError, Problem

__all__ = ["DATASETS", "DatasetSpec", "get_dataset_spec", "load_hub"]

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
        url: Download address for sets that are not on the hub.
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


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("gsm8k", "openai/gsm8k", "test", "question", "answer", "after_hashes", config="main"),
        DatasetSpec(
            "math", "DigitalLearningGmbH/MATH-lighteval", "test", "problem", "solution", "last_boxed"
        ),
        DatasetSpec("math500", "HuggingFaceH4/MATH-500", "test", "problem", "answer"),
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


def load_hub(name: str | DatasetSpec, split: str | None = None) -> list[Problem]:
    """Load a standard set (by name, or any ``DatasetSpec``) from the Hugging Face hub or its local cache."""
    spec = name if isinstance(name, DatasetSpec) else get_dataset_spec(name)
    name, split = spec.name, split or spec.split
    if spec.hub_id is None:
        raise DataError(
            f"dataset {name!r} is not on the Hugging Face hub; download {spec.url} and load it with "
            f"load_problems(PATH, spec={name!r}) (CLI: --spec {name})"
        )
    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in _OFFLINE_VARS)
    if not offline and not _hub_reachable():
        raise DataError(_offline_message(spec, split, "huggingface.co cannot be reached"))
    import datasets

    try:
        table = datasets.load_dataset(spec.hub_id, spec.config, split=split)
    except Exception as exc:  # offline mode and missing caches raise a variety of types
        raise DataError(_offline_message(spec, split, f"{type(exc).__name__}: {exc}")) from exc
    rows = list(enumerate(table, start=1))
    return rows_to_problems(
        rows,
        source=f"hf:{spec.hub_id}[{split}]",
        question=spec.question,
        answer=spec.answer,
        answer_rule=spec.answer_rule,
        question_rule=spec.question_rule,
        verifier=spec.verifier,
        id_prefix=f"{name}-{split}",
    )


_OFFLINE_VARS = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


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
