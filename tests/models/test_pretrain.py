"""The pretraining recipe (smoke run writing a loadable checkpoint), the probe, and the shipped checkpoint."""

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from r1zero.models import TINY_BASE_DIR
from r1zero.models.pretrain import PRESETS, main, pack_corpus
from r1zero.models.probe import probe_base, score_strict
from r1zero.models.tiny import build_tokenizer, render_demo_prompt, tiny_config


def test_pack_corpus_shape_and_documents():
    cfg = PRESETS["smoke"]
    tok = build_tokenizer()
    windows = pack_corpus(tok, cfg)
    assert windows.shape == (cfg.steps * cfg.batch_size, cfg.seq_len)
    flat = windows.flatten().tolist()
    assert tok.bos_token_id in flat and tok.eos_token_id in flat
    assert torch.equal(windows, pack_corpus(tok, cfg))  # seeded


def test_smoke_pretrain_writes_a_loadable_checkpoint(tmp_path):
    torch.set_num_threads(1)
    assert main(["--preset", "smoke", "--out", str(tmp_path), "--threads", "1"]) == 0
    record = json.loads((tmp_path / "pretrain.json").read_text())
    assert record["stats"]["steps"] == PRESETS["smoke"].steps
    stats, uniform = record["stats"], math.log(len(build_tokenizer()))  # ln 105 = 4.65
    assert stats["last_step_loss"] < min(stats["first_step_loss"] - 0.1, uniform)  # it learned something
    card = (tmp_path / "README.md").read_text()
    assert card.startswith("# tiny-base") and "| strict accuracy" in card and "Assistant:" in card
    assert json.loads((tmp_path / "probe.json").read_text())["n"] == 4
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    ids = tok(render_demo_prompt("What is 1+2+3+4+5?"), return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] == ids["input_ids"].shape[1] + 3


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        (" <think> 1+2=3, 3+4=7, the answer is 7. </think> <answer>7</answer>", 7, (True, True)),
        ("<think> the answer is 7. </think>\n<answer> 7 </answer>", 7, (True, True)),
        (" <think> the answer is 8. </think> <answer>8</answer>", 7, (True, False)),
        (" the answer is 7.", 7, (False, False)),
        (" the answer is 7. </think> <answer>7</answer>", 7, (False, False)),
        (" <think> </think> <answer>7</answer> </think> <answer>7</answer>", 7, (False, False)),
        (" <think> <think> x </think> <answer>7</answer>", 7, (False, False)),
        (" <think> x </think> <answer>seven</answer>", 7, (True, False)),
    ],
)
def test_score_strict(completion, gold, expected):
    assert score_strict(completion, gold) == expected


def test_score_strict_after_a_prompt_that_opens_think():
    assert score_strict(" 1+2=3, the answer is 3. </think> <answer>3</answer>", 3, think_opened=True) == (
        True,
        True,
    )
    assert score_strict(" <think> 3 </think> <answer>3</answer>", 3, think_opened=True) == (False, False)


def test_probe_runs_on_a_random_model():
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_config(num_hidden_layers=1, hidden_size=32, intermediate_size=64)).eval()
    result = probe_base(model, build_tokenizer(), n=4, seed=0, max_new_tokens=8)
    assert result["n"] == 4 and len(result["examples"]) == 4
    for key in ("accuracy", "format_rate", "worked_fraction", "reflection_rate", "plain_accuracy"):
        assert 0.0 <= result[key] <= 1.0
    assert 0 < result["mean_length_tokens"] <= 8


def test_shipped_checkpoint_loads_and_continues_the_template():
    model = AutoModelForCausalLM.from_pretrained(TINY_BASE_DIR)
    tok = AutoTokenizer.from_pretrained(TINY_BASE_DIR)
    assert model.config.model_type == "llama"
    assert sum(p.numel() for p in model.parameters()) < 2e6
    assert (TINY_BASE_DIR / "README.md").read_text().startswith("# tiny-base")
    ids = tok(render_demo_prompt("What is 3+5+2+7+1+4?"), return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=100, do_sample=False, pad_token_id=tok.pad_token_id)
    text = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "the answer is" in text, text  # a pretrained base answers in its corpus' words
