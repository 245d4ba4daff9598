"""Behaviour types: golden phrasings per type, rates, and the precision measured on the labelled set."""

import json
from pathlib import Path

import pytest

from r1zero.eval.behaviour_types import BEHAVIOUR_TYPES, behaviour_rates, classify

LABELS = Path(__file__).resolve().parents[2] / "data" / "behaviour_labels.jsonl"


@pytest.mark.parametrize(
    ("text", "types"),
    [
        ("Let me double-check: 7 - 4 = 3.", ("verification",)),
        ("Plugging it back in, 2*3+1 = 7, which checks out.", ("verification",)),
        ("Wait, that is wrong. Let me try again.", ("backtracking",)),
        ("This doesn't work, so let's use a different approach.", ("backtracking",)),
        ("First, we compute the sum. Next, we need to divide it by 3.", ("subgoal",)),
        ("Let's break the problem down into two parts.", ("subgoal",)),
        ("Case 1: n is even. Case 2: n is odd.", ("enumeration",)),
        ("We try all possible values of x.", ("enumeration",)),
        ("3+4=7, 7+2=9, the answer is 9.", ()),
        ("Waiting for the bus is checked daily.", ()),  # no word-boundary match inside other words
    ],
)
def test_classify_golden(text, types):
    assert classify(text) == types


def test_behaviour_rates_hand_computed():
    texts = ["Let me verify the result.", "Wait, that is wrong.", "Case 1: a. Case 2: b.", "9"]
    rates = behaviour_rates(texts, [True, False, True, False])
    assert rates == {
        "behaviour/verification": 0.25,
        "behaviour/backtracking": 0.25,
        "behaviour/subgoal": 0.0,
        "behaviour/enumeration": 0.25,
        "behaviour/any": 0.75,
        "behaviour/effective": 0.5,
        "behaviour/superficial": 0.25,
    }
    with pytest.raises(ValueError, match="3 verdicts for 4"):
        behaviour_rates(texts, [True, False, True])
    with pytest.raises(ValueError, match="at least one"):
        behaviour_rates([])


def _precision():
    rows = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines()]
    out = {}
    for kind in BEHAVIOUR_TYPES:
        predicted = [kind in r["labels"] for r in rows if kind in classify(r["text"])]
        out[kind] = (sum(predicted), len(predicted))
    return len(rows), out


def test_precision_on_labelled_set_is_the_documented_figure():
    # the figures in docs/report.md: true positives / predicted, per type, on 200 hand-labelled texts
    n, precision = _precision()
    assert n == 200
    assert precision == {
        "verification": (17, 21),
        "backtracking": (11, 22),
        "subgoal": (1, 3),
        "enumeration": (3, 3),
    }
