"""``r1zero eval --run`` on a sharded run: each sharded checkpoint is evaluated through its HF export."""

import torch

from r1zero.eval.harness import list_checkpoints, model_dir
from r1zero.train.checkpoint import save_checkpoint
from r1zero.train.sharded_checkpoint import save_sharded_checkpoint


def _model_and_optimizer():
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
    model = LlamaForCausalLM(cfg)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2)


def _tokenizer():
    from r1zero.models.tiny import build_tokenizer

    return build_tokenizer()


def test_a_sharded_checkpoint_is_evaluated_through_its_export_and_a_replicated_one_as_is(tmp_path):
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    model, optimizer = _model_and_optimizer()
    save_checkpoint(
        run, 1, model, _tokenizer(), {"optimizer": optimizer.state_dict(), "scheduler": {}, "sampler": {}}
    )
    save_sharded_checkpoint(run, 2, model, optimizer, _tokenizer(), {}, {"sampler": {}})
    steps = list_checkpoints(run)
    assert model_dir(run, 1, steps[1]) == steps[1]
    exported = model_dir(run, 2, steps[2])
    assert exported == run / "export" / "step_000002"
    loaded = AutoModelForCausalLM.from_pretrained(exported)
    for name, param in loaded.state_dict().items():
        assert torch.equal(param, model.state_dict()[name]), name
    stamp = (exported / "model.safetensors").stat().st_mtime_ns
    assert model_dir(run, 2, steps[2]) == exported  # exported once, then reused
    assert (exported / "model.safetensors").stat().st_mtime_ns == stamp
