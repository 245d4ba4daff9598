"""Presets as written: every name resolves against the registries (no model, no hub), GPU presets train
on a train split with held-out sets from elsewhere, ``r1zero train --dry-run`` plans every preset, and
docs/presets.md has a cited row for each."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1zero.data import load_problems
from r1zero.data.generators import GENERATORS, available_generators
from r1zero.data.hub import DATASETS
from r1zero.data.sources import describe_source, overlap
from r1zero.data.templates import get_template
from r1zero.train import cli
from r1zero.train.presets import PRESET_GPUS, PRESETS, check_data, get_preset
from r1zero.verifiers.base import registered_verifier

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "data" / "fixtures"
GPU_PRESETS = sorted(n for n in PRESETS if get_preset(n).rollout.backend == "vllm")


@pytest.fixture(autouse=True)
def _no_hub(monkeypatch):
    """Nothing here may load a dataset or a model."""

    def refuse(*args, **kwargs):
        raise AssertionError("a preset check loaded data from the hub")

    monkeypatch.setattr("r1zero.data.sources.load_hub", refuse)
    monkeypatch.setattr("r1zero.data.hub.load_hub", refuse)


def test_gpu_presets_are_the_planned_ones():
    assert set(GPU_PRESETS) == set(PRESET_GPUS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_name_in_every_preset_is_registered(name):
    config = get_preset(name)
    for source in filter(None, (config.data.source, config.data.heldout_source)):
        info = describe_source(source)
        assert info.kind in ("dataset", "generator"), (name, source)  # never a path or an ad-hoc hub id
        assert info.name in DATASETS or info.name in available_generators()
        verifier = DATASETS[info.name].verifier if info.kind == "dataset" else GENERATORS[info.name].verifier
        registered_verifier(verifier)
    get_template(config.data.template, think=config.data.think_prefix)
    if config.data.verifier:
        registered_verifier(config.data.verifier)
    check_data(config)


@pytest.mark.parametrize("name", GPU_PRESETS)
def test_gpu_presets_train_on_a_train_split_and_hold_out_other_rows(name):
    data = get_preset(name).data
    train = describe_source(data.source)
    assert train.kind == "generator" or train.split == "train", (name, train)
    if data.heldout_source:
        assert describe_source(data.heldout_source).origin != train.origin


#: each GPU preset's train source: a local file shaped like it, and the options the preset gives the set
TRAIN_FIXTURES = {
    "r1zero-paper": ("math_train.jsonl", {"spec": "math"}),
    "dr-grpo": ("math_train.jsonl", {"spec": "math", "level": "3-5"}),
    "simplerl-zoo": ("math_train.jsonl", {"spec": "math", "level": "3-5"}),
    "dapo": ("dapo17k.jsonl", {"spec": "dapo17k"}),
    "ppo-orz": ("orz57k.json", {"spec": "orz57k"}),
}
HELDOUT_FIXTURES = {"math500": "math500.jsonl", "aime24": "aime24.jsonl"}


@pytest.mark.parametrize("name", sorted(TRAIN_FIXTURES))
def test_fixture_copies_of_each_presets_sets_share_no_question(name):
    data = get_preset(name).data
    train_info, heldout_info = describe_source(data.source), describe_source(data.heldout_source)
    file, options = TRAIN_FIXTURES[name]
    assert options["spec"] == train_info.name
    assert ("level" in options) == bool(train_info.levels)
    train = load_problems(FIXTURES / file, **options)
    heldout = load_problems(FIXTURES / HELDOUT_FIXTURES[heldout_info.name], spec=heldout_info.name)
    assert train and heldout and overlap(train, heldout) == []
    leaky = load_problems(FIXTURES / "math_train_leaky.jsonl", spec="math")
    if heldout_info.name == "math500":  # the check is not vacuous: a MATH-500 question in training is caught
        assert [p.answer for p in overlap(leaky, heldout)] == ["23"]


def test_countdown_held_out_problems_are_another_seeds():
    config = get_preset("countdown-3b")
    assert describe_source(config.data.source).kind == "generator" and not config.data.heldout_source
    from r1zero.data.generators import generate

    train = generate("countdown", 200, config.data.difficulty, seed=config.run.seed)
    heldout = generate("countdown", 50, config.data.difficulty, seed=config.run.seed + 1_000_003)
    assert len(overlap(train, heldout)) < 5  # rare collisions; start-up drops them (build.load_problems_for)


def test_a_held_out_set_drawn_from_the_training_rows_is_refused():
    from dataclasses import replace

    config = get_preset("r1zero-paper")
    with pytest.raises(ValueError, match=r"same rows \(math/test\)"):
        check_data(replace(config, data=replace(config.data, source="math")))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_dry_run_plans_every_preset(name, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--preset", name, "--dry-run"]) == 0
    out = capsys.readouterr().out
    config = get_preset(name)
    assert f"train:    {config.data.source} -> " in out and "held-out: " in out
    assert f"run directory: runs/{config.run.name} (new)" in out
    assert not (tmp_path / "runs").exists()  # nothing written
    if name in PRESET_GPUS:
        gpus, _ = PRESET_GPUS[name]
        assert f"r1zero plan --preset {name} --gpus {gpus} --gpu-mem 80" in out
        assert "fits with 10% headroom" in out
        train_line = next(line for line in out.splitlines() if line.startswith("train:"))
        assert "split test" not in train_line


def test_dry_run_of_the_simplerl_zoo_preset():
    lines = cli.dry_run(get_preset("simplerl-zoo")).splitlines()
    assert lines[3:6] == [
        "train:    math:train,level=3-5 -> dataset math, split train, levels 3-5 "
        "(hf:DigitalLearningGmbH/MATH-lighteval[train])",
        "held-out: math500 -> dataset math500, split test (hf:HuggingFaceH4/MATH-500[test]), first 500",
        "disjoint: math/train vs math/test; at start-up held-out questions also in training are dropped",
    ]
    assert lines[6] == "template: qwen-math; verifier: each problem its own"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--data.template", "qwen_math"], "unknown template 'qwen_math'"),
        (["--data.source", "dapo_math_17k"], "did you mean dapo17k"),
        (["--data.source", "math"], "same rows"),
        (["--data.heldout_source", "math5000"], "unknown problem source 'math5000'"),
    ],
)
def test_dry_run_refuses_bad_names(overrides, message, capsys):
    assert cli.main(["--preset", "r1zero-paper", "--dry-run", *overrides]) == 2
    assert message in capsys.readouterr().err


def test_a_real_start_refuses_overlapping_sets_before_making_a_run_directory(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--preset", "simplerl-zoo", "--data.source", "math", "--run.steps", "1"]) == 2
    assert "same rows (math/test)" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_dry_run_memory_table_from_a_local_config_or_says_what_it_needs(tiny_model_dir, capsys, tmp_path):
    assert cli.main(["--preset", "dapo", "--dry-run", "--model.name", str(tiny_model_dir)]) == 0
    assert f"model {tiny_model_dir}" in capsys.readouterr().out
    assert cli.main(["--preset", "dapo", "--dry-run", "--model.name", "someone/unknown-7b"]) == 0
    assert "the memory table needs the model's config.json" in capsys.readouterr().out


def test_presets_doc_has_a_cited_row_per_preset():
    doc = (ROOT / "docs" / "presets.md").read_text()
    rows = {line.split("|")[1].strip(" `") for line in doc.splitlines() if line.startswith("| `")}
    assert set(PRESETS) <= rows
    for citation in ("2501.12948", "2503.20783", "2503.14476", "2503.18892", "2503.24290", "TinyZero"):
        assert citation in doc


def test_cpu_aha_without_its_base_says_how_to_make_it(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--preset", "cpu-aha"]) == 2
    err = capsys.readouterr().err
    assert "model directory './runs/pretrain-tiny-aha' does not exist" in err
    assert "r1zero pretrain --preset tiny-aha" in err
    assert not (tmp_path / "runs").exists()  # no run directory for a run that cannot start
    assert cli.main(["--preset", "cpu-demo", "--model.name", "./no/base", "--run.steps", "1"]) == 2
    assert "model directory './no/base' does not exist" in capsys.readouterr().err
