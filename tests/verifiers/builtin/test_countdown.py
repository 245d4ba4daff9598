"""The ``countdown`` verifier: a table of (answer, target, numbers, use_all, expected reason)."""

import time
from fractions import Fraction

import pytest

from r1zero.verifiers import get_verifier
from r1zero.verifiers.builtin.countdown import evaluate_expression


def tagged(answer: str) -> str:
    return f"<think>let me try</think> <answer>{answer}</answer>"


N = [3, 5, 7]  # target 22 = 3 * 5 + 7
ROWS = [
    # correct
    ("3 * 5 + 7", "22", N, True, "correct"),
    ("7 + 5 * 3", "22", N, True, "correct"),
    ("(3 * 5) + 7", "22", N, True, "correct"),
    ("((3*5)+7)", "22", N, True, "correct"),
    ("3 × 5 + 7", "22", N, True, "correct"),
    ("3 \\times 5 + 7", "22", N, True, "correct"),
    ("$3 \\cdot 5 + 7$", "22", N, True, "correct"),
    ("3 * 5 + 7 = 22", "22", N, True, "correct"),
    ("3 * 5 + 7.", "22", N, True, "correct"),
    ("7 * 5 - 3 * 1", "32", [7, 5, 3, 1], True, "correct"),
    ("(7 - 3) / 4 * 6", "6", [7, 3, 4, 6], True, "correct"),  # exact rationals
    ("6 / 4 * 2", "3", [6, 4, 2], True, "correct"),  # 1.5 * 2, no float error
    ("1 / 3 * 3 * 5", "5", [1, 3, 3, 5], True, "correct"),  # repeated numbers each used once
    ("100 - 7 ÷ 7", "99", [100, 7, 7], True, "correct"),
    ("-3 + 5 * 5", "22", [3, 5, 5], True, "correct"),  # unary minus
    ("3 * 5", "15", N, False, "correct"),  # subset allowed
    ("7", "7", N, False, "correct"),
    ("98", "98", [98], True, "correct"),
    # wrong value, or wrong use of the numbers
    ("3 * 5 - 7", "22", N, True, "wrong"),
    ("3 * 5", "15", N, True, "wrong"),  # 7 unused
    ("3 * 5 + 7 + 7 - 7", "22", N, True, "wrong"),  # 7 used three times
    ("3 * 5 * 3", "45", N, False, "wrong"),  # 3 used twice in a subset
    ("2 * 11", "22", N, True, "wrong"),  # other numbers
    ("22", "22", N, True, "wrong"),  # the target alone
    ("3 * 5 + 7 = 23", "22", N, True, "rejected"),  # '=' with a wrong right side is not stripped
    ("3 * 5 + 7 + 0", "22", N, True, "wrong"),
    ("7 / (5 - 5)", "22", [7, 5, 5], True, "wrong"),  # division by zero
    ("3 * 5 + 7.0", "22", N, True, "rejected"),  # float literal: not one of the numbers
    # not an expression
    ("3 5 7", "22", N, True, "unparseable"),
    ("(3 * 5 + 7", "22", N, True, "unparseable"),
    ("3 * * 5 + 7", "22", N, True, "unparseable"),
    ("", "22", N, True, "no_answer"),
    # hostile: refused before any arithmetic
    ("__import__('os').system('touch CANARY')", "22", N, True, "rejected"),
    ("open('CANARY', 'w')", "22", N, True, "rejected"),
    ("(3).__class__", "22", N, True, "rejected"),
    ("exec('1')", "22", N, True, "rejected"),
    ("x + 3 * 5 + 7", "22", N, True, "rejected"),
    ("3 ** 5 + 7", "22", N, True, "rejected"),
    ("9**9**9**9", "22", N, True, "rejected"),
    ("3 // 5 + 7", "22", N, True, "rejected"),
    ("3 % 5 + 7", "22", N, True, "rejected"),
    ("3 * 5 + 7 if 1 else 0", "22", N, True, "rejected"),
    ("lambda: 0", "22", N, True, "rejected"),
    ("[3, 5, 7]", "22", N, True, "rejected"),
    ("3 * 5 + 7; 1", "22", N, True, "rejected"),
    ("0x16", "22", N, True, "rejected"),
    ("1_000", "22", N, True, "rejected"),
    ("3 < 5", "22", N, True, "rejected"),
    ("3 * 5 + 7 # comment", "22", N, True, "rejected"),
    ("9" * 50, "22", N, True, "rejected"),  # huge literal
    ("1+" * 150 + "1", "22", N, True, "rejected"),  # too long
    ("(" * 99 + "7" + ")" * 99, "7", [7], True, "correct"),  # deep but short nesting still parses
    ("-" * 190 + "7", "7", [7], True, "correct"),  # 190 unary minuses: bounded, no recursion error
    # bad problem specification: never rewarded
    ("3 * 5 + 7", "twenty-two", N, True, "bad_gold"),
    ("3 * 5 + 7", "22.5", N, True, "bad_gold"),
    ("3 * 5 + 7", "22", None, True, "bad_gold"),
    ("3 * 5 + 7", "22", [], True, "bad_gold"),
    ("3 * 5 + 7", "22", ["3", "5", "7"], True, "bad_gold"),
    ("3 * 5 + 7", "22", N, "yes", "bad_gold"),
]


@pytest.mark.parametrize(("answer", "target", "numbers", "use_all", "reason"), ROWS)
def test_countdown_table(answer, target, numbers, use_all, reason):
    meta = {"use_all": use_all} if numbers is None else {"numbers": numbers, "use_all": use_all}
    verdict = get_verifier("countdown")(tagged(answer), target, **meta)
    assert verdict.reason == reason, verdict
    assert verdict.correct == (reason == "correct")
    assert verdict.reward == (1.0 if reason == "correct" else 0.0)


def test_free_form_and_format():
    verifier = get_verifier("countdown")
    assert verifier("<think>a</think> <answer>3*5+7</answer>", "22", numbers=N).formatted
    assert not verifier("the answer is 3*5+7", "22", numbers=N).formatted
    assert verifier("the answer is 3*5+7", "22", numbers=N).correct
    conflicting = "<think>a</think> <answer>3*5+7</answer> <answer>7+5*3</answer>"
    assert verifier(conflicting, "22", numbers=N).reason == "rejected"
    assert verifier("<think>3*5+7</think>", "22", numbers=N).reason == "no_answer"


def test_use_all_defaults_to_true():
    assert get_verifier("countdown")(tagged("3 * 5"), "15", numbers=N).reason == "wrong"


def test_hostile_sizes_are_fast():
    verifier = get_verifier("countdown")
    start = time.monotonic()
    for text in ["9" * 100_000, "1+" * 50_000 + "1", "(" * 50_000, "<answer>" * 10_000]:
        assert not verifier(text, "22", numbers=N).correct
    assert time.monotonic() - start < 2.0


def test_evaluate_expression_exact():
    assert evaluate_expression("1/3 + 1/6") == (Fraction(1, 2), [1, 3, 1, 6])
    with pytest.raises(ZeroDivisionError):
        evaluate_expression("1/(2-2)")
    with pytest.raises(ValueError):
        evaluate_expression("1 +")


def test_generated_problems_accept_their_witness_and_reject_a_changed_target():
    """Cross-check with r1zero.data's Countdown generator (its meta is what training passes)."""
    import random

    from r1zero.data.countdown import make_countdown

    verifier, rng = get_verifier("countdown"), random.Random(0)
    for _ in range(200):
        _, answer, meta = make_countdown(rng, rng.randint(3, 6))
        response = tagged(meta["witness"])
        assert verifier(response, answer, **meta).reason == "correct", meta
        assert verifier(response, str(int(answer) + 1), **meta).reason == "wrong", meta
