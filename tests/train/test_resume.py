"""Exact resume: a run SIGKILLed mid-step and resumed ends bitwise equal to an uninterrupted run (CPU).

Equal means: the final checkpoint's model.safetensors bytes, the optimizer state, and every line of
metrics.jsonl / samples.jsonl / eval.jsonl except the wall-clock keys (``time/*``, ``perf/*``).
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from r1zero.train import cli
from r1zero.train.checkpoint import CheckpointError, checkpoint_dirs, latest_checkpoint, load_trainer_state

HERE = Path(__file__).parent
STEPS = 8


def _args(model_dir: Path, out: Path, name: str) -> list[str]:
    return [
        "--preset", "smoke",
        "--model.name", str(model_dir),
        "--model.device", "cpu",  # bitwise equality is the CPU's (CUDA kernels are not deterministic)
        "--data.template", "tiny-demo",
        "--data.verifier", str(HERE / "digit_verifier.py"),
        "--reward.workers", "0",
        "--rollout.max_new_tokens", "40",
        "--algo.micro_batch_size", "3",
        "--algo.beta", "0.01",
        "--algo.mu", "2",
        "--run.steps", str(STEPS),
        "--run.save_every", "2",
        "--run.eval_every", "3",
        "--run.threads", "1",
        "--run.out_dir", str(out),
        "--run.name", name,
    ]  # fmt: skip


def _popen(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(
        [sys.executable, "-m", "r1zero", "train", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _lines(path: Path) -> list[dict]:
    drop = ("time/", "perf/")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith(drop)} for row in rows]


def _max_step(path: Path) -> int:
    if not path.is_file():
        return -1
    steps = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError, KeyError):
            steps.append(json.loads(line)["step"])
    return max(steps, default=-1)


@pytest.mark.slow
def test_sigkill_mid_step_then_resume_is_bitwise_identical(tiny_model_dir, tmp_path):
    full = _popen(_args(tiny_model_dir, tmp_path, "full"))

    killed = _popen(_args(tiny_model_dir, tmp_path, "killed"))
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 120
    while _max_step(metrics) < 3 and killed.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    assert killed.poll() is None, (
        "the run finished before it could be killed: " + killed.stdout.read()[-2000:]
    )
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    last = latest_checkpoint(tmp_path / "killed")
    assert (
        last is not None and last.step < STEPS and _max_step(metrics) > last.step
    )  # logs ran past the checkpoint

    resumed = _popen(["--resume", str(tmp_path / "killed")])
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    out_full, _ = full.communicate(timeout=300)
    assert full.returncode == 0, out_full[-3000:]

    a, b = tmp_path / "full", tmp_path / "killed"
    for name in ("metrics.jsonl", "samples.jsonl", "eval.jsonl"):
        assert _lines(a / name) == _lines(b / name), name
    assert [row["step"] for row in _lines(b / "metrics.jsonl")] == list(range(STEPS + 1))
    final = f"checkpoints/step_{STEPS:06d}"
    assert (a / final / "model.safetensors").read_bytes() == (b / final / "model.safetensors").read_bytes()
    opt_a = load_trainer_state(latest_checkpoint(a))["optimizer"]["state"]
    opt_b = load_trainer_state(latest_checkpoint(b))["optimizer"]["state"]
    for key in opt_a:
        assert torch.equal(opt_a[key]["exp_avg"], opt_b[key]["exp_avg"])
    # the weights really changed during training (so the equality above is not trivial)
    start, end = (
        load_file(Path(tiny_model_dir) / "model.safetensors"),
        load_file(a / final / "model.safetensors"),
    )
    shared = start.keys() & end.keys()
    assert shared and any(not torch.equal(start[k], end[k]) for k in shared)

    # resuming a finished run says so instead of silently doing nothing
    again = _popen(["--resume", str(b)])
    out_again, _ = again.communicate(timeout=300)
    assert again.returncode == 0
    assert f"already finished: checkpoint at step {STEPS}, run.steps = {STEPS}" in out_again
    assert _max_step(b / "metrics.jsonl") == STEPS


@pytest.mark.slow
def test_sigkill_during_a_checkpoint_save_then_resume_is_bitwise_identical(tiny_model_dir, tmp_path):
    every_step = ["--run.save_every", "1"]
    full = _popen([*_args(tiny_model_dir, tmp_path, "full"), *every_step])
    killed = _popen([*_args(tiny_model_dir, tmp_path, "killed"), *every_step])
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline, partial = time.time() + 120, None

    def saving() -> Path | None:  # a save of step 3 or later under way (so one checkpoint is behind it)
        found = [p for p in checkpoints.glob(".tmp_step_*") if int(p.name.split("_")[2]) >= 3]
        return found[0] if found else None

    while partial is None and killed.poll() is None and time.time() < deadline:
        if checkpoints.is_dir() and saving() is not None:
            killed.send_signal(signal.SIGSTOP)  # frozen: is the save still under way?
            partial = saving()
            killed.send_signal(signal.SIGKILL if partial is not None else signal.SIGCONT)
        time.sleep(0.0005)
    killed.wait(timeout=60)
    assert partial is not None and killed.returncode == -signal.SIGKILL, "no save was caught under way"
    saved_step = int(partial.name.split("_")[2])
    last = latest_checkpoint(tmp_path / "killed")  # removes the partial save
    assert last is not None and last.step == saved_step - 1 and not partial.exists()

    resumed = _popen(["--resume", str(tmp_path / "killed")])
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    out_full, _ = full.communicate(timeout=300)
    assert full.returncode == 0, out_full[-3000:]
    a, b = tmp_path / "full", tmp_path / "killed"
    for name in ("metrics.jsonl", "samples.jsonl", "eval.jsonl"):
        assert _lines(a / name) == _lines(b / name), name
    final = f"checkpoints/step_{STEPS:06d}"
    assert (a / final / "model.safetensors").read_bytes() == (b / final / "model.safetensors").read_bytes()


def test_corrupt_checkpoint_and_crash_mid_save(tiny_model_dir, tmp_path, capsys):
    argv = [
        *_args(tiny_model_dir, tmp_path, "run"),
        "--run.steps",
        "2",
        "--run.save_every",
        "1",
        "--run.keep_checkpoints",
        "0",
    ]
    assert cli.main(argv) == 0
    run = tmp_path / "run"
    assert [c.step for c in checkpoint_dirs(run)] == [1, 2]
    # a crash mid-save leaves a temporary directory: it is removed, the last complete checkpoint wins
    (run / "checkpoints" / ".tmp_step_000003_12345").mkdir()
    assert latest_checkpoint(run).step == 2
    assert not (run / "checkpoints" / ".tmp_step_000003_12345").exists()
    load_trainer_state(latest_checkpoint(run))
    # a garbled state file is a clear error naming it; resuming passes over that checkpoint
    (run / "checkpoints" / "step_000002" / "trainer_state.json").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match=r"trainer_state.json' is corrupt"):
        load_trainer_state(checkpoint_dirs(run)[-1])
    assert latest_checkpoint(run).step == 1
    # missing weights
    (run / "checkpoints" / "step_000001" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="has no model weights"):
        load_trainer_state(checkpoint_dirs(run)[0])
    # with every checkpoint damaged, resuming is a one-line error
    capsys.readouterr()
    assert cli.main(["--resume", str(run), "--run.steps", "3"]) == 2
    assert "no complete checkpoint" in capsys.readouterr().err


def test_starting_over_an_existing_run_is_refused(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "x" / "checkpoints" / "step_000001").mkdir(parents=True)  # a run with a checkpoint
    (tmp_path / "x" / "config.json").write_text("{}")
    assert cli.main(_args(tiny_model_dir, tmp_path, "x")) == 2
    assert "--resume" in capsys.readouterr().err
