"""A few GRPO steps with ``--rollout.backend vllm``, run in the vLLM environment (see .ci/run).

``r1zero train --preset smoke --rollout.backend vllm`` runs in-process through ``cli.main``; the engine the
trainer builds is kept (``build.make_engine`` is wrapped, not replaced) so that, after the run, its greedy
outputs can be compared with Hugging Face's on the final checkpoint: equal, and unlike the initial model's,
so the trainer's weight pushes reached vLLM. The same run with ``--rollout.backend vllm-server`` samples from
an ``r1zero serve-rollouts`` process on localhost and pushes its weights there over HTTP.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from r1zero.models import TINY_BASE_DIR
from r1zero.rollout import SamplingParams
from r1zero.rollout.hf import HFEngine
from r1zero.train import build, cli
from tests.train.conftest import make_tiny_model

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None, reason="vllm is not installed (see .ci/run)"
    ),
]

HERE = Path(__file__).parent
PROMPTS = ["User: What is 3+4+1+8+2?\nAssistant: <think>", "12+7=19, 3+", "User: What is 5+9?\nAssistant:"]
GREEDY = SamplingParams(n=1, temperature=0.0, max_new_tokens=32)


def _greedy(engine) -> list[tuple[int, ...]]:
    return [g[0].completion_ids for g in engine.generate(PROMPTS, GREEDY)]


def _model_args(tmp_path: Path) -> tuple[Path, list[str]]:
    """The shipped tiny-base on its own task when it is there (head_dim 32), else a random model."""
    if (TINY_BASE_DIR / "config.json").is_file():
        return TINY_BASE_DIR, [
            "--model.name",
            "tiny-base",
            "--optim.lr",
            "1e-3",
            "--rollout.max_new_tokens",
            "64",
        ]
    model_dir = make_tiny_model(tmp_path / "model", hidden_size=64)  # head_dim 32 for vLLM
    return model_dir, [
        "--model.name", str(model_dir),
        "--data.verifier", str(HERE / "digit_verifier.py"),  # unequal rewards from a random model
        "--reward.require_format", "false",
        "--optim.lr", "1e-2",  # large enough that 3 steps change greedy outputs
        "--rollout.max_new_tokens", "8",  # short: some completions hold 2 digits, some do not
    ]  # fmt: skip


def test_smoke_run_with_vllm_backend(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir, model_args = _model_args(tmp_path)
    engines, make_engine = [], build.make_engine

    def keep_engine(*args, **kwargs):
        engines.append(make_engine(*args, **kwargs))
        return engines[-1]

    monkeypatch.setattr(build, "make_engine", keep_engine)
    argv = [
        "--preset", "smoke",
        "--rollout.backend", "vllm",
        "--rollout.gpu_memory_utilization", "0.3",
        "--rollout.prompts_per_step", "4",
        "--data.template", "tiny-demo",
        "--reward.workers", "0",
        "--run.threads", "1",
        "--run.out_dir", str(tmp_path / "runs"),
        *model_args,
    ]  # fmt: skip
    try:
        assert cli.main(argv) == 0
        assert len(engines) == 1 and engines[0].name == "vllm"

        run = tmp_path / "runs" / "smoke"
        config = json.loads((run / "config.json").read_text())
        assert config["rollout"]["backend"] == "vllm"
        metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert [m["step"] for m in metrics] == [0, 1, 2, 3]
        assert all(m["time/generate"] > 0 and "loss/total" in m for m in metrics[1:])
        samples = (run / "samples.jsonl").read_text()
        assert any(m["groups/zero_variance"] < 1 for m in metrics[1:]), samples  # some gradient
        assert [json.loads(x)["step"] for x in (run / "eval.jsonl").read_text().splitlines()] == [0, 2, 3]
        final = run / "checkpoints" / "step_000003"
        learned = AutoModelForCausalLM.from_pretrained(final).eval()
        tokenizer = AutoTokenizer.from_pretrained(final)
        initial = AutoModelForCausalLM.from_pretrained(model_dir).eval()

        after = _greedy(engines[0])
        assert after == _greedy(HFEngine(learned, tokenizer))
        assert after != _greedy(HFEngine(initial, tokenizer))
    finally:
        for engine in engines:
            engine.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(model_dir: Path, port: int, log: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-c", "import sys; from r1zero.cli import main; sys.exit(main())",
        "serve-rollouts", "--model", str(model_dir), "--port", str(port), "--dtype", "float32",
        "--gpu-memory-utilization", "0.3", "--max-model-len", "512",
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"serve-rollouts exited {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                return server
        except OSError:
            time.sleep(2)
    _stop(server)
    raise TimeoutError(f"serve-rollouts did not answer in 900 s:\n{log.read_text()[-3000:]}")


@pytest.mark.timeout(1800)
def test_smoke_run_against_a_rollout_server(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1zero.rollout.vllm_server import VLLMServerEngine

    model_dir, model_args = _model_args(tmp_path)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start_server(model_dir, port, tmp_path / "server.log")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        client = VLLMServerEngine(None, tokenizer, url=url)
        before = _greedy(client)
        argv = [
            "--preset", "smoke",
            "--rollout.backend", "vllm-server",
            "--rollout.url", url,
            "--rollout.prompts_per_step", "4",
            "--data.template", "tiny-demo",
            "--reward.workers", "0",
            "--run.threads", "1",
            "--run.out_dir", str(tmp_path / "runs"),
            *model_args,
        ]  # fmt: skip
        assert cli.main(argv) == 0
        run = tmp_path / "runs" / "smoke"
        assert json.loads((run / "config.json").read_text())["rollout"]["url"] == url
        metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert [m["step"] for m in metrics] == [0, 1, 2, 3]
        assert all(m["time/generate"] > 0 and "loss/total" in m for m in metrics[1:])
        learned = AutoModelForCausalLM.from_pretrained(run / "checkpoints" / "step_000003").eval()
        after = _greedy(client)  # the server holds the weights of the last push
        assert after == _greedy(HFEngine(learned, tokenizer))
        assert after != before
    finally:
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """End the server and its vLLM processes (its own process group)."""
    os.killpg(server.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
