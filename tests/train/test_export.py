"""``r1zero export``: a replicated or sharded checkpoint becomes one Hugging Face model directory."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from r1zero import cli
from r1zero.train import export
from r1zero.train.checkpoint import save_checkpoint
from r1zero.train.sharded_checkpoint import save_sharded_checkpoint


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


def _trained(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.randint(3, 90, (2, 9), generator=torch.Generator().manual_seed(seed))  # [B, T]
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    return model, optimizer


def _run(tmp_path: Path, sharded: bool, steps=(1, 2)) -> tuple[Path, dict[int, dict[str, torch.Tensor]]]:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    weights = {}
    for step in steps:
        model, optimizer = _trained(step)
        weights[step] = {k: v.clone() for k, v in model.state_dict().items()}
        if sharded:
            save_sharded_checkpoint(run, step, model, optimizer, _tokenizer(), {}, {"sampler": {}})
        else:
            state = {"optimizer": optimizer.state_dict(), "scheduler": {}, "sampler": {}}
            save_checkpoint(run, step, model, _tokenizer(), state)
    return run, weights


@pytest.mark.parametrize("sharded", [False, True])
@pytest.mark.parametrize("step", [None, 1])
def test_export_writes_the_checkpoints_weights_as_a_hugging_face_model(tmp_path, sharded, step):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run, weights = _run(tmp_path, sharded)
    argv = [str(run)] + ([] if step is None else ["--step", str(step)])
    assert export.main(argv) == 0
    out = run / "export" / f"step_{step or 2:06d}"
    loaded = AutoModelForCausalLM.from_pretrained(out)
    for name, param in loaded.state_dict().items():
        assert torch.equal(param, weights[step or 2][name]), name
    assert AutoTokenizer.from_pretrained(out)("1+2").input_ids == _tokenizer()("1+2").input_ids
    assert (
        not list(out.glob("trainer_state*")) and not list(out.glob("rank_*")) and not (out / "dcp").exists()
    )
    assert "lm_head.weight" not in load_file(out / "model.safetensors")  # tied to the embedding


def test_a_replicated_export_copies_the_weights_file_byte_for_byte(tmp_path):
    run, _ = _run(tmp_path, sharded=False, steps=(3,))
    out = export.export_checkpoint(run / "checkpoints" / "step_000003", tmp_path / "out")
    source = run / "checkpoints" / "step_000003" / "model.safetensors"
    assert (out / "model.safetensors").read_bytes() == source.read_bytes()


#: (arguments after the run directory, the one-line error)
BAD = [
    (["--step", "7"], "has no checkpoint at step 7; steps available: 1, 2"),
    (["--out", "{run}/checkpoints"], "exists and is not empty; choose another --out"),
]


@pytest.mark.parametrize(("extra", "message"), BAD)
def test_bad_arguments_are_one_line_errors_naming_the_value(tmp_path, capsys, extra, message):
    run, _ = _run(tmp_path, sharded=True)
    argv = ["export", str(run), *[a.format(run=run) for a in extra]]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("r1zero export: ") and message in err and "\n" not in err


def test_a_missing_run_or_a_run_without_checkpoints_is_named(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path / "nope")]) == 2
    assert f"run directory {str(tmp_path / 'nope')!r} does not exist" in capsys.readouterr().err
    run = tmp_path / "empty"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert cli.main(["export", str(run)]) == 2
    assert "has no checkpoint (steps available: none)" in capsys.readouterr().err


def test_a_damaged_step_is_refused_with_the_steps_there_are(tmp_path):
    run, _ = _run(tmp_path, sharded=True)
    (run / "checkpoints" / "step_000002" / "dcp" / ".metadata").unlink()
    with pytest.raises(ValueError, match=r"step_000002.*dcp/\.metadata is missing\); steps available: 1, 2"):
        export.find_checkpoint(run, 2)
    assert export.find_checkpoint(run).step == 1  # the newest complete one


def test_the_export_command_is_registered():
    assert cli.COMMANDS["export"][0] == "r1zero.train.export"
