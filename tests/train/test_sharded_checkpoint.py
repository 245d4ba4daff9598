"""Sharded (FSDP2) checkpoints: every rank's shards and state round-trip bitwise, the write is atomic, a
damaged or foreign directory is refused before DCP unpickles anything, and DCP reshards 2 ranks -> 1."""

import errno
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from r1zero.train import sharded_checkpoint as sc
from r1zero.train.checkpoint import (
    Checkpoint,
    CheckpointError,
    capture_rng,
    checkpoint_problem,
    latest_checkpoint,
    load_trainer_state,
    restore_rng,
)

SAMPLER = {"seed": 3, "epoch": 1, "position": 5}


def _model() -> torch.nn.Module:
    from transformers import LlamaForCausalLM

    from r1zero.models.tiny import tiny_config

    torch.manual_seed(0)
    cfg = tiny_config(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    return LlamaForCausalLM(cfg)


def _tokenizer():
    from r1zero.models.tiny import build_tokenizer

    return build_tokenizer()


def _train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    ids = torch.randint(3, 90, (2, 9), generator=torch.Generator().manual_seed(seed))  # [B, T]
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    out = []
    for param in optimizer.param_groups[0]["params"]:
        state = optimizer.state[param]
        out += [_local(state[k]).clone() for k in sorted(state)]
    return out


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    return run


def _save(run: Path, step: int, model, optimizer) -> Path:
    return sc.save_sharded_checkpoint(
        run, step, model, optimizer, _tokenizer(), {"scheduler": {"last_epoch": step}}, {"sampler": SAMPLER}
    )


def _trained(steps: int = 1):
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for s in range(steps):
        _train_step(model, optimizer, s)
    return model, optimizer


# ------------------------------------------------------------------- one process (no process group)
def test_one_process_round_trip_is_bitwise_with_rng_and_sampler(tmp_path):
    run = _run_dir(tmp_path)
    model, optimizer = _trained()
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    rng = capture_rng()
    path = _save(run, 1, model, optimizer)
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    manifest = json.loads((path / sc.MANIFEST).read_text())
    assert manifest["world_size"] == 1 and manifest["step"] == 1
    assert {"dcp/.metadata", "rank_00000.json", "rank_00000.safetensors", "trainer_state.json"} <= set(
        manifest["files"]
    )
    assert latest_checkpoint(run) == Checkpoint(path, 1)

    fresh = _model()
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    saved = sc.load_sharded_checkpoint(Checkpoint(path, 1), fresh, fresh_opt)
    for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(_optimizer_tensors(optimizer), _optimizer_tensors(fresh_opt), strict=True):
        assert torch.equal(a, b)
    assert saved["step"] == 1 and saved["sampler"] == SAMPLER and saved["scheduler"] == {"last_epoch": 1}
    assert torch.equal(saved["rng"]["torch"], rng["torch"])
    restore_rng(saved["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
    # the next step from the loaded state is the next step of the original
    _train_step(model, optimizer, 5)
    _train_step(fresh, fresh_opt, 5)
    for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)


def test_an_extra_model_and_its_optimizer_round_trip_and_are_required_back(tmp_path):
    run = _run_dir(tmp_path)
    model, optimizer = _trained()
    critic, critic_opt = _trained(steps=2)
    path = sc.save_sharded_checkpoint(
        run,
        1,
        model,
        optimizer,
        _tokenizer(),
        {},
        {"sampler": SAMPLER},
        extra={"critic": (critic, critic_opt)},
    )
    fresh, fresh_critic = _model(), _model()
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    fresh_critic_opt = torch.optim.AdamW(fresh_critic.parameters(), lr=1e-2)
    sc.load_sharded_checkpoint(
        Checkpoint(path, 1), fresh, fresh_opt, extra={"critic": (fresh_critic, fresh_critic_opt)}
    )
    for a, b in zip(critic.parameters(), fresh_critic.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(_optimizer_tensors(critic_opt), _optimizer_tensors(fresh_critic_opt), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(fresh.model.embed_tokens.weight, fresh_critic.model.embed_tokens.weight)
    assert torch.equal(sc.read_model_state_dict(path)["lm_head.weight"], model.lm_head.weight)  # the policy's

    plain = _save(run, 2, model, optimizer)  # no critic in it: a PPO resume is refused by name
    with pytest.raises(CheckpointError, match=r"holds \['model', 'optim'\]; this run needs \['critic', "):
        sc.load_sharded_checkpoint(
            Checkpoint(plain, 2), fresh, fresh_opt, extra={"critic": (fresh_critic, fresh_critic_opt)}
        )


def test_load_trainer_state_refuses_a_sharded_checkpoint_by_name(tmp_path):
    run = _run_dir(tmp_path)
    path = _save(run, 1, *_trained())
    with pytest.raises(CheckpointError, match="is sharded: load_sharded_checkpoint"):
        load_trainer_state(Checkpoint(path, 1))


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"), RuntimeError("boom")])
def test_a_failed_save_leaves_the_previous_checkpoint_and_no_partial_one(tmp_path, monkeypatch, exc):
    run = _run_dir(tmp_path)
    model, optimizer = _trained()
    first = _save(run, 1, model, optimizer)
    before = {p.name: p.read_bytes() for p in first.rglob("*") if p.is_file()}

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(sc.dcp, "save", fail)
    expected = "no space left on the device" if isinstance(exc, OSError) else "boom"
    with pytest.raises((CheckpointError, RuntimeError), match=expected):
        _save(run, 2, model, optimizer)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000001"]
    assert {p.name: p.read_bytes() for p in first.rglob("*") if p.is_file()} == before


def test_a_save_killed_before_the_rename_is_cleaned_and_the_previous_one_resumed(tmp_path, monkeypatch):
    run = _run_dir(tmp_path)
    model, optimizer = _trained()
    _save(run, 1, model, optimizer)

    def killed(*args):
        raise SystemExit("killed")  # what a SIGKILL leaves: a complete temporary directory, not renamed

    monkeypatch.setattr(sc, "_move_into_place", killed)
    with pytest.raises(SystemExit):
        _save(run, 2, model, optimizer)
    assert [p.name.startswith(".tmp_step_000002_") for p in (run / "checkpoints").iterdir()].count(True) == 1
    assert latest_checkpoint(run).step == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000001"]


#: (what is done to the newest checkpoint, what checkpoint_problem says)
DAMAGE = [
    ("truncate dcp/__0_0.distcp", "dcp/__0_0.distcp is"),
    ("delete rank_00000.safetensors", "rank_00000.safetensors is missing"),
    ("delete dcp/.metadata", "dcp/.metadata is missing"),
    ("garble r1zero_sharded.json", "r1zero_sharded.json is corrupt"),
    ("foreign r1zero_sharded.json", "not an r1zero sharded-checkpoint manifest"),
    ("delete r1zero_sharded.json", "model.safetensors is missing"),  # then it is no checkpoint at all
]


@pytest.mark.parametrize(("damage", "problem"), DAMAGE)
def test_a_damaged_sharded_checkpoint_is_passed_over_for_the_previous_one(tmp_path, damage, problem):
    run = _run_dir(tmp_path)
    model, optimizer = _trained()
    _save(run, 1, model, optimizer)
    newest = _save(run, 2, model, optimizer)
    verb, name = damage.split(" ", 1)
    target = newest / name
    if verb == "truncate":
        target.write_bytes(target.read_bytes()[:-10])
    elif verb == "delete":
        target.unlink()
    elif verb == "garble":
        target.write_text("{not json")
    else:
        target.write_text(
            json.dumps({"format": "something-else", "version": 1, "world_size": 1, "files": {}})
        )
    assert problem in checkpoint_problem(Checkpoint(newest, 2))
    assert latest_checkpoint(run).step == 1


#: globals a hostile .metadata might name: each is refused before anything is built
HOSTILE = [("os", "system"), ("builtins", "eval"), ("subprocess", "Popen"), ("torch", "load")]


@pytest.mark.parametrize(("module", "name"), HOSTILE)
def test_dcp_metadata_naming_any_other_global_is_refused(tmp_path, module, name):
    run = _run_dir(tmp_path)
    path = _save(run, 1, *_trained())
    # a pickle that calls module.name("true"), written by hand (protocol 2 GLOBAL + REDUCE)
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X\x04\x00\x00\x00true\x85R."
    (path / "dcp" / ".metadata").write_bytes(payload)
    manifest = json.loads((path / sc.MANIFEST).read_text())
    manifest["files"]["dcp/.metadata"] = len(payload)  # even with a manifest that matches
    (path / sc.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=rf"names {module}\.{name}, which is not a metadata type"):
        sc.read_model_state_dict(path)
    model = _model()
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        sc.load_sharded_checkpoint(Checkpoint(path, 1), model, torch.optim.AdamW(model.parameters()))


def test_the_metadata_unpickler_reads_what_dcp_writes(tmp_path):
    run = _run_dir(tmp_path)
    path = _save(run, 1, *_trained())
    with open(path / "dcp" / ".metadata", "rb") as handle:
        plain = pickle.load(handle)
    safe = sc.SafeFileSystemReader(path / "dcp").read_metadata()
    assert safe.state_dict_metadata == plain.state_dict_metadata


def test_a_directory_without_the_manifest_is_never_handed_to_dcp(tmp_path, monkeypatch):
    run = _run_dir(tmp_path)
    path = _save(run, 1, *_trained())
    (path / sc.MANIFEST).unlink()
    monkeypatch.setattr(sc.dcp, "load", lambda *a, **k: pytest.fail("dcp.load was called"))
    with pytest.raises(CheckpointError, match=r"r1zero_sharded\.json is missing"):
        sc.read_model_state_dict(path)


# ------------------------------------------------------------------- two gloo ranks, FSDP2
def _shard(model: torch.nn.Module) -> torch.nn.Module:
    """The learner's own sharding (gradients summed over ranks), or the same with fully_shard directly."""
    try:
        from r1zero.train.sharding import shard_model
    except ImportError:
        from torch.distributed.fsdp import FSDPModule, fully_shard

        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.set_gradient_divide_factor(1.0)
                module.set_force_sum_reduction_for_comms(True)
        return model
    return shard_model(model, device=torch.device("cpu"))


def _full_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return {k: v.clone() for k, v in get_model_state_dict(model, options=options).items()}


def _worker(rank: int, world: int, tmp: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=world)
    try:
        run = Path(tmp) / "run"
        model = _shard(_model())
        assert sc.is_sharded(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        _train_step(model, optimizer, rank)  # each rank its own data: the shards see summed gradients
        torch.manual_seed(100 + rank)  # every rank its own RNG stream
        rng = capture_rng()
        rank_state = {"sampler": {**SAMPLER, "rank": rank}}
        path = sc.save_sharded_checkpoint(
            run, 1, model, optimizer, _tokenizer(), {"scheduler": {}}, rank_state
        )

        fresh = _shard(_model())
        fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
        saved = sc.load_sharded_checkpoint(Checkpoint(path, 1), fresh, fresh_opt)
        same_params = all(
            torch.equal(_local(a), _local(b))
            for a, b in zip(model.parameters(), fresh.parameters(), strict=True)
        )
        same_optim = all(
            torch.equal(a, b)
            for a, b in zip(_optimizer_tensors(optimizer), _optimizer_tensors(fresh_opt), strict=True)
        )
        _train_step(model, optimizer, 10 + rank)
        _train_step(fresh, fresh_opt, 10 + rank)
        same_next = all(
            torch.equal(_local(a), _local(b))
            for a, b in zip(model.parameters(), fresh.parameters(), strict=True)
        )
        result = {
            "same_params": same_params,
            "same_optim": same_optim,
            "same_next": same_next,
            "own_rng": torch.equal(saved["rng"]["torch"], rng["torch"]),
            "sampler_rank": saved["sampler"]["rank"],
        }
        full = _full_weights(fresh)  # collective: after the next step
        if rank == 0:
            torch.save({"result0": result, "full_after_next": full}, Path(tmp) / "rank0.pt")
        else:
            torch.save({"result1": result}, Path(tmp) / "rank1.pt")
        dist.barrier()  # neither rank tears its gloo pairs down while the other still talks to it
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_round_trip_bitwise_export_and_reshard_to_one(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    results = {
        **torch.load(tmp_path / "rank0.pt", weights_only=True),
        **torch.load(tmp_path / "rank1.pt", weights_only=True),
    }
    for rank in (0, 1):
        assert results[f"result{rank}"] == {
            "same_params": True,
            "same_optim": True,
            "same_next": True,
            "own_rng": True,
            "sampler_rank": rank,
        }
    checkpoint = latest_checkpoint(tmp_path / "run")
    assert checkpoint.step == 1 and json.loads((checkpoint.path / sc.MANIFEST).read_text())["world_size"] == 2
    assert (checkpoint.path / "rank_00001.json").is_file()

    # 2 -> 1: one process, no process group, a plain model: DCP gathers every shard
    plain = _model()
    plain_opt = torch.optim.AdamW(plain.parameters(), lr=1e-2)
    saved = sc.load_sharded_checkpoint(checkpoint, plain, plain_opt)
    assert saved["sampler"]["rank"] == 0  # rank 0 takes saved rank 0's state
    weights = sc.read_model_state_dict(checkpoint.path)
    for name, param in plain.state_dict().items():
        assert torch.equal(param, weights[name]), name
    assert not torch.equal(plain.model.embed_tokens.weight, _model().model.embed_tokens.weight)  # trained
    # ... and the next step (rank 0's data plus rank 1's, summed as the shards' reduce-scatter did) matches
    ids = [torch.randint(3, 90, (2, 9), generator=torch.Generator().manual_seed(10 + r)) for r in (0, 1)]
    for batch in ids:
        plain(input_ids=batch, labels=batch).loss.backward()  # gradients summed over ranks
    plain_opt.step()
    for name, param in plain.state_dict().items():
        assert torch.allclose(param, results["full_after_next"][name], atol=1e-6), name

    # export: one Hugging Face directory holding the full weights
    from transformers import AutoModelForCausalLM

    from r1zero.train.export import export_checkpoint

    out = export_checkpoint(checkpoint.path, tmp_path / "exported")
    loaded = AutoModelForCausalLM.from_pretrained(out)
    for name, param in loaded.state_dict().items():
        assert torch.equal(param, weights[name]), name
    assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()
    shutil.rmtree(out)


# ------------------------------------------------------------------- the recipe under torchrun, killed
HERE = Path(__file__).parent
STEPS = 4


def _torchrun(argv: list[str]):

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "r1zero", "train", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def _train_args(model_dir: Path, out: Path, name: str) -> list[str]:
    return [
        "--preset", "smoke",
        "--model.name", str(model_dir),
        "--model.device", "cpu",
        "--model.sharding", "fsdp",
        "--data.template", "tiny-demo",
        "--data.verifier", str(HERE / "digit_verifier.py"),
        "--reward.workers", "0",
        "--rollout.max_new_tokens", "24",
        "--optim.lr", "5e-2",  # two steps move the weights enough to change what is sampled next
        "--run.steps", str(STEPS),
        "--run.save_every", "2",
        "--run.threads", "1",
        "--run.out_dir", str(out),
        "--run.name", name,
    ]  # fmt: skip


def _metrics(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith(("time/", "perf/"))} for row in rows]


def _final_optimizer(run: Path) -> list[torch.Tensor]:
    """The last checkpoint's AdamW state, gathered into one process (a plain model like the final one)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(run / "final")
    optimizer = torch.optim.AdamW(model.parameters())
    sc.load_sharded_checkpoint(latest_checkpoint(run), model, optimizer)
    return _optimizer_tensors(optimizer)


@pytest.mark.slow
def test_torchrun_fsdp_run_killed_after_a_checkpoint_resumes_bitwise(tiny_model_dir, tmp_path):

    full = _torchrun(_train_args(tiny_model_dir, tmp_path, "full"))
    killed = _torchrun(_train_args(tiny_model_dir, tmp_path, "killed"))
    first = tmp_path / "killed" / "checkpoints" / "step_000002"
    deadline = time.time() + 400
    while not (first / sc.MANIFEST).is_file() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert killed.poll() is None, "the run ended before it could be killed: " + killed.stdout.read()[-3000:]
    os.killpg(killed.pid, signal.SIGKILL)  # torchrun and both ranks
    killed.wait(timeout=60)
    assert latest_checkpoint(tmp_path / "killed").step == 2
    base = load_file(Path(tiny_model_dir) / "model.safetensors")
    at_kill = sc.read_model_state_dict(first)  # the checkpoint resumed from is past a real update
    assert any(not torch.equal(base[k], at_kill[k]) for k in base.keys() & at_kill.keys())

    resumed = _torchrun(["--resume", str(tmp_path / "killed")])
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-4000:]
    out_full, _ = full.communicate(timeout=600)
    assert full.returncode == 0, out_full[-4000:]

    a, b = tmp_path / "full", tmp_path / "killed"
    assert _metrics(a / "metrics.jsonl") == _metrics(b / "metrics.jsonl")
    assert [row["step"] for row in _metrics(b / "metrics.jsonl")] == list(range(STEPS + 1))
    weights_a, weights_b = (
        (a / "final" / "model.safetensors").read_bytes(),
        (b / "final" / "model.safetensors"),
    )
    assert weights_a == weights_b.read_bytes()
    for x, y in zip(_final_optimizer(a), _final_optimizer(b), strict=True):
        assert torch.equal(x, y)
    manifest = json.loads((latest_checkpoint(b).path / sc.MANIFEST).read_text())
    assert manifest["world_size"] == 2 and manifest["step"] == STEPS
    end = load_file(a / "final" / "model.safetensors")
    assert any(not torch.equal(at_kill[k], end[k]) for k in at_kill.keys() & end.keys())

    # 2 ranks -> 1: the same checkpoint goes on in one process (DCP reshards), and says what changes
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    more = [sys.executable, "-m", "r1zero", "train", "--resume", str(a), "--run.steps", str(STEPS + 1)]
    done = subprocess.run(more, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "resuming a checkpoint saved by 2 ranks on 1" in done.stdout + done.stderr
    assert [row["step"] for row in _metrics(a / "metrics.jsonl")] == list(range(STEPS + 2))
    assert json.loads((latest_checkpoint(a).path / sc.MANIFEST).read_text())["world_size"] == 1


#: opens the run at sys.argv[1] with --resume (one process, a 1-rank group) and prints whether the rollout
#: engine's unsharded copy holds the learner's restored weights
_ENGINE_PROBE = """
import sys, torch
from r1zero.train.cli import build_config
from r1zero.train.session import open_session
s = open_session(*build_config(["--resume", sys.argv[1]]))
replica = dict(s.engine.replica.named_parameters())
print("SAME", all(torch.equal(p.full_tensor(), replica[n]) for n, p in s.learner.named_parameters()))
"""


@pytest.mark.slow
def test_a_resumed_sharded_run_generates_from_the_restored_weights(tiny_model_dir, tmp_path):
    args = _train_args(tiny_model_dir, tmp_path, "run")
    args[args.index("--run.steps") + 1] = "2"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "r1zero", "train", *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    base = load_file(Path(tiny_model_dir) / "model.safetensors")
    saved = sc.read_model_state_dict(latest_checkpoint(tmp_path / "run").path)
    assert any(not torch.equal(base[k], saved[k]) for k in base)  # the engine's base copy would be stale
    probe = [sys.executable, "-c", _ENGINE_PROBE, str(tmp_path / "run")]
    done = subprocess.run(probe, env=env, capture_output=True, text=True)
    assert "SAME True" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
