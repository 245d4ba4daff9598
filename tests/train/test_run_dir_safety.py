"""The run directory: r1zero deletes only what it made, never a user's directory, a sibling or a parent.

A run directory carries a ``.r1zero-run`` marker from its first start; ``--run.overwrite true`` deletes
only a marked directory (or a run an older version wrote: a config.json that parses and a checkpoints/).
"""

import json
from pathlib import Path

import pytest

from r1zero.train import cli
from r1zero.train.config import TrainConfig, apply_overrides, config_to_dict

HERE = Path(__file__).parent
MARKER = ".r1zero-run"


def _args(model_dir: Path, out: Path, name: str, *extra: str) -> list[str]:
    return [
        "--preset", "smoke",
        "--model.name", str(model_dir),
        "--model.device", "cpu",
        "--data.template", "tiny-demo",
        "--data.verifier", str(HERE / "digit_verifier.py"),
        "--reward.workers", "0",
        "--rollout.max_new_tokens", "16",
        "--run.steps", "1",
        "--run.eval_every", "0",
        "--run.threads", "1",
        "--run.out_dir", str(out),
        "--run.name", name,
        *extra,
    ]  # fmt: skip


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> text), to check that nothing moved."""
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def _user_dir(path: Path) -> Path:
    (path / "data").mkdir(parents=True)
    (path / "thesis.tex").write_text("keep me")
    (path / "data" / "results.csv").write_text("1,2,3")
    return path


@pytest.mark.parametrize("name", [".", "..", "a/b", "", "a\\b", "a\x00b", "/abs", "../up"])
def test_run_name_must_be_a_plain_name(name):
    with pytest.raises(ValueError, match=r"^run\.name must be a plain name"):
        apply_overrides(TrainConfig(), ["--run.name", name])


def test_dot_names_never_touch_the_parent_or_the_siblings(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "runs"
    _user_dir(out / "other-run")
    before = _tree(tmp_path)
    for name in (".", ".."):
        assert cli.main(_args(tiny_model_dir, out, name, "--run.overwrite", "true")) == 2
        err = capsys.readouterr().err
        assert err.startswith("r1zero train: run.name must be a plain name") and err.count("\n") == 1
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("overwrite", ["false", "true"])
def test_a_directory_r1zero_did_not_make_is_never_deleted(tiny_model_dir, tmp_path, capsys, overwrite):
    user = _user_dir(tmp_path / "mine")
    before = _tree(user)
    assert cli.main(_args(tiny_model_dir, tmp_path, "mine", "--run.overwrite", overwrite)) == 2
    err = capsys.readouterr().err
    assert err.startswith("r1zero train: ") and err.count("\n") == 1
    assert "was not made by r1zero" in err and "--run.name" in err and "remove it yourself" in err
    assert _tree(user) == before


def test_a_config_that_is_not_a_run_config_is_not_a_run(tiny_model_dir, tmp_path, capsys):
    fake = tmp_path / "fake"
    (fake / "checkpoints").mkdir(parents=True)
    (fake / "config.json").write_text(json.dumps({"name": "someone else's tool"}))
    assert cli.main(_args(tiny_model_dir, tmp_path, "fake", "--run.overwrite", "true")) == 2
    assert "was not made by r1zero" in capsys.readouterr().err
    assert (fake / "config.json").is_file()


def test_overwrite_does_not_follow_a_link_out_of_out_dir(tiny_model_dir, tmp_path, capsys):
    victim = _user_dir(tmp_path / "victim")
    (victim / MARKER).write_text("{}")  # even a marked directory, when reached through a link
    before = _tree(victim)
    out = tmp_path / "runs"
    out.mkdir()
    (out / "link").symlink_to(victim, target_is_directory=True)
    assert cli.main(_args(tiny_model_dir, out, "link", "--run.overwrite", "true")) == 2
    assert "outside --run.out_dir" in capsys.readouterr().err
    assert _tree(victim) == before


def test_overwrite_replaces_a_marked_run_and_leaves_its_siblings(tiny_model_dir, tmp_path):
    sibling = _user_dir(tmp_path / "a")
    assert cli.main(_args(tiny_model_dir, tmp_path, "b")) == 0
    run = tmp_path / "b"
    marker = json.loads((run / MARKER).read_text())
    assert marker["made_by"] == "r1zero train"
    (run / "stray.txt").write_text("from the first run")
    before = _tree(sibling)
    assert cli.main(_args(tiny_model_dir, tmp_path, "b", "--run.overwrite", "true")) == 0
    assert not (run / "stray.txt").exists() and (run / MARKER).is_file()
    assert (run / "checkpoints" / "step_000001").is_dir()
    assert _tree(sibling) == before


def test_a_run_of_an_older_version_can_be_overwritten(tiny_model_dir, tmp_path):
    old = tmp_path / "old"
    (old / "checkpoints").mkdir(parents=True)
    (old / "config.json").write_text(json.dumps(config_to_dict(TrainConfig())))
    (old / "metrics.jsonl").write_text('{"step": 0}\n')
    assert cli.main(_args(tiny_model_dir, tmp_path, "old", "--run.overwrite", "true")) == 0
    assert (old / MARKER).is_file() and (old / "checkpoints" / "step_000001").is_dir()


def test_a_failed_first_start_can_be_started_again(tiny_model_dir, tmp_path, capsys, caplog):
    missing = str(tmp_path / "missing.jsonl")
    assert cli.main(_args(tiny_model_dir, tmp_path, "r", "--data.source", missing)) == 2
    err = capsys.readouterr().err
    assert err.startswith("r1zero train: ") and "file not found" in err and err.count("\n") == 1
    run = tmp_path / "r"
    assert (run / "config.json").is_file() and (run / MARKER).is_file()
    assert cli.main(["--resume", str(run)]) == 2
    assert "no checkpoint yet; start it again without --resume" in capsys.readouterr().err
    caplog.set_level("INFO", logger="r1zero.train.session")
    assert cli.main(_args(tiny_model_dir, tmp_path, "r")) == 0
    assert "has no checkpoint yet (an earlier start failed); starting it over" in caplog.text
    assert (run / "checkpoints" / "step_000001").is_dir()


def test_a_run_still_in_progress_is_not_started_over(tiny_model_dir, tmp_path, capsys):
    import socket
    import subprocess
    import sys

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = tmp_path / "busy"
        run.mkdir()
        marker = {"made_by": "r1zero train", "host": socket.gethostname(), "pid": other.pid}
        (run / MARKER).write_text(json.dumps(marker))
        (run / "metrics.jsonl").write_text('{"step": 1}\n')  # no checkpoint yet
        before = _tree(run)
        assert cli.main(_args(tiny_model_dir, tmp_path, "busy")) == 2
        assert f"is in use by process {other.pid} on this host" in capsys.readouterr().err
        assert _tree(run) == before
    finally:
        other.kill()
        other.wait()
