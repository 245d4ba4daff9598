"""The answer policy of the ``math`` verifier (docs/verifiers.md): guards, bad golds, fast paths that agree
with the symbolic path, worker limits, the externally labelled rows."""

import json
import time
from pathlib import Path

import pytest

from r1zero.verifiers import get_verifier
from r1zero.verifiers.extract import boxed_group, extract_answer, gold_boxes
from r1zero.verifiers.support import sandbox
from r1zero.verifiers.support.guards import guard_answer, magnitude_digits

verify = get_verifier("math")
EXTERNAL = Path(__file__).parents[3] / "data" / "verifier_external.jsonl"

HOSTILE = [
    r"(10^{10})^{(10^{10})}",
    r"\binom{10^9}{10^5}",
    r"\binom{1000000000}{100000}",
    r"2^{2^{2^{2^{2^{2}}}}}",
    r"{(10^{10})}^{10^{10}}",
    r"(2^{100})^{(2^{100})}",
    r"(10^{10})!",
    r"(x+1)^{10^{10}}",
]


@pytest.mark.parametrize("answer", HOSTILE)
@pytest.mark.parametrize("gold", ["5", "x+1"])
def test_hostile_answers_are_refused_within_a_tenth_of_a_second(answer, gold):
    verify("<answer>1</answer>", gold)  # the gold's own check (and the sandbox start) is not timed
    start = time.perf_counter()
    verdict = verify(f"<think>a</think> <answer>{answer}</answer>", gold, timeout=5.0)
    elapsed = time.perf_counter() - start
    assert (verdict.reason, verdict.reward) == ("rejected", 0.0)
    assert elapsed <= 0.1, elapsed


@pytest.mark.parametrize(
    "answer",
    [r"x^{100}", r"2^{2^{10}}", r"(x+y+z)^{60}", r"\binom{100}{50}", r"\left(\frac{1}{2}\right)^{1000}"],
)
def test_large_but_real_answers_pass_the_guards(answer):
    assert guard_answer(answer) is None
    assert magnitude_digits(answer) < 1000


@pytest.mark.parametrize("gold", [r"\frac{1}{0}", "1/0", r"5 \div 0", r"\frac{0}{0}", r"\dfrac{3}{ 0 }"])
def test_a_gold_dividing_by_zero_is_bad_gold(gold):
    for response in (f"<answer>{gold}</answer>", "<answer>1</answer>", r"<answer>\infty</answer>"):
        assert (verify(response, gold).reason, verify(response, gold).reward) == ("bad_gold", 0.0)


@pytest.mark.parametrize("gold", ["10/05", "1/0.5", r"\frac{1}{10}", "100"])
def test_a_zero_digit_is_not_a_division_by_zero(gold):
    assert verify("<answer>1</answer>", gold).reason != "bad_gold"


@pytest.mark.parametrize(
    ("text", "contents"),
    [
        (r"\boxed{1} and \boxed{2}", ["1", "2"]),
        (r"\boxed{(0,3)}, \boxed{(3,0)}", ["(0,3)", "(3,0)"]),
        (r"$a = \boxed{7}$ and $b = \boxed{3}$", ["7", "3"]),
        (r"\boxed{17}. Checking again, it is \boxed{18}.", ["18"]),
        (r"\boxed{13}}} \boxed{14}", ["13", "14"]),
    ],
)
def test_boxed_group(text, contents):
    assert boxed_group(text)[0] == contents


@pytest.mark.parametrize(
    ("gold", "contents"),
    [
        (r"\boxed{1} papers and \boxed{2} bins", ["1", "2"]),  # words with a connector between boxes
        (r"\boxed{1}, so \boxed{2}", ["1", "2"]),
        (r"\boxed{1} no no no no no \boxed{2}", ["2"]),  # no connector: the last box
        (r"so $\boxed{\frac{3}{4}$", [r"\frac{3}{4}"]),  # never closed: to the end
        (r"\boxed{5}", ["5"]),
    ],
)
def test_gold_boxes(gold, contents):
    assert gold_boxes(gold) == contents


@pytest.mark.parametrize(
    ("answer", "extracted"),
    [
        ("Soucis : 2,74 $ a..", "2,74"),  # a label of words, a stray $ as currency
        ("Total cost: 12 dollars", "12"),
        ("lambda: 0", "lambda: 0"),  # one word glued to a colon is no label
        ("The values are 12, 13", "The values are 12, 13"),  # a list, not its last value
        ("The values are $12$ and $13$", "The values are $12$ and $13$"),
        ("The total is 5 + 7 = 12 dollars", "12"),
        (r"\boxed{35} ++++++ \boxed{4}", "35, 4"),
        (r"$\\boxed{3}$", "3"),
        ('The final answer is \\"$12$\\". I hope it is correct.', "12"),
    ],
)
def test_answer_in_prose_and_odd_separators(answer, extracted):
    assert extract_answer(f"<answer>{answer}</answer>").answer == extracted


def test_a_final_answer_phrase_after_the_last_box_wins():
    text = r"so \boxed{17}. Redo. Final Answer: The final answer is $2,310$. I hope it is correct."
    assert extract_answer(text).answer == "2,310"


def test_a_different_final_answer_after_the_tag_conflicts():
    assert extract_answer("<answer>6</answer> The final answer is $7$.").conflicting
    assert not extract_answer(r"<answer>6</answer> So $\boxed{6}$.").conflicting


# Pairs decided by the fast paths added for the answer policy, with math-verify's (symbolic path's) verdict
# on the same pair written the way it reads it (dot decimals, no separators).
FAST_POLICY_PAIRS = [
    ("12345", r"12,\!345", "12345"),
    ("3141592", r"3,\! 141,\! 592", "3141592"),
    ("2500", "2 500", "2500"),
    ("7.25", "7,25", "7.25"),
    (r"\frac{1}{12}", "0.0833333333333333", "0.0833333333333333"),
    (r"\frac{1}{7}", "0.142857142857", "0.142857142857"),
    (r"\frac{1}{7}", "0.142858142857", "0.142858142857"),
    ("0.4", r"40\%", r"40\%"),
    (r"40\%", r"0.4\%", "0.004"),
]


# A list with \\pm: each sign is an item; math-verify, given both lists written out, agrees.
PM_PAIRS = [
    (r"x = 1, x = 3 \pm \sqrt{2}", r"1, 3+\sqrt{2}, 3-\sqrt{2}", r"\{1, 3+\sqrt{2}, 3-\sqrt{2}\}"),
    (r"x = 1, x = 3 \pm \sqrt{2}", r"x = 3 \pm \sqrt{2}, x = 1", r"\{3+\sqrt{2}, 3-\sqrt{2}, 1\}"),
    (r"x = 1, x = 3 \pm \sqrt{2}", r"1, 3+\sqrt{2}", r"\{1, 3+\sqrt{2}\}"),
    (r"x = 1, x = 3 \pm \sqrt{2}", r"1, 3 \pm \sqrt{3}", r"\{1, 3+\sqrt{3}, 3-\sqrt{3}\}"),
]


@pytest.mark.parametrize(("gold", "answer", "as_math_verify_reads_it"), PM_PAIRS)
def test_plus_minus_lists_agree_with_math_verify_on_the_written_out_lists(
    gold, answer, as_math_verify_reads_it
):
    import math_verify

    ours = verify(f"<answer>{answer}</answer>", gold).correct
    gold_parsed = math_verify.parse(r"$\{1, 3+\sqrt{2}, 3-\sqrt{2}\}$", parsing_timeout=None)
    answer_parsed = math_verify.parse(f"${as_math_verify_reads_it}$", parsing_timeout=None)
    assert ours is math_verify.verify(gold_parsed, answer_parsed, timeout_seconds=None)


@pytest.mark.parametrize(("gold", "answer", "as_math_verify_reads_it"), FAST_POLICY_PAIRS)
def test_policy_fast_paths_agree_with_the_symbolic_path(gold, answer, as_math_verify_reads_it):
    import math_verify

    fast = verify(f"<answer>{answer}</answer>", gold).correct
    gold_parsed = math_verify.parse(f"${gold}$", parsing_timeout=None)
    answer_parsed = math_verify.parse(f"${as_math_verify_reads_it}$", parsing_timeout=None)
    assert fast is math_verify.verify(gold_parsed, answer_parsed, timeout_seconds=None)


def _limits():
    import resource

    return resource.getrlimit(resource.RLIMIT_AS)[0], resource.getrlimit(resource.RLIMIT_CPU)[0]


def test_isolated_children_run_under_memory_and_cpu_limits():
    import resource

    memory, cpu = sandbox.run_isolated(_limits, timeout=30)
    assert memory != resource.RLIM_INFINITY and memory > sandbox.MEMORY_HEADROOM_BYTES
    assert cpu != resource.RLIM_INFINITY and cpu >= sandbox.CPU_SECONDS_PER_CALL


def _external_rows(split: str) -> list[dict]:
    rows = [json.loads(line) for line in EXTERNAL.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if row["split"] == split]


def test_external_rows_keep_their_source():
    rows = _external_rows("tune") + _external_rows("blind") + _external_rows("blind2")
    assert len(rows) >= 260
    assert all(row["source"].startswith("math-verify:tests/") for row in rows)
    assert {row.get("label") for row in rows} <= {None, "default-call", "authors (string-extraction config)"}


@pytest.mark.slow
def test_external_tuning_rows():
    rows = _external_rows("tune")
    right = sum(verify(row["response"], row["gold"], timeout=30.0).correct is row["expected"] for row in rows)
    assert right / len(rows) >= 0.97
