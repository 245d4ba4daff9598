"""``r1zero verify``: one response, a labelled file, bad rows, per-row verifiers, timeouts."""

import json

import pytest

from r1zero.cli import main as r1zero_main
from r1zero.verifiers.cli import main

GOOD = "<think>2+2=4</think> <answer>4</answer>"


def write_rows(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_single_response_prints_verdict_json(capsys):
    assert r1zero_main(["verify", "--gold", "4", "--response", GOOD, "--verifier", "integer"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["correct"] is True and verdict["reason"] == "correct" and verdict["extracted"] == "4"
    assert set(verdict) == {"reward", "correct", "formatted", "reason", "extracted", "parts"}


def test_single_response_default_verifier_is_math(capsys):
    assert main(["--gold", "\\frac{1}{2}", "--response", "<think>a</think> <answer>0.5</answer>"]) == 0
    assert json.loads(capsys.readouterr().out)["correct"] is True


def test_single_response_with_meta(capsys):
    argv = ["--verifier", "countdown", "--gold", "22", "--response", "<answer>3*5+7</answer>"]
    assert main([*argv, "--meta", '{"numbers": [3, 5, 7]}']) == 0
    assert json.loads(capsys.readouterr().out)["reason"] == "correct"


def test_single_response_argument_errors(capsys):
    with pytest.raises(SystemExit):
        main(["--response", GOOD])  # no gold
    with pytest.raises(SystemExit):
        main(["--response", GOOD, "--gold", "4", "--verifier", "nope"])
    assert "unknown verifier 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--response", GOOD, "--gold", "4", "--meta", "[1]"])


def test_file_table_counts_false_positives_and_negatives(tmp_path, capsys):
    rows = [
        {"response": GOOD, "gold": "4", "expected": True, "category": "plain"},
        {"response": "<answer>5</answer>", "gold": "4", "expected": False, "category": "plain"},
        {"response": "<answer>4</answer>", "gold": "4", "expected": False, "category": "labelled_wrongly"},
        {"response": "<answer>4 or 5</answer>", "gold": "4", "expected": True, "category": "hedge"},
        {"response": "<answer>9</answer>", "gold": 9},  # numeric gold accepted, no label
    ]
    path = write_rows(tmp_path / "rows.jsonl", rows)
    assert main(["--file", str(path), "--verifier", "integer", "--mismatches"]) == 0
    out = capsys.readouterr().out
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines()[3:] if line and line[0].isalpha()}
    #            rows accuracy false_pos false_neg timeouts errors rewarded
    assert table["overall"] == ["5", "0.500", "1", "1", "0", "0", "3"]
    assert table["plain"] == ["2", "1.000", "0", "0", "0", "0", "1"]
    assert table["hedge"] == ["1", "0.000", "0", "1", "0", "0", "0"]
    assert table["uncategorized"][:2] == ["1", "-"]
    assert "false_pos line 3 [labelled_wrongly]" in out
    assert "false_neg line 4 [hedge]" in out


def test_file_json_summary_per_row_verifier_and_meta(tmp_path, capsys):
    rows = [
        {"response": GOOD, "gold": "4", "expected": True},
        {"response": "<answer>3*5+7</answer>", "gold": "22", "expected": True, "verifier": "countdown",
         "meta": {"numbers": [3, 5, 7]}, "category": "cd"},
        {"response": "<answer>3*5</answer>", "gold": "22", "expected": False, "verifier": "countdown",
         "meta": {"numbers": [3, 5, 7]}, "category": "cd"},
    ]  # fmt: skip
    path = write_rows(tmp_path / "rows.jsonl", rows)
    assert main(["--file", str(path), "--verifier", "integer", "--json", "--workers", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["overall"]["accuracy"] == 1.0 and summary["overall"]["rows"] == 3
    assert summary["cd"]["correct"] == 1


def test_file_timeouts_are_counted(tmp_path, capsys):
    hang = tmp_path / "hang_verifier.py"
    hang.write_text(
        "from r1zero.verifiers import Verdict\n"
        "def verify(response, gold, **meta):\n"
        "    while response == 'hang':\n"
        "        pass\n"
        "    return Verdict(1.0, True, False, 'correct')\n"
    )
    rows = [
        {"response": "hang", "gold": "1", "expected": True},
        {"response": "ok", "gold": "1", "expected": True},
    ]
    path = write_rows(tmp_path / "rows.jsonl", rows)
    assert main(["--file", str(path), "--verifier", str(hang), "--timeout", "0.5", "--json"]) == 0
    overall = json.loads(capsys.readouterr().out)["overall"]
    assert overall["timeouts"] == 1 and overall["false_neg"] == 1 and overall["agree"] == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "rows.jsonl:2: not valid JSON"),
        ("[1, 2]", "rows.jsonl:2: a row must be a JSON object"),
        ('{"gold": "4"}', "rows.jsonl:2: missing field 'response'"),
        ('{"response": "a"}', "rows.jsonl:2: missing field 'gold'"),
        ('{"response": 3, "gold": "4"}', "rows.jsonl:2: field 'response' must be a string"),
        ('{"response": "a", "gold": null}', "rows.jsonl:2: field 'gold' must be a string"),
        (
            '{"response": "a", "gold": "4", "expected": "yes"}',
            "rows.jsonl:2: field 'expected' must be true, false",
        ),
        ('{"response": "a", "gold": "4", "meta": [1]}', "rows.jsonl:2: field 'meta' must be an object"),
        ('{"response": "a", "gold": "4", "category": 5}', "rows.jsonl:2: field 'category' must be a string"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, capsys, line, message):
    path = write_rows(tmp_path / "rows.jsonl", [{"response": GOOD, "gold": "4"}, line])
    assert main(["--file", str(path), "--verifier", "integer"]) == 2
    assert message in capsys.readouterr().err


def test_unknown_verifier_in_a_row(tmp_path, capsys):
    path = write_rows(tmp_path / "rows.jsonl", [{"response": GOOD, "gold": "4", "verifier": "nope"}])
    assert main(["--file", str(path)]) == 2
    assert "rows.jsonl:1: field 'verifier': 'nope' is not a registered verifier" in capsys.readouterr().err


def test_unknown_command_line_verifier_with_a_file(tmp_path, capsys):
    path = write_rows(tmp_path / "rows.jsonl", [{"response": GOOD, "gold": "4"}])
    assert main(["--file", str(path), "--verifier", "nope"]) == 2
    assert "unknown verifier 'nope'" in capsys.readouterr().err


def test_missing_file(tmp_path, capsys):
    assert main(["--file", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


def test_progress_bar_on_request(tmp_path, capsys):
    path = write_rows(tmp_path / "rows.jsonl", [{"response": GOOD, "gold": "4"}] * 3)
    assert main(["--file", str(path), "--verifier", "integer", "--progress"]) == 0
    assert "3/3" in capsys.readouterr().err
