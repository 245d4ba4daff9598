"""Your own data file just works: with no held-out source, its rows are split into train and held-out."""

from __future__ import annotations

import json
import logging

import pytest

from r1zero.train import build
from r1zero.train.cli import build_config
from r1zero.train.config import DataConfig, RunConfig, TrainConfig
from r1zero.train.session import open_session
from tests.train.conftest import make_tiny_model


def _own_file(path, n):
    rows = [{"question": f"Sum of [{i}, {i + 1}]?", "answer": str(2 * i + 1)} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _split(path, size, seed):
    config = TrainConfig(data=DataConfig(source=str(path), heldout_size=size), run=RunConfig(seed=seed))
    train = build.load_problems_for(config)
    return train, build.load_problems_for(config, True, train)


def test_split_is_disjoint_sized_and_seeded(tmp_path, caplog):
    path = _own_file(tmp_path / "mine.jsonl", 50)
    caplog.set_level(logging.INFO, logger="r1zero.train.build")
    train, heldout = _split(path, 8, seed=0)
    assert len(heldout) == 8 and len(train) == 42
    assert not {p.id for p in train} & {p.id for p in heldout}
    assert f"held-out: 8 of 50 rows of {path}, seed 0; the other 42 train" in caplog.text
    again_train, again_heldout = _split(path, 8, seed=0)
    assert [p.id for p in again_heldout] == [p.id for p in heldout]
    assert [p.id for p in again_train] == [p.id for p in train]
    other = _split(path, 8, seed=1)[1]
    assert {p.id for p in other} != {p.id for p in heldout}


def test_a_small_file_holds_out_all_but_one(tmp_path):
    train, heldout = _split(_own_file(tmp_path / "small.jsonl", 3), 64, seed=0)
    assert len(train) == 1 and len(heldout) == 2


def test_no_heldout_trains_on_every_row(tmp_path):
    path = _own_file(tmp_path / "all.jsonl", 5)
    config = TrainConfig(data=DataConfig(source=str(path), heldout_size=0))
    assert len(build.load_problems_for(config)) == 5


def test_a_given_heldout_source_is_used_as_is(tmp_path):
    train_file = _own_file(tmp_path / "train.jsonl", 5)
    heldout_file = tmp_path / "heldout.jsonl"
    heldout_file.write_text(json.dumps({"question": "Sum of [7, 7]?", "answer": "14"}) + "\n")
    config = TrainConfig(
        data=DataConfig(source=str(train_file), heldout_source=str(heldout_file), heldout_size=4)
    )
    train = build.load_problems_for(config)
    assert len(train) == 5 and len(build.load_problems_for(config, True, train)) == 1


def test_generators_keep_another_seed_for_heldout():
    config = TrainConfig(data=DataConfig(source="list_sum", train_size=20, heldout_size=5))
    train = build.load_problems_for(config)
    assert len(train) == 20 and len(build.load_problems_for(config, True, train)) <= 5


@pytest.mark.filterwarnings("ignore")
def test_a_smoke_run_on_own_data_opens(tmp_path):
    path = _own_file(tmp_path / "mine.jsonl", 20)
    model_dir = make_tiny_model(tmp_path / "model")
    argv = ["--preset", "smoke", "--model.name", str(model_dir), "--model.device", "cpu"]
    argv += ["--data.source", str(path), "--data.heldout_size", "4", "--reward.workers", "0"]
    argv += ["--run.out_dir", str(tmp_path / "runs")]
    session = open_session(build_config(argv)[0], resume=False)
    assert len(session.heldout) == 4 and len(session.problems) == 16
    assert not {p.id for p in session.problems} & {p.id for p in session.heldout}
