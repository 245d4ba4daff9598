"""GPU paths (marker ``gpu``: skipped on CPU CI, run on a lent H100/H200): the learner's log-probs on CUDA
against the CPU's, bf16 training end to end with both CPU-free engines, resume with the CUDA RNG state,
and greedy evaluation on CUDA against the CPU's."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from r1zero.algo.batch import PackedBatch
from r1zero.models import TINY_BASE_DIR
from r1zero.train.checkpoint import latest_checkpoint, load_trainer_state
from r1zero.train.forward import sequence_logprobs

pytestmark = pytest.mark.gpu
HERE = Path(__file__).parent


def _train(model_dir: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "r1zero", "train", "--preset", "smoke", "--model.name", str(model_dir)]
    cmd += ["--model.device", "cuda", "--data.template", "tiny-demo", "--data.verifier"]
    cmd += [str(HERE / "digit_verifier.py"), "--reward.workers", "0", "--run.out_dir", str(out), *extra]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-4), ("bfloat16", 0.08)])
def test_learner_logprobs_on_cuda_match_the_cpu(tiny_model_dir, dtype, tol):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    ids = torch.randint(4, 100, (6, 40))
    attention = torch.ones_like(ids)
    attention[:2, :7] = 0  # left padding on two rows
    batch = PackedBatch(ids, attention, torch.ones(6, 20), torch.zeros(6), torch.zeros(6, 20), None, 20)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=getattr(torch, dtype))
    with torch.no_grad():
        on_cpu, _ = sequence_logprobs(model.float(), batch)  # [6, 20] the learner's path
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=getattr(torch, dtype)).cuda()
        on_gpu, _ = sequence_logprobs(model, batch.to("cuda"))
    diff = (on_gpu.float().cpu() - on_cpu).abs()
    assert diff.mean().item() < tol, (dtype, diff.mean().item(), diff.max().item())


@pytest.mark.parametrize("backend", ["hf", "fast"])
def test_bf16_training_on_cuda_end_to_end(tiny_model_dir, tmp_path, backend):
    done = _train(tiny_model_dir, tmp_path, "--model.dtype", "bfloat16", "--rollout.backend", backend)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = _metrics(tmp_path / "smoke")
    assert [x["step"] for x in lines] == [0, 1, 2, 3]
    for line in lines[1:]:
        assert all(math.isfinite(line[k]) for k in ("loss/total", "policy/grad_norm", "policy/entropy"))
        assert line["perf/peak_gpu_mem_mb"] > 0
    from safetensors import safe_open

    final = tmp_path / "smoke" / "checkpoints" / "step_000003" / "model.safetensors"
    with (
        safe_open(str(final), "pt") as saved,
        safe_open(str(tiny_model_dir / "model.safetensors"), "pt") as start,
    ):
        names = list(saved.keys())
        assert {saved.get_tensor(n).dtype for n in names} == {torch.bfloat16}
        changed = [
            n for n in names if not torch.equal(saved.get_tensor(n).float(), start.get_tensor(n).float())
        ]
    assert changed, "three bf16 steps left every weight unchanged"


def test_resume_on_cuda_restores_the_run(tiny_model_dir, tmp_path):
    first = _train(tiny_model_dir, tmp_path, "--run.steps", "2", "--run.save_every", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    state = load_trainer_state(latest_checkpoint(tmp_path / "smoke"))
    assert "cuda" in state["rng"]  # the CUDA generator's state travels with the checkpoint
    cmd = [sys.executable, "-m", "r1zero", "train", "--resume", str(tmp_path / "smoke"), "--run.steps", "4"]
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert [x["step"] for x in _metrics(tmp_path / "smoke")] == [0, 1, 2, 3, 4]


@pytest.mark.skipif(not (TINY_BASE_DIR / "config.json").is_file(), reason="tiny-base checkpoint not shipped")
def test_greedy_eval_on_cuda_matches_the_cpu(tmp_path):
    from r1zero.eval.cli import main

    common = ["--model.name", "tiny-base", "--benchmarks", "list_sum", "--limit", "16"]
    common += ["--rollout.temperature", "0", "--rollout.max_new_tokens", "96", "--rollout.backend", "hf"]
    common += ["--data.template", "tiny-demo", "--reward.workers", "0", "--run.progress", "false"]
    results = {}
    for device in ("cpu", "cuda"):
        assert main([*common, "--model.device", device, "--run.out_dir", str(tmp_path / device)]) == 0
        rows = (tmp_path / device / "list_sum.samples.jsonl").read_text().splitlines()
        results[device] = [json.loads(r)["completion"] for r in rows]
    same = sum(a == b for a, b in zip(results["cpu"], results["cuda"], strict=True))
    # fp32 kernels differ in rounding between devices: a near-tie may flip one argmax, not more
    assert same >= len(results["cpu"]) - 1, same


# ---------------------------------------------------------------- FSDP2 on one GPU (model.sharding fsdp)
def _tiny_llama() -> torch.nn.Module:
    from transformers import LlamaForCausalLM

    from r1zero.models.tiny import tiny_config

    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_config(num_hidden_layers=2))


def _gpu_batch(device: str) -> PackedBatch:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 100, (8, 30), generator=g)  # [B, P+T]
    attention = torch.ones_like(ids)
    return PackedBatch(
        ids, attention, torch.ones(8, 20), torch.randn(8, generator=g), torch.zeros(8, 20), None, 10
    ).to(device)


def _adamw_step_moved(model: torch.nn.Module, name: str) -> float:
    """Fraction of ``name``'s entries that one lr-1e-6 AdamW policy step changes."""
    from r1zero.train.config import AlgoConfig
    from r1zero.train.learner import policy_update

    def full(t):
        return (t.full_tensor() if hasattr(t, "full_tensor") else t).detach().float().cpu().clone()

    before = full(dict(model.named_parameters())[name])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.0)
    algo = AlgoConfig(loss_agg="dapo", mu=1, micro_batch_size=4)
    policy_update(model, optimizer, _gpu_batch("cuda"), algo, max_len=20, grad_clip=0.0)
    after = full(dict(model.named_parameters())[name])
    return (after != before).float().mean().item()


@pytest.fixture
def nccl_one_rank():
    import torch.distributed as dist

    torch.cuda.set_device(0)
    dist.init_process_group("nccl", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("offload", [False, True])
def test_fsdp_fp32_masters_take_a_1e6_step_on_cuda(nccl_one_rank, offload):
    from r1zero.train.sharding import shard_model

    name = "model.layers.0.self_attn.q_proj.weight"
    model = shard_model(
        _tiny_llama().cuda(), device=torch.device("cuda"), compute_dtype=torch.bfloat16, cpu_offload=offload
    )
    moved = _adamw_step_moved(model, name)
    pure = _adamw_step_moved(_tiny_llama().to("cuda", torch.bfloat16), name)
    print(f"cuda, offload={offload}: lr 1e-6 moved {moved:.4f} of fp32-master entries, {pure:.4f} of bf16")
    assert moved >= 0.99, moved
    assert pure <= 0.1, pure


def test_collectives_put_their_tensors_on_the_gpu_under_nccl(nccl_one_rank):
    from r1zero.train.distributed import DistInfo, all_reduce_grads, all_reduce_sum

    info = DistInfo(0, 2, 0)  # a 1-rank group; world_size 2 makes the helpers run their collectives
    assert all_reduce_sum({"a": 1.5, "b": 2.0}, info) == {"a": 1.5, "b": 2.0}
    layer = torch.nn.Linear(4, 4).to("cuda", torch.bfloat16)
    layer.weight.grad = torch.ones_like(layer.weight)
    all_reduce_grads(layer.parameters(), info)
    assert layer.weight.grad.dtype == torch.bfloat16 and float(layer.weight.grad.sum()) == 16.0


def test_fsdp_bf16_compute_training_on_cuda_end_to_end(tiny_model_dir, tmp_path):
    extra = ("--model.sharding", "fsdp", "--model.compute_dtype", "bfloat16", "--rollout.backend", "hf")
    done = _train(tiny_model_dir, tmp_path, *extra)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = _metrics(tmp_path / "smoke")
    assert [x["step"] for x in lines] == [0, 1, 2, 3]
    assert all(math.isfinite(x["policy/grad_norm"]) for x in lines[1:])
