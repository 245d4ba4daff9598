"""load_policy / save_policy: Hugging Face format round trips, tiny-base resolution, LoRA."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from r1zero.models import loading
from r1zero.models.loading import LoraSpec, load_policy, resolve_model_path, save_policy
from tests.rollout.fixtures import char_tokenizer, tiny_llama, tiny_qwen2


@pytest.fixture(scope="module", autouse=True)
def _few_threads():
    torch.set_num_threads(1)


@pytest.mark.parametrize("make_model", [tiny_llama, tiny_qwen2], ids=["llama", "qwen2"])
def test_save_then_load_round_trip(tmp_path, make_model):
    model, tok = make_model(seed=5), char_tokenizer()
    out = save_policy(model, tok, tmp_path / "ckpt")
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert (out / "tokenizer.json").is_file()
    loaded, loaded_tok = load_policy(str(out))
    plain = AutoModelForCausalLM.from_pretrained(out)  # what any HF user (and vLLM) does
    ids = torch.tensor([tok("3+4=7")["input_ids"]])
    with torch.no_grad():
        expected = model(ids).logits
        assert torch.equal(loaded(ids).logits, expected) and torch.equal(plain(ids).logits, expected)
    assert loaded_tok("3+4=7")["input_ids"] == tok("3+4=7")["input_ids"]
    assert loaded_tok.padding_side == "left" and loaded_tok.pad_token_id == 0


def test_loaded_weights_own_aligned_storage_and_stay_tied(tmp_path):
    """From a safetensors file, tensors sat at the file's offsets (not 64-byte aligned); BLAS then took
    other kernels and a resumed PPO run drifted in the last bit. Every loaded tensor gets its own storage."""
    from transformers import AutoModelForTokenClassification

    model, tok = tiny_llama(seed=2), char_tokenizer()
    out = save_policy(model, tok, tmp_path / "ckpt")
    plain = AutoModelForCausalLM.from_pretrained(out)
    assert any(p.data_ptr() % 64 for p in plain.parameters())  # what from_pretrained gives here
    loaded, _ = load_policy(str(out))
    head = loading.load_with_new_head(AutoModelForTokenClassification, str(out), num_labels=1)
    for m in (loaded, head):
        assert all(t.data_ptr() % 64 == 0 for t in [*m.parameters(), *m.buffers()])
    if model.config.tie_word_embeddings:
        assert loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight


def test_save_replaces_an_existing_checkpoint_and_leaves_no_temp_dirs(tmp_path):
    tok = char_tokenizer()
    save_policy(tiny_llama(seed=1), tok, tmp_path / "ckpt")
    second = tiny_llama(seed=2)
    save_policy(second, tok, tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    loaded, _ = load_policy(str(tmp_path / "ckpt"))
    assert torch.equal(loaded.model.embed_tokens.weight, second.model.embed_tokens.weight)


def test_failed_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    tok = char_tokenizer()
    first = tiny_llama(seed=1)
    save_policy(first, tok, tmp_path / "ckpt")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tok, "save_pretrained", broken)
    with pytest.raises(OSError, match="disk full"):
        save_policy(tiny_llama(seed=2), tok, tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    loaded, _ = load_policy(str(tmp_path / "ckpt"))
    assert torch.equal(loaded.model.embed_tokens.weight, first.model.embed_tokens.weight)


def test_dtype_and_gradient_checkpointing(tmp_path):
    path = save_policy(tiny_llama(), char_tokenizer(), tmp_path / "ckpt")
    model, _ = load_policy(str(path), dtype="bfloat16", gradient_checkpointing=True)
    on = getattr(model, "is_activation_checkpointing", None)
    assert model.dtype == torch.bfloat16
    assert on if on is not None else model.is_gradient_checkpointing
    with pytest.raises(ValueError, match=r"dtype='fp8'.*valid: \['bfloat16'"):
        load_policy(str(path), dtype="fp8")


def test_unknown_hub_name_offline_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="could not load model 'r1zero-test/no-such-model' from the hub"):
        load_policy("r1zero-test/no-such-model")


def test_tiny_base_resolves_to_the_packaged_directory_or_says_it_is_missing(monkeypatch, tmp_path):
    fake_package = tmp_path / "pkg"
    (fake_package / "assets").mkdir(parents=True)
    monkeypatch.setattr(loading.importlib.resources, "files", lambda name: fake_package)
    with pytest.raises(FileNotFoundError, match="r1zero pretrain --preset tiny-base"):
        resolve_model_path("tiny-base")
    (fake_package / "assets" / "tiny-base").mkdir()
    (fake_package / "assets" / "tiny-base" / "config.json").write_text("{}")
    assert resolve_model_path("tiny-base") == str(fake_package / "assets" / "tiny-base")
    assert resolve_model_path(str(tmp_path)) == str(tmp_path)


@pytest.mark.skipif(
    not (Path(loading.__file__).parent.parent / "assets" / "tiny-base" / "config.json").is_file(),
    reason="the tiny-base checkpoint has not landed yet",
)
def test_packaged_tiny_base_loads_with_plain_auto_model():
    path = resolve_model_path("tiny-base")
    model = AutoModelForCausalLM.from_pretrained(path)
    policy, tok = load_policy("tiny-base")
    ids = torch.tensor([tok("what is 1+2?")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, policy(ids).logits)


@pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft is not installed (extra [lora])")
def test_lora_trains_only_adapters_and_saves_merged_weights(tmp_path):
    path = save_policy(tiny_llama(), char_tokenizer(), tmp_path / "base")
    model, tok = load_policy(str(path), lora=LoraSpec(r=4, alpha=8))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    ids = torch.tensor([tok("12+30=42")["input_ids"]])
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):  # LoRA B starts at zero: two steps move the output
        model(input_ids=ids, labels=ids).loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    merged_dir = save_policy(model, tok, tmp_path / "merged")
    assert not any("adapter" in f for f in os.listdir(merged_dir))
    plain = AutoModelForCausalLM.from_pretrained(merged_dir)
    with torch.no_grad():
        assert torch.allclose(plain(ids).logits, model(ids).logits, atol=1e-5)


@pytest.mark.parametrize("name", ["./runs/no-such-base", "../no-such-base", "/no/such/base"])
def test_a_missing_local_model_directory_is_named(name):
    with pytest.raises(FileNotFoundError, match=f"model directory '{re.escape(name)}' does not exist"):
        resolve_model_path(name)


def test_hub_names_and_existing_directories_pass_through(tmp_path):
    assert resolve_model_path("Qwen/Qwen2.5-Math-1.5B") == "Qwen/Qwen2.5-Math-1.5B"
    assert resolve_model_path(str(tmp_path)) == str(tmp_path)
