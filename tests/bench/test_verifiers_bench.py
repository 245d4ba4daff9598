"""bench/verifiers.py's math-verify sides: the answer-block extraction peers use, and the row-by-row
comparison with r1zero that the results file reports."""

from __future__ import annotations

import doctest
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "verifiers.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_verifiers", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.mark.parametrize(
    ("response", "content"),
    [
        ("<think>a</think> <answer>\\frac{1}{2}</answer>", "\\frac{1}{2}"),
        ("<answer>4</answer> <answer>5</answer>", "5"),  # the last block, as TinyZero takes it
        ("<answer>a\nb</answer>", "a\nb"),
        ("<think>a</think> <answer>4", "<think>a</think> <answer>4"),  # unclosed: the whole response
        ("the answer is $4$", "the answer is $4$"),
    ],
)
def test_answer_tag_content(bench, response, content):
    assert bench.answer_tag_content(response) == content


def test_answer_tag_side_parses_the_block_only(bench):
    # The think block's "3" is not read: math-verify sees only "4".
    assert bench.answer_tag_math_verify(("<think>maybe 3</think> <answer>$4$</answer>", "4"))
    assert not bench.answer_tag_math_verify(("<think>maybe 4</think> <answer>$3$</answer>", "4"))
    assert bench.answer_tag_math_verify_dollar(("<answer>\\frac{1}{2}</answer>", "\\frac{1}{2}"))


def test_compare_rows_lists_wins_and_counts_losses(bench):
    rows = [
        {"response": "a", "gold": "1", "expected": True, "category": "numbers", "note": "n1"},
        {"response": "b", "gold": "2", "expected": False, "category": "hack", "note": "h1"},
        {"response": "c", "gold": "3", "expected": True, "category": "symbolic", "note": "s1"},
    ]
    results = {
        "r1zero math@1": {"predicted": [False, False, True]},
        "math-verify answer-tag@1": {"predicted": [True, True, False]},
        "math-verify answer-tag@2": {"predicted": [True, True, False]},
    }
    out = bench.compare_rows(rows, results)
    assert list(out) == ["math-verify answer-tag"]
    assert [r["note"] for r in out["math-verify answer-tag"]["right_where_r1zero_wrong"]] == ["n1"]
    assert out["math-verify answer-tag"]["wrong_where_r1zero_right"] == 2
    assert all("predicted" not in r for r in results.values())


def test_doctests(bench):
    assert doctest.testmod(bench).failed == 0
