"""The ``integer`` verifier: a table of (response, gold, expected reason)."""

import time

import pytest

from r1zero.verifiers import get_verifier
from r1zero.verifiers.builtin.integer import parse_integer

T = "<think>working</think> "

ROWS = [
    # correct, in many spellings
    (T + "<answer>12</answer>", "12", "correct"),
    (T + "<answer> 12 </answer>", "12", "correct"),
    (T + "<answer>1,234</answer>", "1234", "correct"),
    (T + "<answer>1234</answer>", "1,234", "correct"),
    (T + "<answer>1,234,567</answer>", "1234567", "correct"),
    (T + "<answer>-5</answer>", "-5", "correct"),
    (T + "<answer>−5</answer>", "-5", "correct"),
    (T + "<answer>-5</answer>", "−5", "correct"),
    (T + "<answer>+7</answer>", "7", "correct"),
    (T + "<answer>12.0</answer>", "12", "correct"),
    (T + "<answer>12</answer>", "12.00", "correct"),
    (T + "<answer>$12</answer>", "12", "correct"),
    (T + "<answer>\\$12.00</answer>", "12", "correct"),
    (T + "<answer>12 apples</answer>", "12", "correct"),
    (T + "<answer>12%</answer>", "12", "correct"),
    (T + "<answer>12.</answer>", "12", "correct"),
    (T + "<answer>\\boxed{12}</answer>", "12", "correct"),
    (T + "<answer>$\\boxed{12}$</answer>", "12", "correct"),
    (T + "<answer>x = 12</answer>", "12", "correct"),
    (T + "<answer>12 \\text{ dollars}</answer>", "12", "correct"),
    (T + "<answer>0</answer>", "0", "correct"),
    (T + "<answer>007</answer>", "7", "correct"),
    ("The total is 5 + 7 = 12.\n#### 12", "12", "correct"),
    ("so the answer is 12.", "12", "correct"),
    ("We get \\boxed{1,234}.", "1234", "correct"),
    ("12", "12", "correct"),
    (T + "<answer>12</answer></s>", "12", "correct"),
    # wrong
    (T + "<answer>13</answer>", "12", "wrong"),
    (T + "<answer>12.5</answer>", "12", "wrong"),
    (T + "<answer>-12</answer>", "12", "wrong"),
    (T + "<answer>120</answer>", "12", "wrong"),
    (T + "<answer>1,234</answer>", "1235", "wrong"),
    # hedged, conflicting, several numbers: never rewarded
    (T + "<answer>12 or 13</answer>", "12", "rejected"),
    (T + "<answer>12, 13</answer>", "12", "rejected"),
    (T + "<answer>12-13</answer>", "12", "rejected"),
    (T + "<answer>about 12</answer>", "12", "rejected"),
    (T + "<answer>approximately 12</answer>", "12", "rejected"),
    (T + "<answer>~12</answer>", "12", "rejected"),
    (T + "<answer>≈12</answer>", "12", "rejected"),
    (T + "<answer>at least 12</answer>", "12", "rejected"),
    (T + "<answer>12 or more</answer>", "12", "rejected"),
    (T + "<answer>between 11 and 13</answer>", "12", "rejected"),
    (T + "<answer>12</answer> <answer>13</answer>", "12", "rejected"),
    (T + "<answer>12 ± 1</answer>", "12", "rejected"),
    (T + "<answer>1 234</answer>", "1234", "rejected"),
    (T + "<answer>" + "1" * 300 + "</answer>", "12", "rejected"),
    # nothing usable
    ("", "12", "no_answer"),
    ("<think>the answer is 12", "12", "no_answer"),
    ("<think>12</think>", "12", "no_answer"),
    (T + "<answer>twelve</answer>", "12", "unparseable"),
    (T + "<answer>1,23</answer>", "123", "unparseable"),
    (T + "<answer>12/1</answer>", "12", "rejected"),
    (T + "<answer>__import__('os')</answer>", "12", "unparseable"),
    # the gold itself is not an integer: reward 0, never 1
    (T + "<answer>12</answer>", "twelve", "bad_gold"),
    (T + "<answer>1.5</answer>", "1.5", "bad_gold"),
    (T + "<answer></answer>", "", "bad_gold"),
    (T + "<answer>12</answer>", "12 or 13", "bad_gold"),
]


@pytest.mark.parametrize(("response", "gold", "reason"), ROWS)
def test_integer_table(response, gold, reason):
    verdict = get_verifier("integer")(response, gold)
    assert verdict.reason == reason, verdict
    assert verdict.correct == (reason == "correct")
    assert verdict.reward == (1.0 if reason == "correct" else 0.0)


def test_formatted_flag_and_parts():
    verdict = get_verifier("integer")(T + "<answer>4</answer>", "4")
    assert verdict.formatted and verdict.parts == {"accuracy": 1.0, "format": 0.0}
    assert not get_verifier("integer")("4", "4").formatted


def test_non_string_response_does_not_raise():
    assert get_verifier("integer")(None, "4").reason == "no_answer"
    assert get_verifier("integer")("4", None).reason == "bad_gold"


def test_hostile_sizes_are_fast():
    verifier = get_verifier("integer")
    start = time.monotonic()
    for text in ["9" * 100_000, "1," * 50_000, "<answer>" * 10_000, "(" * 50_000]:
        assert not verifier(text, "12").correct
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize(
    ("text", "value"),
    [("1,234", 1234), ("-0", 0), ("12.000", 12), ("$ 5", 5), ("1,2345", None), ("", None), ("1e3", None)],
)
def test_parse_integer(text, value):
    assert parse_integer(text) == value
