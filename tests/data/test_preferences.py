import json
import subprocess
import sys
from collections import Counter

import datasets
import pytest

from r1zero.data.generators import generate
from r1zero.data.preferences import KINDS, generate_preferences, preferences_to_jsonl, write_preferences
from r1zero.eval.harness import render_prompts
from r1zero.verifiers import get_verifier
from r1zero.verifiers.reward import STRICT_R1ZERO, apply_weights


def strict_reward(completion: str, gold: str) -> float:
    """The trainer's strict R1-Zero reward: right answer inside <think>...</think> <answer>N</answer>."""
    return apply_weights(get_verifier("integer")(completion, gold), STRICT_R1ZERO).reward


def test_same_seed_same_bytes_in_another_process_other_seed_other_bytes():
    text = preferences_to_jsonl(generate_preferences(300, seed=5))
    code = (
        "import sys; from r1zero.data.preferences import generate_preferences, preferences_to_jsonl;"
        "sys.stdout.write(preferences_to_jsonl(generate_preferences(300, seed=5)))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert other == text
    assert preferences_to_jsonl(generate_preferences(300, seed=6)) != text


def test_the_strict_rule_reward_agrees_with_every_row():
    rows = generate_preferences(2000, seed=0)
    for row in rows:
        assert strict_reward(row["chosen"], row["answer"]) == 1.0, row
        assert strict_reward(row["rejected"], row["answer"]) == 0.0, row


def test_every_kind_appears_and_rejected_fails_for_the_reason_its_kind_names():
    rows = generate_preferences(2000, seed=1)
    counts = Counter(r["kind"] for r in rows)
    assert set(counts) == set(KINDS) and min(counts.values()) > 300
    verifier = get_verifier("integer")
    for row in rows:
        verdict = verifier(row["rejected"], row["answer"])
        if row["kind"] in ("wrong_answer", "wrong_step"):  # well formatted, wrong by 1-3
            assert verdict.formatted and 1 <= abs(int(verdict.extracted) - int(row["answer"])) <= 3, row
        else:  # the right number, format broken
            assert not verdict.formatted and row["answer"] in row["rejected"], row
        if row["kind"] == "untagged":
            assert "<" not in row["rejected"]


def test_styles_imitate_the_base_model():
    rows = generate_preferences(2000, seed=2)
    chosen = [r["chosen"] for r in rows]
    assert all(c.startswith(" <think> ") and c.endswith("</answer>") for c in chosen)
    worked = [c for c in chosen if c.count("=") >= 2]
    assert 0.3 < len(worked) / len(chosen) < 0.8
    assert 0.02 < sum(", wait, " in c for c in worked) / len(worked) < 0.2
    assert any(c.startswith(" <think> the answer is ") for c in chosen)  # direct, tagged


def test_prompts_are_the_trainers_prompts():
    rows = generate_preferences(50, seed=3)
    problems = generate("list_sum", 50, "5-8", seed=3)
    prompts, _ = render_prompts(problems, "tiny-demo", think_prefix=False)
    assert [r["prompt"] for r in rows] == prompts
    assert [r["answer"] for r in rows] == [p.answer for p in problems]


def test_written_file_loads_with_datasets(tmp_path):
    rows = generate_preferences(40, seed=0)
    path = write_preferences(rows, tmp_path / "prefs.jsonl")
    data = datasets.load_dataset("json", data_files=str(path), split="train")
    assert data.column_names == ["prompt", "chosen", "rejected", "kind", "answer"]
    assert data.to_list() == rows


def test_cli_writes_the_same_rows(tmp_path):
    from r1zero.data.cli import main

    out = tmp_path / "p.jsonl"
    assert main(["preferences", "--n", "30", "--seed", "4", "--out", str(out)]) == 0
    assert [json.loads(line) for line in out.read_text().splitlines()] == generate_preferences(30, seed=4)


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="n must be >= 0"):
        generate_preferences(-1)
    with pytest.raises(ValueError, match="allowed 2-30"):
        generate_preferences(5, difficulty="1-40")
