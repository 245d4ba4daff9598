"""summarize: every benchmark number from hand-built records."""

import pytest

from r1zero.eval.summary import SampleRecord, summarize


def rec(pid, j, correct, extracted, length=10, truncated=False, text="ok", formatted=True):
    return SampleRecord(
        pid,
        j,
        "p",
        text,
        "4",
        correct,
        formatted,
        "correct" if correct else "wrong",
        extracted,
        float(correct),
        length,
        truncated,
        0,
    )


def test_summary_numbers():
    records = [
        [
            rec("a", 0, True, "4", 10),
            rec("a", 1, False, "5", 30),
            rec("a", 2, True, "4", 10, formatted=False),
            rec("a", 3, False, "5", 30),
        ],
        [rec("b", j, False, "7", 20, truncated=(j == 0), text="wait, 7", formatted=j > 1) for j in range(4)],
    ]
    s = summarize(records, preset="simplerl_zoo", n_resamples=200)
    assert s["problems"] == 2 and s["n"] == 4 and s["samples"] == 8
    assert s["pass@1"] == pytest.approx(0.25)
    assert s["pass@2"] == pytest.approx((1 - 1 / 6 + 0) / 2)  # problem a: 1 - C(2,2)/C(4,2)
    assert s["pass@4"] == pytest.approx(0.5)
    assert s["maj@4"] == pytest.approx(0.5)  # a: 2-2 tie, "4" seen first and correct
    assert s["maj@2"] == pytest.approx(0.5)
    assert s["format_rate"] == pytest.approx(5 / 8)
    assert s["accuracy/strict"] == pytest.approx(1 / 8)  # one correct answer is unformatted
    assert s["length/mean"] == pytest.approx(20.0)
    assert s["length/correct_mean"] == pytest.approx(10.0)
    assert s["length/incorrect_mean"] == pytest.approx((2 * 30 + 4 * 20) / 6)
    assert s["length/clip_ratio"] == pytest.approx(1 / 8)
    assert s["reflection/per_response"] == pytest.approx(0.5)
    assert s["reflection/per_response_correct"] == 0.0
    assert s["reasons"] == {"wrong": 6, "correct": 2}
    lo, hi = s["pass@1_ci"]
    assert 0.0 <= lo <= 0.25 <= hi <= 0.5


def test_summary_rejects_ragged():
    with pytest.raises(ValueError, match="same number of samples"):
        summarize([[rec("a", 0, True, "4")], [rec("b", 0, True, "4"), rec("b", 1, True, "4")]])
