"""Checkpoints hold no pickles: the trainer state is JSON plus safetensors and is read back without
unpickling; an older ``trainer_state.pt`` goes through torch's weights-only unpickler, so a planted pickle
is an error that names the file, never code that runs. The new format restores every state exactly.
"""

import doctest
import json
import math
import os
import pathlib
import pickle
import random

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from r1zero.data.generators import generate
from r1zero.data.sampler import PromptSampler
from r1zero.train import checkpoint as ckpt
from r1zero.train.checkpoint import (
    CheckpointError,
    capture_rng,
    checkpoint_dirs,
    load_trainer_state,
    restore_rng,
    save_checkpoint,
)

LEGACY = "trainer_state.pt"


class FakeModel:
    """Writes what ``save_pretrained`` would: a model.safetensors (the loader checks that weights exist)."""

    def save_pretrained(self, path, safe_serialization=True):
        pathlib.Path(path).mkdir(parents=True, exist_ok=True)
        save_file({"w": torch.zeros(2)}, str(pathlib.Path(path) / "model.safetensors"))


class FakeTokenizer:
    def save_pretrained(self, path):
        (pathlib.Path(path) / "tokenizer.json").write_text("{}")


class Planted:
    """Unpickling this calls ``call(*args)``: what a hostile ``trainer_state.pt`` would do."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def _training(seed: int = 0):
    """A model, AdamW, LambdaLR and a prompt sampler after a few steps (states with real content)."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (s + 1))
    for _ in range(3):
        model(torch.randn(5, 4)).square().sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    sampler = PromptSampler(generate("list_sum", 10, seed=0), 3, seed=1)
    sampler.next_batch()
    sampler.next_batch()
    return model, optimizer, scheduler, sampler


def _trainer_state(optimizer, scheduler, sampler) -> dict:
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "sampler": sampler.state_dict(),
        "critic_optimizer": optimizer.state_dict(),
        "elapsed": 12.375,
        "accuracy_history": [0.5, 0.25, 1 / 3],
        "step0": {"eval/accuracy": 0.1, "eval/format_rate": 0.7},
        "last_eval": {},
        "monitors_firing": ["length_collapse"],
        "reward_history": [[0.5, 0.25], [0.75, 0.5]],
    }


def _checkpoint_at(run_dir: pathlib.Path, step: int = 2):
    return next(c for c in checkpoint_dirs(run_dir) if c.step == step)


def _same(a, b, where="state") -> None:
    """Equal values of equal types, all the way down (tuples stay tuples, int keys stay ints)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{k}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, where


# ---------------------------------------------------------------- a planted pickle never runs


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy_tar"])
@pytest.mark.parametrize("how", ["path_touch", "os_system"])
def test_a_planted_legacy_pickle_is_refused_and_never_runs(tmp_path, how, zip_format):
    marker = tmp_path / "pwned"
    planted = (
        Planted(pathlib.Path.touch, marker) if how == "path_touch" else Planted(os.system, f"touch {marker}")
    )
    step_dir = tmp_path / "run" / "checkpoints" / "step_000002"
    FakeModel().save_pretrained(step_dir)
    state = {"step": 2, "optimizer": planted, "scheduler": {}, "rng": {}, "sampler": {}}
    torch.save(state, step_dir / LEGACY, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError) as info:
        load_trainer_state(_checkpoint_at(tmp_path / "run"))
    message = str(info.value)
    assert "\n" not in message and str(step_dir / LEGACY) in message
    assert "cannot be loaded safely" in message
    assert not marker.exists()


def test_a_planted_pickle_beside_a_new_state_is_never_read(tmp_path):
    _, optimizer, scheduler, sampler = _training()
    path = save_checkpoint(
        tmp_path, 2, FakeModel(), FakeTokenizer(), _trainer_state(optimizer, scheduler, sampler)
    )
    marker = tmp_path / "pwned"
    torch.save({"step": 2, "x": Planted(pathlib.Path.touch, marker)}, path / LEGACY)
    state = load_trainer_state(_checkpoint_at(tmp_path))
    assert state["step"] == 2 and not marker.exists()


# ---------------------------------------------------------------- the new format: no pickle, exact


def test_the_state_is_json_and_safetensors_and_loads_without_unpickling(tmp_path, monkeypatch):
    _, optimizer, scheduler, sampler = _training()
    path = save_checkpoint(
        tmp_path, 2, FakeModel(), FakeTokenizer(), _trainer_state(optimizer, scheduler, sampler)
    )
    assert not (path / LEGACY).exists()
    assert {p.name for p in path.iterdir()} >= {ckpt.STATE_FILE, ckpt.TENSORS_FILE}
    saved = json.loads((path / ckpt.STATE_FILE).read_text())
    assert saved["state"]["step"] == 2 and saved["state"]["sampler"] == sampler.state_dict()

    def refuse(*args, **kwargs):
        raise AssertionError("the trainer state was unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    assert load_trainer_state(_checkpoint_at(tmp_path))["step"] == 2


def test_round_trip_restores_optimizer_scheduler_sampler_and_rng_exactly(tmp_path):
    model, optimizer, scheduler, sampler = _training()
    trainer_state = _trainer_state(optimizer, scheduler, sampler)
    random.random(), np.random.rand(), np.random.randn(), torch.rand(3)  # move every stream along
    save_checkpoint(tmp_path, 2, FakeModel(), FakeTokenizer(), trainer_state)
    rng_saved = capture_rng()
    draws = (random.random(), np.random.rand(), np.random.randn(), torch.rand(5))

    loaded = load_trainer_state(_checkpoint_at(tmp_path))
    _same({**trainer_state, "step": 2, "rng": rng_saved}, loaded)

    restore_rng(loaded["rng"])
    again = (random.random(), np.random.rand(), np.random.randn(), torch.rand(5))
    assert draws[:3] == again[:3] and torch.equal(draws[3], again[3])

    # a fresh optimizer / scheduler / sampler given the loaded state continue exactly as the originals
    twin, twin_optimizer, twin_scheduler, twin_sampler = _training(seed=1)
    twin.load_state_dict(model.state_dict())
    twin_optimizer.load_state_dict(loaded["optimizer"])
    twin_scheduler.load_state_dict(loaded["scheduler"])
    twin_sampler.load_state_dict(loaded["sampler"])
    _same(optimizer.state_dict(), twin_optimizer.state_dict())
    _same(scheduler.state_dict(), twin_scheduler.state_dict())
    batch = torch.randn(5, 4)
    for m, opt, sched in ((model, optimizer, scheduler), (twin, twin_optimizer, twin_scheduler)):
        m(batch).square().sum().backward()
        opt.step()
        sched.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [p.id for p in sampler.next_batch()] == [p.id for p in twin_sampler.next_batch()]


def test_every_kind_of_value_round_trips(tmp_path):
    odd = {
        "tuple": (1, (2.5, None), "s"),
        "int_keys": {0: "a", 7: [True, False]},
        "dollar_keys": {"$tuple": [1], "$tensor": "x"},
        "floats": [float("nan"), float("inf"), -0.0, 1e-310, 0.1],
        "big": 2**80,
        "numpy": (np.float32(0.1), np.int64(-3), np.arange(6, dtype=np.uint32).reshape(2, 3)),
        "tensors": [
            torch.tensor(3.0),
            torch.zeros(0),
            torch.arange(12).reshape(3, 4).t(),  # not contiguous
            torch.arange(10.0)[2:5],  # a view into a larger storage
            torch.randn(3, dtype=torch.bfloat16),
            torch.get_rng_state(),
        ],
    }
    plain = {"optimizer": {}, "scheduler": {}, "sampler": {}}
    save_checkpoint(tmp_path, 2, FakeModel(), FakeTokenizer(), {**plain, "x": odd})
    _same(odd, load_trainer_state(_checkpoint_at(tmp_path))["x"])


def test_a_value_json_cannot_hold_is_refused_when_saving(tmp_path):
    with pytest.raises(TypeError, match=r"x\[1\]: cannot save a set"):
        save_checkpoint(tmp_path, 2, FakeModel(), FakeTokenizer(), {"x": [1, {2}]})
    assert checkpoint_dirs(tmp_path) == []


# ---------------------------------------------------------------- older checkpoints still load


def test_a_legacy_trainer_state_pt_still_loads(tmp_path):
    _, optimizer, scheduler, sampler = _training()
    state = {**_trainer_state(optimizer, scheduler, sampler), "step": 2, "rng": capture_rng()}
    step_dir = tmp_path / "checkpoints" / "step_000002"
    FakeModel().save_pretrained(step_dir)
    torch.save(state, step_dir / LEGACY)  # what earlier versions wrote
    _same(state, load_trainer_state(_checkpoint_at(tmp_path)))


# ---------------------------------------------------------------- damaged files: one line naming them


def _damage(path: pathlib.Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garble": b"\x00garbage" + data[8:]}[how])


@pytest.mark.parametrize("how", ["truncate", "garble"])
@pytest.mark.parametrize("name", ["trainer_state.json", "trainer_state.safetensors", LEGACY])
def test_a_damaged_state_file_is_one_line_naming_it(tmp_path, name, how):
    _, optimizer, scheduler, sampler = _training()
    trainer_state = _trainer_state(optimizer, scheduler, sampler)
    path = save_checkpoint(tmp_path, 2, FakeModel(), FakeTokenizer(), trainer_state)
    if name == LEGACY:
        for new in (ckpt.STATE_FILE, ckpt.TENSORS_FILE):
            (path / new).unlink()
        torch.save({**trainer_state, "step": 2, "rng": capture_rng()}, path / LEGACY)
    _damage(path / name, how)
    with pytest.raises(CheckpointError) as info:
        load_trainer_state(_checkpoint_at(tmp_path))
    message = str(info.value)
    assert "\n" not in message and str(path / name) in message, message


def test_a_state_that_names_a_missing_tensor_is_corrupt(tmp_path):
    _, optimizer, scheduler, sampler = _training()
    path = save_checkpoint(
        tmp_path, 2, FakeModel(), FakeTokenizer(), _trainer_state(optimizer, scheduler, sampler)
    )
    save_file({"other": torch.zeros(1)}, str(path / ckpt.TENSORS_FILE))
    with pytest.raises(
        CheckpointError, match=r"trainer_state.json' is corrupt \(.*tensor 'optimizer.state.0.step' is not in"
    ):
        load_trainer_state(_checkpoint_at(tmp_path))


def test_a_missing_state_is_named(tmp_path):
    _, optimizer, scheduler, sampler = _training()
    path = save_checkpoint(
        tmp_path, 2, FakeModel(), FakeTokenizer(), _trainer_state(optimizer, scheduler, sampler)
    )
    (path / ckpt.STATE_FILE).unlink()
    with pytest.raises(CheckpointError, match=r"is incomplete: trainer_state.json is missing"):
        load_trainer_state(_checkpoint_at(tmp_path))


def test_docstring_examples():
    result = doctest.testmod(ckpt)
    assert result.attempted > 0 and result.failed == 0
