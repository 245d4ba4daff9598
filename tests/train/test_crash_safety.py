"""Crash-safe storage: what a killed save leaves is cleaned up, a damaged checkpoint is passed over for
the one before, a full disk is one line and no half-written directory, and cutting the logs back on
resume never loses the original log."""

import errno
import json
import logging
import os
import pathlib
import sys

import pytest
import torch
from safetensors.torch import save_file

from r1zero.train import checkpoint as ckpt
from r1zero.train import runlog
from r1zero.train.checkpoint import (
    CheckpointError,
    checkpoint_dirs,
    latest_checkpoint,
    load_trainer_state,
    save_checkpoint,
)


class FakeModel:
    """What ``save_pretrained`` writes: config.json and model.safetensors."""

    def __init__(self, value: float = 0.0):
        self.value = value

    def save_pretrained(self, path, safe_serialization=True):
        path = pathlib.Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text("{}")
        save_file({"w": torch.full((64,), self.value)}, str(path / "model.safetensors"))


class FakeTokenizer:
    def save_pretrained(self, path):
        (pathlib.Path(path) / "tokenizer_config.json").write_text("{}")
        (pathlib.Path(path) / "tokenizer.json").write_text("{}")


def _state() -> dict:
    return {"optimizer": {"state": {}}, "scheduler": {"last_epoch": 1}, "sampler": {"epoch": 0}}


def _run(tmp_path: pathlib.Path, steps=(1, 2)) -> pathlib.Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    for step in steps:
        save_checkpoint(run, step, FakeModel(step), FakeTokenizer(), _state())
    return run


def test_a_planted_temporary_directory_is_removed_at_start(tmp_path, caplog):
    run = _run(tmp_path)
    planted = run / "checkpoints" / ".tmp_step_000002_123"
    planted.mkdir()
    (planted / "model.safetensors").write_bytes(b"half")
    other = run / "checkpoints" / "notes"  # not an r1zero name: left alone
    other.mkdir()
    with caplog.at_level(logging.WARNING, logger=ckpt.__name__):
        assert latest_checkpoint(run).step == 2
    assert not planted.exists() and other.is_dir()
    assert ".tmp_step_000002_123" in caplog.text


def test_a_checkpoint_moved_aside_by_an_interrupted_resave_is_put_back(tmp_path):
    run = _run(tmp_path)
    (run / "checkpoints" / "step_000002").rename(run / "checkpoints" / ".old_step_000002_77")
    assert latest_checkpoint(run).step == 2
    assert not (run / "checkpoints" / ".old_step_000002_77").exists()


def _truncate(path: pathlib.Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])


@pytest.mark.parametrize(
    "damage, named",
    [
        (lambda c: _truncate(c / "model.safetensors"), "model.safetensors is truncated"),
        (lambda c: (c / "model.safetensors").unlink(), "model.safetensors is missing"),
        (lambda c: (c / "model.safetensors").write_bytes(b"\xff" * 30), "model.safetensors is corrupt"),
        (lambda c: (c / "trainer_state.json").unlink(), "trainer_state.json is missing"),
        (lambda c: (c / "trainer_state.json").write_bytes(b"\x00garbage"), "trainer_state.json is corrupt"),
        (lambda c: _truncate(c / "trainer_state.safetensors"), "trainer_state.safetensors is truncated"),
        (lambda c: (c / "config.json").unlink(), "config.json is missing"),
        (
            lambda c: [(c / n).unlink() for n in ("tokenizer.json", "tokenizer_config.json")],
            "tokenizer files are missing",
        ),
        (lambda c: (c / "tokenizer.json").write_text('{"model": {"vo'), "tokenizer.json is corrupt"),
        (lambda c: (c / "config.json").write_text('{"model_type": '), "config.json is corrupt"),
    ],
    ids=["truncated-weights", "no-weights", "garbled-weights", "no-state", "garbled-state",
         "truncated-state-tensors", "no-config", "no-tokenizer", "truncated-tokenizer", "truncated-config"],
)  # fmt: skip
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog, damage, named):
    run = _run(tmp_path)
    damage(run / "checkpoints" / "step_000002")
    with caplog.at_level(logging.WARNING, logger=ckpt.__name__):
        found = latest_checkpoint(run)
    assert found.step == 1
    assert named in caplog.text and "step_000002" in caplog.text
    assert load_trainer_state(found)["step"] == 1


def test_every_checkpoint_damaged_is_one_line(tmp_path):
    run = _run(tmp_path)
    _truncate(run / "checkpoints" / "step_000002" / "model.safetensors")
    (run / "checkpoints" / "step_000001" / "trainer_state.json").unlink()
    with pytest.raises(CheckpointError) as info:
        latest_checkpoint(run)
    message = str(info.value)
    assert "\n" not in message and "no complete checkpoint" in message
    assert "step_000002: model.safetensors is truncated" in message
    assert "step_000001: trainer_state.json is missing" in message


def test_a_run_without_checkpoints_has_none(tmp_path):
    assert latest_checkpoint(_run(tmp_path, steps=())) is None


def test_pruning_after_a_fallback_keeps_the_checkpoint_resumed_from(tmp_path):
    run = _run(tmp_path, steps=(1, 2, 3))
    _truncate(run / "checkpoints" / "step_000003" / "model.safetensors")
    assert latest_checkpoint(run).step == 2
    save_checkpoint(run, 3, FakeModel(3), FakeTokenizer(), _state(), keep=1)  # re-saves step 3
    assert [c.step for c in checkpoint_dirs(run)] == [3]
    assert latest_checkpoint(run).step == 3


def test_a_full_disk_during_a_save_is_one_line_and_leaves_no_temporary_directory(tmp_path, monkeypatch):
    run = _run(tmp_path, steps=(1,))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", full)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(run, 2, FakeModel(2), FakeTokenizer(), _state())
    message = str(info.value)
    assert "\n" not in message and str(run) in message and "no space left" in message
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_000001"]
    monkeypatch.undo()
    assert latest_checkpoint(run).step == 1
    assert load_trainer_state(latest_checkpoint(run))["step"] == 1


def test_another_error_during_a_save_is_raised_as_is_and_cleaned_up(tmp_path, monkeypatch):
    run = _run(tmp_path, steps=(1,))
    monkeypatch.setattr(FakeTokenizer, "save_pretrained", lambda self, path: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        save_checkpoint(run, 2, FakeModel(2), FakeTokenizer(), _state())
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_000001"]


def _log(path: pathlib.Path, steps) -> str:
    text = "".join(json.dumps({"step": s, "x": s}) + "\n" for s in steps)
    path.write_text(text)
    return text


def test_truncation_on_resume_cuts_back_to_the_step(tmp_path):
    log = runlog.RunLog(tmp_path)
    _log(tmp_path / "metrics.jsonl", range(6))
    (tmp_path / "samples.jsonl").write_text(_log(tmp_path / "x", range(3)) + '{"step": 3, "x"')  # torn
    log.resume_at(2)
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").open()] == [0, 1, 2]
    assert [json.loads(line)["step"] for line in (tmp_path / "samples.jsonl").open()] == [0, 1, 2]
    assert not (tmp_path / "eval.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl", "samples.jsonl", "x"]


def test_an_interrupted_truncation_leaves_the_original_log(tmp_path, monkeypatch):
    original = _log(tmp_path / "metrics.jsonl", range(6))

    def interrupted(src, dst):
        raise OSError(errno.EIO, "interrupted")

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(OSError):
        runlog.RunLog(tmp_path).resume_at(2)
    assert (tmp_path / "metrics.jsonl").read_text() == original
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # no temporary file left


@pytest.mark.parametrize(
    ("module", "option", "extra"),
    [
        ("torch.utils.tensorboard", {"tensorboard": True}, "tensorboard"),
        ("wandb", {"wandb_project": "p"}, "wandb"),
    ],
)
def test_a_missing_optional_extra_names_itself(tmp_path, monkeypatch, module, option, extra):
    from r1zero.train.runlog import RunLog

    monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    with pytest.raises(ValueError, match=rf"pip install 'r1zero\[{extra}\]'"):
        RunLog(tmp_path / "run", **option)
