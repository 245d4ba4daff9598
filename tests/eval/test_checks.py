"""Golden tests of the exact check measure (r1zero.eval.checks) on hand-written list-sum completions."""

from __future__ import annotations

import json

import pytest

from r1zero.eval.checks import (
    CheckEvent,
    analyze_checks,
    check_stats,
    heldout_checks,
    problem_terms,
    record_checks,
    running_sums,
)
from r1zero.eval.plots import main as plot_main
from r1zero.eval.rundir import heldout_check_series, load_run
from r1zero.eval.summary import SampleRecord, summarize
from r1zero.train.metrics import rollout_metrics

from .fixtures import write_synthetic_run

TERMS = [3, 5, 2, 4]  # running sums 8, 10, 14; gold 14
T = "<think> {} </think> <answer>{}</answer>"

# (name, completion, checked, changed, fixed, broke, final, final_correct)
CASES = [
    (
        "no check",
        T.format("3+5=8, 8+2=10, 10+4=14, the answer is 14.", 14),
        False,
        False,
        False,
        False,
        14,
        True,
    ),
    (
        "check that fixes",
        T.format("3+5=8, 8+2=11, wait, 8+2=10, 10+4=14, the answer is 14.", 14),
        True,
        True,
        True,
        False,
        14,
        True,
    ),
    (
        "check that breaks",
        T.format("3+5=8, 8+2=10, wait, 8+2=11, 11+4=15, the answer is 15.", 15),
        True,
        True,
        False,
        True,
        15,
        False,
    ),
    (
        "check that confirms",
        T.format("3+5=8, 8+2=10, let me recheck 8+2=10, 10+4=14, the answer is 14.", 14),
        True,
        False,
        False,
        False,
        14,
        True,
    ),
    (
        "slip carried on, late check repairs the tail",
        T.format("3+5=8, 8+2=11, 11+4=15, verify: 8+2=10, 10+4=14, the answer is 14.", 14),
        True,
        True,
        True,
        False,
        14,
        True,
    ),
    (
        "fixed step but a later slip: changed, neither fixed nor broke",
        T.format("3+5=8, 8+2=11, wait, 8+2=10, 10+4=15, the answer is 15.", 15),
        True,
        True,
        False,
        False,
        15,
        False,
    ),
    (
        "redo from the same running value with another term (the base model's habit) breaks",
        T.format("3+5=8, 8+2=10, wait, 8+4=12, 12+4=16, the answer is 16.", 16),
        True,
        True,
        False,
        True,
        16,
        False,
    ),
    (
        "same running value without a check word is a new step, not a redo",
        T.format("3+5=8, 8+2=10, 8+4=12, the answer is 12.", 12),
        False,
        False,
        False,
        False,
        12,
        False,
    ),
    (
        "wrong to wrong",
        T.format("3+5=8, 8+2=11, wait, 8+2=12, 12+4=16, the answer is 16.", 16),
        True,
        True,
        False,
        False,
        16,
        False,
    ),
    (
        "keyword only",
        T.format("3+5=8, 8+2=10, 10+4=14, wait, the answer is 14.", 14),
        True,
        False,
        False,
        False,
        14,
        True,
    ),
    (
        "re-stated final answer that fixes",
        "3+5=8, 8+2=10, 10+4=14, the answer is 15, wait, the answer is 14.",
        True,
        True,
        True,
        False,
        14,
        True,
    ),
    ("direct answer, not a chain", "3+5+2+4=14, the answer is 14.", False, False, False, False, 14, True),
    ("direct wrong answer", " the answer is 13.", False, False, False, False, 13, False),
    ("empty", "", False, False, False, False, None, False),
    (
        "malformed",
        "<think> 3+=, =8 8+ wait+ </answer><answer>x</answer>",
        True,
        False,
        False,
        False,
        None,
        False,
    ),
    (
        "awaiting is not a marker",
        "3+5=8, awaiting 8+2=10, 10+4=14, the answer is 14.",
        False,
        False,
        False,
        False,
        14,
        True,
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "checked", "changed", "fixed", "broke", "final", "final_correct"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_golden_completions(name, text, checked, changed, fixed, broke, final, final_correct):
    r = analyze_checks(text, TERMS)
    assert (r.checked, r.changed, r.fixed, r.broke) == (checked, changed, fixed, broke)
    assert (r.final, r.final_correct) == (final, final_correct)


def test_events_carry_before_after_and_the_true_running_sum():
    r = analyze_checks("3+5=8, 8+2=11, 11+4=15, verify: 8+2=10, 10+4=14, the answer is 14.", TERMS)
    assert r.events == (CheckEvent(position=1, before=11, after=10, truth=10, marked=True),)
    assert r.markers == 1


def test_truth_follows_the_problem_not_the_arithmetic():
    # 8+3=11 is right arithmetic but the wrong running sum (the term is 2): re-doing it is no fix
    r = analyze_checks("3+5=8, 8+3=12, wait, 8+3=11, 11+4=15, the answer is 15.", TERMS)
    assert r.changed and not r.fixed and not r.broke
    assert r.events[0].truth == 10


def test_gold_given_as_text_and_unparseable_gold():
    assert analyze_checks("the answer is 14.", TERMS, gold="14").final_correct
    assert not analyze_checks("the answer is 14.", TERMS, gold="fourteen").final_correct


@pytest.mark.parametrize(
    "text",
    [
        "9" * 5000 + "+" + "9" * 5000 + "=1",
        "wait " * 2000,
        "1+1=2, " * 500 + "1+1=3",
        "3+5=8=8=8, 8+2=10=11, the answer is -",
        "\x00\ufffd<answer>7</answer>" * 50,
        "3 + 5 = 8 ,8 - 2 = 6, wait 8-2=6",
    ],
)
def test_adversarial_text_does_not_crash(text):
    r = analyze_checks(text, TERMS)
    assert isinstance(r.checked, bool)


@pytest.mark.parametrize(
    ("prompt", "terms"),
    [
        ("Think inside <think> </think>.\nUser: What is 3+5+2+4?\nAssistant:", [3, 5, 2, 4]),
        ("User: What is 9-3+4?\nAssistant:", [9, -3, 4]),
        ("What is 1+1? no, What is 2+7?", [2, 7]),
        ("What is 12 * 3?", None),
        ("What is 5?", None),
        ("", None),
    ],
)
def test_problem_terms(prompt, terms):
    assert problem_terms(prompt) == terms


def test_running_sums():
    assert running_sums([9, -3, 4]) == [6, 10]
    assert running_sums([]) == []


def test_check_stats_rates_and_shares():
    reports = [analyze_checks(c[1], TERMS) for c in CASES[:4]]  # none, fixes, breaks, confirms
    assert check_stats(reports) == {
        "checks/rate": 0.75,
        "checks/n": 3.0,
        "checks/changed": pytest.approx(2 / 3),
        "checks/fixed": pytest.approx(1 / 3),
        "checks/broke": pytest.approx(1 / 3),
    }
    assert check_stats([reports[0]]) == {"checks/rate": 0.0, "checks/n": 0.0}
    with pytest.raises(ValueError, match="at least one"):
        check_stats([])


def _record(completion: str, prompt: str = "User: What is 3+5+2+4?\nAssistant:") -> dict:
    return {
        "prompt": prompt,
        "completion": completion,
        "gold": "14",
        "reward": 0.0,
        "correct": False,
        "formatted": False,
        "length": 10,
        "truncated": False,
    }


def test_rollout_metrics_logs_checks_on_chain_prompts_only():
    fix = _record("3+5=8, 8+2=11, wait, 8+2=10, 10+4=14, the answer is 14.")
    plain = _record("3+5=8, 8+2=10, 10+4=14, the answer is 14.")
    m = rollout_metrics([fix, plain])
    assert (m["checks/rate"], m["checks/fixed"], m["checks/broke"]) == (0.5, 1.0, 0.0)
    assert m["reflection/per_response"] == 0.5  # the keyword rate is unchanged beside it
    other = rollout_metrics([_record("wait, 42", prompt="Solve x^2=4.")])
    assert not any(k.startswith("checks/") for k in other)


def test_record_checks_skips_non_chain_prompts():
    recs = [_record("3+5=8, 8+2=10, wait, 8+2=11, the answer is 15."), _record("wait", prompt="Hello")]
    assert record_checks(recs) == {
        "checks/rate": 1.0,
        "checks/n": 1.0,
        "checks/changed": 1.0,
        "checks/fixed": 0.0,
        "checks/broke": 1.0,
    }


def test_summarize_reports_checks():
    def sample(i: int, completion: str) -> SampleRecord:
        return SampleRecord(
            problem_id=str(i),
            sample=0,
            prompt="User: What is 3+5+2+4?\nAssistant:",
            completion=completion,
            gold="14",
            correct=True,
            formatted=True,
            reason="ok",
            extracted="14",
            reward=1.0,
            length=10,
            truncated=False,
            reflection_hits=0,
            reflection_spans=[],
        )

    out = summarize([[sample(0, CASES[1][1])], [sample(1, CASES[0][1])]], n_resamples=10)
    assert (out["checks/rate"], out["checks/fixed"]) == (0.5, 1.0)


def test_heldout_checks_per_evaluation_step():
    q = {"question": "What is 3+5+2+4?", "gold": "14"}
    rows = [
        {"step": 0, "id": "a", **q, "completion": CASES[1][1]},  # fixes
        {"step": 0, "id": "b", **q, "completion": CASES[2][1]},  # breaks
        {"step": 0, "id": "c", "question": "Solve x=1", "gold": "1", "completion": "wait"},  # skipped
        {"step": 10, "id": "a", "completion": CASES[0][1]},
        {"step": 10, "id": "b", "completion": CASES[3][1]},  # confirms
    ]
    out = heldout_checks(rows)
    assert out[0] == {
        "heldout/checks/rate": 1.0,
        "heldout/checks/n": 2.0,
        "heldout/checks/changed": 1.0,
        "heldout/checks/fixed": 0.5,
        "heldout/checks/broke": 0.5,
    }
    assert out[10]["heldout/checks/rate"] == 0.5 and out[10]["heldout/checks/changed"] == 0.0
    assert heldout_checks([]) == {}


def test_plot_draws_exact_checks_beside_the_keyword_rate(tmp_path):
    run = write_synthetic_run(tmp_path / "demo", variant="demo", aha_step=25)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        if row.get("step", 0) >= 1:
            row["checks/rate"] = 0.1
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    q = {"question": "What is 3+5+2+4?", "gold": "14"}
    held = [
        {"step": 0, "id": "a", **q, "completion": CASES[1][1]},
        {"step": 10, "id": "a", "completion": "x"},
    ]
    (run / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held))
    assert heldout_check_series(load_run(run))[0]["heldout/checks/rate"] == 1.0
    assert plot_main([str(run)]) == 0
    svg = (run / "plots" / "reflection.svg").read_text()
    assert "exact checks" in svg and "held-out exact checks" in svg
