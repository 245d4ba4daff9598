"""Data parallelism: 2 gloo ranks give the same loss, gradients and update as 1 process on the same data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from r1zero.algo.batch import PackedBatch
from r1zero.train.config import AlgoConfig
from r1zero.train.distributed import DistInfo, broadcast_parameters, shard_range
from r1zero.train.forward import prompt_prefix
from r1zero.train.learner import policy_update

B, P, T = 8, 5, 7
#: (loss type, rows per prompt): groups of 2 rows share a prompt (the learner's shared prompt pass,
#: whose gradient reaches the weights after the micro-batches, before the all-reduce)
CASES = (("grpo", 2), ("dapo", 2), ("dr_grpo", 2), ("dapo", 1))


def _batch(group: int) -> PackedBatch:
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, 100, (B, P + T), generator=g)  # [B, P+T]
    input_ids[:, :P] = input_ids[:, :P][torch.arange(B) // group * group]  # rows of a group: one prompt
    attention = torch.ones(B, P + T, dtype=torch.long)
    for i in range(B):
        attention[i, : i // group % 3] = 0  # left padding of the prompt
        attention[i, P + 2 + i % 6 :] = 0  # completions of different lengths
    return PackedBatch(
        input_ids=input_ids,
        attention_mask=attention,
        loss_mask=attention[:, P:].float(),
        advantages=torch.randn(B, generator=g),
        rollout_logp=-torch.rand(B, T, generator=g),
        ref_logp=-torch.rand(B, T, generator=g) - 4.0,
        prompt_width=P,
    )


def _model() -> torch.nn.Module:
    from transformers import LlamaForCausalLM

    from r1zero.models.tiny import tiny_config

    torch.manual_seed(0)
    cfg = tiny_config(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    return LlamaForCausalLM(cfg)


def _step(mode: str, group: int, info: DistInfo) -> dict:
    torch.set_num_threads(1)
    model = _model()
    if info.rank:  # rank 1 starts from other weights: broadcast_parameters gives it rank 0's
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
    learner = broadcast_parameters(model, info)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = _batch(group)
    rows = shard_range(B, info)
    shard = batch.rows(slice(rows.start, rows.stop))
    algo = AlgoConfig(loss_agg=mode, beta=0.1, mu=2, micro_batch_size=2, eps_high=0.28)
    stats = policy_update(
        learner,
        optimizer,
        shard,
        algo,
        max_len=T,
        grad_clip=0.0,
        global_sequences=B,
        global_tokens=batch.loss_mask.sum().item(),
        dist_info=info,
    )
    return {
        "stats": stats,
        "grads": {n: p.grad.clone() for n, p in model.named_parameters()},
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
    }


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        info = DistInfo(rank, world, rank)
        torch.save({case: _step(*case, info) for case in CASES}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process(tmp_path):
    shard = _batch(2).rows(slice(0, B // 2))
    assert prompt_prefix(_model(), shard) is not None  # grouped rows take the shared prompt pass
    assert prompt_prefix(_model(), _batch(1).rows(slice(0, B // 2))) is None
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for mode in CASES:
        single = _step(*mode, DistInfo())
        # each rank's policy loss is its share of the global objective: they add up to the 1-process loss
        total = sum(r[mode]["stats"]["policy"] for r in ranks)
        assert total == pytest.approx(single["stats"]["policy"], abs=1e-6), mode
        assert (
            abs(single["stats"]["policy"]) > 1e-4
        )  # mu = 2: the second pass is off-policy, the loss is not ~0
        for name, grad in single["grads"].items():
            for r in ranks:
                assert torch.allclose(r[mode]["grads"][name], grad, atol=1e-6, rtol=1e-5), (mode, name)
        for name, param in single["params"].items():
            # after two AdamW steps (lr 1e-2) float32 summation order shows up at ~1e-6 (measured 1.2e-6)
            assert torch.allclose(ranks[0][mode]["params"][name], param, atol=1e-5), (mode, name)
            assert torch.equal(ranks[0][mode]["params"][name], ranks[1][mode]["params"][name])


@pytest.mark.slow
def test_torchrun_two_ranks_runs_the_recipe(tiny_model_dir, tmp_path):
    """The whole recipe under torchrun (2 gloo ranks): rank 0 writes one metrics line per step over all prompts."""
    here = Path(__file__).parent
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
        "-m", "r1zero", "train", "--preset", "smoke",
        "--model.name", str(tiny_model_dir), "--model.device", "cpu", "--data.template", "tiny-demo",
        "--data.verifier", str(here / "digit_verifier.py"), "--reward.workers", "0",
        "--run.threads", "1", "--run.out_dir", str(tmp_path), "--run.name", "ddp", "--run.steps", "2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [0, 1, 2]
    samples = (tmp_path / "ddp" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 2 * 2  # one sample per prompt group (2 groups gathered from 2 ranks) x 2 steps
    assert (tmp_path / "ddp" / "checkpoints" / "step_000002" / "model.safetensors").is_file()


# ---------------------------------------------------------------- collectives and the backend's device
@pytest.fixture
def one_rank_group():
    """A 1-rank gloo group; ``DistInfo(world_size=2)`` then makes the helpers run their collectives."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield DistInfo(0, 2, 0)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    "device,backend,ok",
    [("cpu", "gloo", True), ("cpu", "nccl", False), ("meta", "nccl", False), ("meta", "gloo", False)],
)
def test_check_backend_device(device, backend, ok):
    from r1zero.train.distributed import _check_backend_device

    tensor = torch.zeros(3, device=device)
    if ok:
        assert _check_backend_device(tensor, backend) is tensor
    else:
        with pytest.raises(ValueError, match=f"the {backend} backend needs"):
            _check_backend_device(tensor, backend)


def test_every_tensor_collective_checks_the_device():
    """Source check: a function of distributed.py that calls a tensor collective also calls the device
    check (an object collective, all_gather_object, picks its device itself)."""
    import inspect
    import re

    from r1zero.train import distributed

    collective = re.compile(
        r"dist\.(all_reduce|broadcast|all_gather|all_gather_into_tensor|reduce_scatter\w*)\("
    )
    functions = [
        f
        for _, f in inspect.getmembers(distributed, inspect.isfunction)
        if f.__module__ == distributed.__name__
    ]
    calling = [f for f in functions if collective.search(inspect.getsource(f))]
    assert {f.__name__ for f in calling} >= {"all_reduce_sum", "broadcast_parameters", "all_reduce_grads"}
    for f in calling:
        assert "_check_backend_device(" in inspect.getsource(f), f.__name__


def test_collective_helpers_route_through_the_check(one_rank_group, monkeypatch):
    from r1zero.train import distributed

    seen = []
    real = distributed._check_backend_device

    def spy(tensor, backend=None):
        seen.append((tensor.dtype, tensor.device.type))
        return real(tensor, backend)

    monkeypatch.setattr(distributed, "_check_backend_device", spy)
    info = one_rank_group
    assert distributed.all_reduce_sum({"a": 1.0, "b": 2.0}, info) == {"a": 1.0, "b": 2.0}
    assert seen == [(torch.float64, "cpu")]
    layer = torch.nn.Linear(2, 2).to(torch.bfloat16)
    distributed.broadcast_parameters(layer, info)
    assert len(seen) == 1 + 2  # weight and bias
    seen.clear()
    layer.weight.grad = torch.full((2, 2), 1.0 + 2**-8, dtype=torch.bfloat16)  # bf16 keeps it exactly
    distributed.all_reduce_grads(layer.parameters(), info)
    # bf16 gradients travel upcast: the sum is float32's, then written back in the gradients' dtype
    assert seen == [(torch.float32, "cpu")]
    assert layer.weight.grad.dtype == torch.bfloat16 and layer.bias.grad.dtype == torch.bfloat16
    assert torch.equal(layer.weight.grad, torch.full((2, 2), 1.0 + 2**-8, dtype=torch.bfloat16))
    assert distributed._collective_device() == torch.device("cpu")  # gloo: CPU tensors


def _torchrun_smoke(model_dir: Path, out: Path, name: str, port: int, *extra: str) -> list[dict]:
    here = Path(__file__).parent
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
        "-m", "r1zero", "train", "--preset", "smoke",
        "--model.name", str(model_dir), "--model.device", "cpu", "--data.template", "tiny-demo",
        "--data.verifier", str(here / "digit_verifier.py"), "--reward.workers", "0",
        "--run.threads", "1", "--run.out_dir", str(out), "--run.name", name, "--run.steps", "2", *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return [json.loads(x) for x in (out / name / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_torchrun_two_sharded_ranks_run_the_recipe_as_replicated_ones(tiny_model_dir, tmp_path):
    """``--model.sharding fsdp`` under torchrun (2 gloo ranks, the reference model sharded too): the whole
    recipe runs, and its first update is the replicated run's (same rollouts, same loss and gradient norm);
    the engine generates step 2 from the gathered weights, so step 2's rollouts match as well."""
    sharded = _torchrun_smoke(tiny_model_dir, tmp_path, "fsdp", 29518, "--model.sharding", "fsdp")
    replicated = _torchrun_smoke(tiny_model_dir, tmp_path, "ddp", 29519)
    assert [x["step"] for x in sharded] == [0, 1, 2]
    assert sharded[1]["policy/grad_norm"] > 0  # rewards vary: a real update
    for a, b in zip(sharded[1:], replicated[1:], strict=True):
        assert a["length/mean"] == b["length/mean"] and a["train/reward"] == b["train/reward"]
        for key in ("loss/total", "policy/grad_norm", "policy/kl", "policy/entropy"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
