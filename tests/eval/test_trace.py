"""heldout.jsonl and groups.jsonl: what the trainer writes for the report, and the advantages shown."""

import json
from dataclasses import dataclass

import pytest

from r1zero.eval.report_data import config_diff, flip_step, heldout_timelines
from r1zero.eval.trace import append_group, append_heldout, group_advantages


@dataclass
class _Problem:
    id: str
    question: str
    answer: str


def _record(text, correct, reward=None):
    return {"prompt": "p", "gold": "9", "completion": text, "correct": correct, "reason": "correct" if correct else "wrong",
            "extracted": "9" if correct else "8", "length": 5, "reward": float(correct) if reward is None else reward,
            "reflection_hits": 0}  # fmt: skip


def test_append_heldout_writes_question_once_and_returns_rates(tmp_path):
    problems = [_Problem("a", "What is 4+5?", "9"), _Problem("b", "What is 1+1?", "2")]
    rates = append_heldout(tmp_path, 0, problems, [_record("Let me verify: 9", True), _record("8", False)])
    append_heldout(tmp_path, 10, problems, [_record("9", True), _record("9", True)])
    lines = [json.loads(x) for x in (tmp_path / "heldout.jsonl").read_text().splitlines()]
    assert [(r["step"], r["id"], "question" in r) for r in lines] == [
        (0, "a", True), (0, "b", True), (10, "a", False), (10, "b", False)
    ]  # fmt: skip
    assert rates["heldout/behaviour/verification"] == 0.5 and rates["heldout/behaviour/effective"] == 0.5
    timelines, info = heldout_timelines(tmp_path)
    assert [r["correct"] for r in timelines["b"]] == [False, True] and info["b"]["gold"] == "2"
    with pytest.raises(ValueError, match="1 records for 2 problems"):
        append_heldout(tmp_path, 20, problems, [_record("9", True)])


@pytest.mark.parametrize(
    ("rewards", "scale", "expected"),
    [
        ([1.0, 0.0, 0.0, 1.0], "group", [0.866, -0.866, -0.866, 0.866]),  # std 0.5774 (unbiased)
        ([1.0, 0.0, 0.0, 0.0], "none", [0.75, -0.25, -0.25, -0.25]),
        ([1.0, 1.0], "group", [0.0, 0.0]),  # an all-equal group has no signal
        ([1.0, 0.0, 0.0, 0.0], "rloo", [1.0, -0.333, -0.333, -0.333]),  # minus the others' mean
    ],
)
def test_group_advantages(rewards, scale, expected):
    assert group_advantages(rewards, scale) == expected


def test_group_advantages_rejects_unknown_scale():
    with pytest.raises(
        ValueError, match="group, batch, none, rloo, reinforce_pp, reinforce_pp_baseline; got 'std'"
    ):
        group_advantages([1.0, 0.0], "std")


def test_append_group_keeps_the_first_group(tmp_path):
    records = [
        _record("9", True),
        _record("8", False),
        _record("Wait, that is wrong.", False),
        _record("9", True),
    ]
    rates = append_group(tmp_path, 3, records, 2, "none")
    line = json.loads((tmp_path / "groups.jsonl").read_text())
    assert line["step"] == 3 and [c["advantage"] for c in line["completions"]] == [0.5, -0.5]
    assert rates["behaviour/backtracking"] == 0.25
    assert append_group(None, 4, records, 2, "group")["behaviour/any"] == 0.25
    assert len((tmp_path / "groups.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize(
    ("correct", "expected"),
    [
        ([False, False, True, True], 20),
        ([False, True, False, True], 30),
        ([True, True, True, True], None),
        ([False, True, True, False], None),
        ([], None),
    ],
)
def test_flip_step(correct, expected):
    assert flip_step([0, 10, 20, 30][: len(correct)], correct) == expected


def test_config_diff_lists_missing_keys():
    assert config_diff([{"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}]) == [("a.c", ["–", "2"])]


def test_resume_truncates_the_trace_files_too(tmp_path):
    from r1zero.train.runlog import truncate_jsonl

    (tmp_path / "heldout.jsonl").write_text('{"step": 0}\n{"step": 10}\n')
    from r1zero.train.runlog import JSONL_FILES

    assert {"heldout.jsonl", "groups.jsonl"} <= set(JSONL_FILES)
    assert truncate_jsonl(tmp_path / "heldout.jsonl", 5) == 1
