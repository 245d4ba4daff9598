"""Every bad ``--data.source`` ends in one line naming the file, line or field, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from r1zero.data import load_problems
from r1zero.data.problem import DataError
from r1zero.train import build
from r1zero.train.config import DataConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _bad_inputs(tmp: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (source, fragments the one-line message must contain)."""
    good = {"question": "1+1", "answer": "2"}
    (tmp / "folder.jsonl").mkdir()
    (tmp / "empty.jsonl").write_text("\n\n")
    (tmp / "notes.txt").write_text("x\n")
    _jsonl(tmp / "broken.jsonl", [good, good, '{"question": "2+2", "answer":'])
    _jsonl(tmp / "no_answer.jsonl", [good, {"question": "3+3", "gold_text": "6"}])
    _jsonl(tmp / "no_question.jsonl", [good, {"q": "3+3", "answer": "6"}])
    _jsonl(tmp / "empty_answer.jsonl", [good, {"question": "3+3", "answer": ""}])
    return {
        "missing": (str(tmp / "nowhere.jsonl"), ["nowhere.jsonl", "file not found"]),
        "directory": (str(tmp / "folder.jsonl"), ["folder.jsonl", "is a directory"]),
        "broken line": (str(tmp / "broken.jsonl"), ["broken.jsonl", "row 3", "line 3", "json says"]),
        "no answer": (str(tmp / "no_answer.jsonl"), ["row 2", "'answer'", "'question', 'gold_text'"]),
        "no question": (str(tmp / "no_question.jsonl"), ["row 2", "'question'", "'q', 'answer'"]),
        "empty answer": (str(tmp / "empty_answer.jsonl"), ["row 2", "'answer'", "empty gold answer"]),
        "empty file": (str(tmp / "empty.jsonl"), ["empty.jsonl", "no rows"]),
        "extension": (str(tmp / "notes.txt"), ["notes.txt", "'.txt'", ".jsonl"]),
        "unknown name": ("list_summ", ["'list_summ'", "did you mean list_sum"]),
        "bad difficulty": ("list_sum:difficulty=hard", ["list_sum", "difficulty", "'hard'"]),
    }


NAMES = [
    "missing",
    "directory",
    "broken line",
    "no answer",
    "no question",
    "empty answer",
    "empty file",
    "extension",
    "unknown name",
    "bad difficulty",
]


@pytest.mark.parametrize("name", NAMES)
def test_load_problems_says_what_is_wrong_in_one_line(tmp_path, name):
    source, fragments = _bad_inputs(tmp_path)[name]
    with pytest.raises(ValueError) as info:
        load_problems(source)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize("name", NAMES)
def test_load_problems_for_says_what_is_wrong_in_one_line(tmp_path, name):
    source, fragments = _bad_inputs(tmp_path)[name]
    data = DataConfig(source=source)
    if name == "bad difficulty":  # through the config: a generator name and its difficulty
        data = DataConfig(source="list_sum", difficulty="hard")
    with pytest.raises(ValueError) as info:
        build.load_problems_for(TrainConfig(data=data))
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_file_errors_are_data_errors_with_file_and_line(tmp_path):
    source, _ = _bad_inputs(tmp_path)["broken line"]
    with pytest.raises(DataError) as info:
        load_problems(source)
    assert info.value.file == source and info.value.row == 3


def test_a_one_row_file_cannot_be_split(tmp_path):
    path = _jsonl(tmp_path / "one.jsonl", [{"question": "1+1", "answer": "2"}])
    config = TrainConfig(data=DataConfig(source=str(path), heldout_size=4))
    with pytest.raises(DataError, match="at least 2") as info:
        build.load_problems_for(config)
    assert "one.jsonl" in str(info.value) and "--data.heldout_source" in str(info.value)


@pytest.mark.parametrize("name", ["broken line", "no answer", "directory", "unknown name"])
def test_cli_prints_one_line_and_exits_2(tmp_path, name):
    source, fragments = _bad_inputs(tmp_path)[name]
    argv = ["--preset", "smoke", "--data.source", source, "--run.out_dir", str(tmp_path / "runs")]
    done = subprocess.run(
        [sys.executable, "-m", "r1zero", "train", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("r1zero train: ") and done.stderr.count("\n") == 1, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr
