"""Source names resolved without loading (``describe_source``), MATH levels, question hashes, and sets
published as a file (read from the download cache), on small fixture files shaped like each source."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from r1zero.data import load_problems
from r1zero.data.hub import cache_dir, origin_of
from r1zero.data.problem import DataError
from r1zero.data.sources import describe_source, overlap, question_hash

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    ("source", "kind", "split", "origin", "levels"),
    [
        ("math", "dataset", "test", "math/test", ()),
        ("math:train", "dataset", "train", "math/train", ()),
        ("math:train,level=3-5", "dataset", "train", "math/train", (3, 4, 5)),
        ("math500", "dataset", "test", "math/test", ()),
        ("HuggingFaceH4/MATH-500", "dataset", "test", "math/test", ()),
        ("dapo17k", "dataset", "train", "dapo17k/train", ()),
        ("orz57k", "dataset", "train", "orz57k/train", ()),
        ("aime24", "dataset", "train", "aime24/train", ()),
        ("countdown:difficulty=4", "generator", "", "generator:countdown", ()),
        ("someone/set:validation", "hub", "validation", "someone/set/validation", ()),
    ],
)
def test_describe_source_resolves_without_loading(source, kind, split, origin, levels):
    info = describe_source(source)
    assert (info.kind, info.split, info.origin, info.levels) == (kind, split, origin, levels)


def test_describe_source_of_a_file_with_options():
    info = describe_source(f"{FIXTURES / 'math_train.jsonl'}:spec=math,level=4+5")
    assert (info.kind, info.name, info.levels) == ("file", str(FIXTURES / "math_train.jsonl"), (4, 5))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("dapo_math_17k", "did you mean dapo17k"),
        ("math:train,level=hard", "not a level"),
        ("gsm8k:train,level=3", "no difficulty levels"),
        ("math:train,levels=3", "allowed: split, level"),
        ("countdown:size=3", "allowed: n, difficulty, seed"),
    ],
)
def test_describe_source_names_bad_names_and_options(source, message):
    with pytest.raises(ValueError, match=message):
        describe_source(source)


def test_math500_is_drawn_from_maths_test_split():
    assert origin_of("math500") == origin_of("math") == origin_of("math", "test") == "math/test"
    assert origin_of("math", "train") != origin_of("math500")


def test_level_option_keeps_levels_3_to_5_and_drops_unreadable_levels():
    problems = load_problems(FIXTURES / "math_train.jsonl", spec="math", level="3-5")
    assert [(p.id, p.answer) for p in problems] == [
        ("math_train-00002", "4"),
        ("math_train-00003", "6"),
        ("math_train-00004", "10"),
    ]
    assert len(load_problems(FIXTURES / "math_train.jsonl", spec="math")) == 5
    # the same option written after the path, as --data.source takes it
    assert load_problems(f"{FIXTURES / 'math_train.jsonl'}:spec=math,level=4") == problems[1:2]


def test_level_option_on_math500s_integer_levels():
    problems = load_problems(FIXTURES / "math500.jsonl", spec="math500", level="2")
    assert [p.answer for p in problems] == ["23"]


def test_question_hash_folds_case_and_whitespace_only():
    assert question_hash("What is the smallest  prime\ngreater than 20?") == question_hash(
        "what is the smallest prime greater than 20?"
    )
    assert question_hash("What is $3 \\cdot 4$?") != question_hash("What is $3 \\cdot 5$?")
    assert len(question_hash("x")) == 16


@pytest.mark.parametrize(
    ("train", "heldout", "leaked"),
    [
        (("math_train.jsonl", "math"), ("math500.jsonl", "math500"), []),
        (("dapo17k.jsonl", "dapo17k"), ("aime24.jsonl", "aime24"), []),
        (("orz57k.json", "orz57k"), ("math500.jsonl", "math500"), []),
        (("math_train_leaky.jsonl", "math"), ("math500.jsonl", "math500"), ["math500-00001"]),
    ],
)
def test_overlap_by_question_hash_on_fixture_sets(train, heldout, leaked):
    train_problems = load_problems(FIXTURES / train[0], spec=train[1])
    heldout_problems = load_problems(FIXTURES / heldout[0], spec=heldout[1])
    assert [p.id for p in overlap(train_problems, heldout_problems)] == leaked


def test_a_set_published_as_a_file_is_read_from_the_download_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("R1ZERO_CACHE", str(tmp_path))
    with pytest.raises(
        DataError, match=r"cannot be reached; download https://github.com/Open-Reasoner-Zero/"
    ):
        load_problems("orz57k")  # tests run offline (tests/conftest.py)
    cached = cache_dir() / "orz57k" / "orz_math_57k_collected.json"
    cached.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "orz57k.json", cached)
    problems = load_problems("orz57k")
    assert [(p.id, p.question, p.answer) for p in problems] == [
        ("orz57k-train-00001", "Find $x$ if $2x=10$.", "5"),
        ("orz57k-train-00002", "What is $1+2+3$?", "6"),
    ]
