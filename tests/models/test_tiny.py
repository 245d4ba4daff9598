"""tiny-base tokenizer and config: round trips, reload through AutoTokenizer, sizes."""

import pytest
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from r1zero.models.tiny import DEMO_TEMPLATE, TAGS, build_tokenizer, render_demo_prompt, tiny_config

TEXTS = [
    "What is 3+5+2+7+1?",
    "<think> 3+5=8, 8+2=10, wait, 8+2=10, the answer is 10. </think> <answer>10</answer>",
    "Line one\nline two\twith tab and symbols !@#$%^&*()[]{}",
]


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(text):
    tok = build_tokenizer()
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_tags_are_single_tokens_and_characters_are_one_each():
    tok = build_tokenizer()
    for tag in TAGS:
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1
    assert len(tok("12+34", add_special_tokens=False)["input_ids"]) == 5
    assert tok("é", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]


def test_autotokenizer_reload(tmp_path):
    tok = build_tokenizer()
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    prompt = render_demo_prompt("What is 1+2+3+4+5?")
    assert again(prompt)["input_ids"] == tok(prompt)["input_ids"]
    assert (again.bos_token_id, again.eos_token_id, again.pad_token_id) == (1, 2, 0)
    batch = again(["ab", "abcd"], padding=True)
    assert batch["input_ids"][0][:2] == [0, 0]  # left padding, for generation


def test_config_fits_tokenizer_and_template():
    tok = build_tokenizer()
    cfg = tiny_config()
    assert cfg.vocab_size >= len(tok)
    prompt_len = len(tok(render_demo_prompt("What is 9+9+9+9+9+9+9+9?"))["input_ids"])
    assert prompt_len + 120 <= 256 <= cfg.max_position_embeddings
    model = LlamaForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.5e6 < n_params < 1.5e6
    out = model(torch.tensor([tok("<think> 1+1=2")["input_ids"]]))
    assert out.logits.shape[-1] == cfg.vocab_size


def test_config_overrides_and_errors():
    assert tiny_config(num_hidden_layers=2).num_hidden_layers == 2
    with pytest.raises(ValueError, match="unknown tiny_config overrides"):
        tiny_config(hiden_size=3)
    with pytest.raises(ValueError, match="vocab_size"):
        tiny_config(vocab_size=50)


def test_template_is_r1zero_style():
    assert "{question}" in DEMO_TEMPLATE
    for tag in TAGS:
        assert tag in DEMO_TEMPLATE
    assert DEMO_TEMPLATE.endswith("Assistant:")
