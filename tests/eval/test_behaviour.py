"""Reflection keywords, repetition and length statistics: tables with hand-computed values."""

import pytest

from r1zero.eval.behaviour import (
    REFLECTION_PRESETS,
    count_reflection,
    find_reflection,
    length_stats,
    ngram_repetition,
    percentile,
    reflection_stats,
)


@pytest.mark.parametrize(
    ("text", "preset", "expected"),
    [
        ("Wait, that is wrong.", "simplerl_zoo", 1),
        ("awaiting the bus", "simplerl_zoo", 0),  # upstream's substring count says 1
        ("however, I will retry", "simplerl_zoo", 2),
        ("Let me try  again.", "simplerl_zoo", 1),  # whitespace runs inside a phrase
        ("Alternatively we can rethink", "simplerl_zoo", 2),
        ("unwaiting rechecking", "simplerl_zoo", 0),
        ("wait, then wait.", "open_reasoner_zero", 1),  # ORZ needs the comma
        ("rechecked; recheck,", "open_reasoner_zero", 1),  # recheck[,\s]
        ("recheck the sum", "open_reasoner_zero", 1),
        ("However the sum", "open_reasoner_zero", 0),
        ("Let me re-evaluate and double-check", "dr_grpo", 2),
        ("reevaluate, reconsider, go over the steps", "dr_grpo", 3),
        ("wait", "dr_grpo", 0),  # Dr. GRPO's list has no "wait"
        ("Wait, wait. Let me re-add 3+4.", "r1zero", 2),  # "wait, wait" is one hit, then "let me re-"
        ("double-check and verify again", "r1zero", 2),
    ],
)
def test_reflection_counts(text, preset, expected):
    assert count_reflection(text, preset) == expected


def test_spans_point_at_the_words():
    text = "3+4=8. Wait, 3+4=7. Let me rethink."
    spans = find_reflection(text, "simplerl_zoo")
    assert [text[a:b].lower() for a, b in spans] == ["wait", "rethink"]


def test_custom_word_tuple_and_bad_preset():
    assert count_reflection("Hmm, hmm.", ("hmm",)) == 2
    with pytest.raises(ValueError, match="valid: simplerl_zoo"):
        count_reflection("x", "nope")


def test_default_is_union_of_published_lists():
    default = set(REFLECTION_PRESETS["r1zero"])
    assert set(REFLECTION_PRESETS["simplerl_zoo"]) <= default
    assert set(REFLECTION_PRESETS["dr_grpo"]) <= default


def test_reflection_stats_split():
    texts = ["wait, 5", "5", "rethink: 6", "6", "7"]
    lengths = [10, 10, 20, 30, 30]
    correct = [True, True, False, False, False]
    s = reflection_stats(texts, lengths, correct, preset="simplerl_zoo")
    assert s.per_response == pytest.approx(2 / 5)
    assert s.per_1k_tokens == pytest.approx(1000 * 2 / 100)
    assert s.per_response_correct == pytest.approx(0.5)
    assert s.per_response_incorrect == pytest.approx(1 / 3)
    d = s.to_dict()
    assert d["reflection/per_response"] == pytest.approx(0.4)


def test_reflection_stats_omits_empty_split():
    s = reflection_stats(["a", "b"], [1, 1], [False, False])
    assert s.per_response_correct is None
    assert "reflection/per_response_correct" not in s.to_dict()
    with pytest.raises(ValueError, match="same length"):
        reflection_stats(["a"], [1, 2])


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("a b c d e f", 2, 0.0),
        ("a a a a a", 1, 0.8),
        ("x y x y x y", 2, 1 - 2 / 5),
        ("short", 4, 0.0),
    ],
)
def test_ngram_repetition(text, n, expected):
    assert ngram_repetition(text, n) == pytest.approx(expected)


def test_ngram_repetition_on_token_ids():
    assert ngram_repetition([1, 2, 3] * 10, n=3) == pytest.approx(1 - 3 / 28)


def test_percentile_matches_numpy():
    import numpy as np

    xs = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]
    for q in (0, 10, 37.5, 50, 90, 100):
        assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))


def test_length_stats():
    s = length_stats([10, 20, 30, 100], correct=[True, False, True, False], truncated=[0, 0, 0, 1])
    assert s.mean == 40.0
    assert s.max == 100.0
    assert s.clip_ratio == 0.25
    assert s.correct_mean == 20.0
    assert s.incorrect_mean == 60.0
    d = s.to_dict()
    assert set(d) == {
        "length/mean",
        "length/p10",
        "length/p50",
        "length/p90",
        "length/max",
        "length/clip_ratio",
        "length/correct_mean",
        "length/incorrect_mean",
    }
    assert "length/correct_mean" not in length_stats([5], correct=[False]).to_dict()
