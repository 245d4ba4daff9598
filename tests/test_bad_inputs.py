"""Hostile inputs to the real ``r1zero`` CLI end in one error line and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def r1zero(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "r1zero", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def error_line(proc: subprocess.CompletedProcess, command: str) -> str:
    """The one error line of a failed command (logging's WARNING/INFO lines aside)."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [
        line
        for line in proc.stderr.splitlines()
        if line.strip() and not line.startswith(("WARNING", "INFO")) and " WARNING " not in line
    ]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"r1zero {command}: "), lines[0]
    return lines[0]


def _run_dir(tmp_path: Path, case: str) -> Path:
    run = tmp_path / case
    if case == "missing":
        return run
    run.mkdir()
    if case == "empty_metrics":
        (run / "metrics.jsonl").write_text("")
    elif case == "broken_metrics":
        (run / "metrics.jsonl").write_text('{"step": 0}\n{bad\n{"step": 1}\n')
    return run


@pytest.mark.parametrize("command", ["plot", "report"])
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "does not exist"),
        ("empty_dir", "not a run directory"),
        ("empty_metrics", "has no rows"),
        ("broken_metrics", "line 2 is not valid JSON"),
    ],
)
def test_plot_and_report_on_bad_run_dirs(tmp_path, command, case, expected):
    run = _run_dir(tmp_path, case)
    line = error_line(r1zero(command, str(run), "--out", str(tmp_path / "out")), command)
    assert expected in line and str(run) in line


def test_verify_timeout_applies_to_one_response(tmp_path):
    (tmp_path / "slow.py").write_text(
        "import time\nfrom r1zero.verifiers.base import Verdict\n"
        "def slow(response, gold, **meta):\n    time.sleep(60)\n    return Verdict(1.0, True, True, 'correct')\n"
    )
    proc = r1zero(
        "verify",
        "--timeout",
        "0.5",
        "--response",
        "x",
        "--gold",
        "y",
        "--verifier",
        f"{tmp_path / 'slow.py'}:slow",
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["reason"] == "timeout"


def test_verify_non_finite_reward_prints_valid_json(tmp_path):
    (tmp_path / "nan.py").write_text(
        "from r1zero.verifiers.base import Verdict\n"
        "def nan(response, gold, **meta):\n    return Verdict(float('nan'), True, True, 'correct')\n"
    )
    proc = r1zero("verify", "--response", "x", "--gold", "y", "--verifier", f"{tmp_path / 'nan.py'}:nan")
    assert proc.returncode == 0 and "NaN" not in proc.stdout
    verdict = json.loads(proc.stdout)
    assert verdict["reason"] == "non_finite_reward" and verdict["reward"] == 0.0


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--minutes", "-1"], "--minutes"),
        (["--minutes", "0"], "--minutes"),
        (["--steps", "0"], "--steps"),
        (["--threads", "-2"], "--threads"),
    ],
)
def test_pretrain_rejects_bad_sizes(tmp_path, flags, expected):
    line = error_line(
        r1zero("pretrain", "--preset", "smoke", "--out", str(tmp_path / "o"), *flags), "pretrain"
    )
    assert expected in line


def test_pretrain_refuses_a_non_empty_out_dir(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    line = error_line(r1zero("pretrain", "--preset", "smoke", "--out", str(tmp_path)), "pretrain")
    assert "--force" in line and str(tmp_path) in line
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_eval_missing_model_dir_is_a_missing_path(tmp_path):
    missing = str(tmp_path / "no" / "model")
    proc = r1zero(
        "eval",
        "--model.name",
        missing,
        "--benchmarks",
        "list_sum",
        "--data.template",
        "tiny-demo",
        "--limit",
        "2",
    )
    line = error_line(proc, "eval")
    assert "does not exist" in line and missing in line and "hub" not in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{bad\n', "prefs.jsonl:2: not valid JSON"),
        ('{"prompt": "p", "rejected": "b"}\n', "prefs.jsonl:1: missing field 'chosen'"),
    ],
)
def test_rm_train_broken_preference_file(tmp_path, text, expected):
    (tmp_path / "prefs.jsonl").write_text(text)
    line = error_line(
        r1zero("rm", "train", "--data", str(tmp_path / "prefs.jsonl"), "--out", str(tmp_path / "rm")),
        "rm train",
    )
    assert expected in line


def test_dispatcher_turns_input_errors_into_one_line(monkeypatch, capsys):
    import types

    from r1zero import cli

    def boom(argv):
        raise FileNotFoundError("no such file: x.json")

    monkeypatch.setitem(sys.modules, "fake_cmd", types.SimpleNamespace(main=boom))
    monkeypatch.setitem(cli.COMMANDS, "fake", ("fake_cmd", "test"))
    assert cli.main(["fake"]) == 2
    assert capsys.readouterr().err == "r1zero fake: no such file: x.json\n"
    monkeypatch.setenv("R1ZERO_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        cli.main(["fake"])


def test_dispatcher_keeps_the_traceback_of_a_bug(monkeypatch):
    import types

    from r1zero import cli

    def bug(argv):
        raise KeyError("oops")

    monkeypatch.setitem(sys.modules, "fake_cmd", types.SimpleNamespace(main=bug))
    monkeypatch.setitem(cli.COMMANDS, "fake", ("fake_cmd", "test"))
    with pytest.raises(KeyError):
        cli.main(["fake"])
