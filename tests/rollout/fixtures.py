"""Tiny random models and a character-level tokenizer, built in-process (no hub, no downloads)."""

from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]


def char_tokenizer() -> PreTrainedTokenizerFast:
    """Character-level WordLevel tokenizer: PAD=0, BOS=1, EOS=2, UNK=3, printable ASCII, four tags."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for ch in "\n" + "".join(c for c in string.printable if c.isprintable()):
        vocab[ch] = len(vocab)
    for tag in TAGS:
        vocab[tag] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in TAGS])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIALS])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def _common(**overrides) -> dict:
    fields = dict(
        vocab_size=112,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,  # head_dim 32: vLLM's CPU attention kernels need head_dim >= 32
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    fields.update(overrides)
    return fields


def tiny_llama(seed: int = 0, **overrides) -> LlamaForCausalLM:
    """A random 2-layer Llama with tied embeddings (the tiny-base layout, smaller)."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**_common(**{"tie_word_embeddings": True, **overrides})))
    return model.eval()


def tiny_qwen2(seed: int = 0, **overrides) -> Qwen2ForCausalLM:
    """A random 2-layer Qwen2: grouped-query attention (2 heads, 1 KV head), Q/K/V biases, untied head."""
    torch.manual_seed(seed)
    fields = _common(**{"num_key_value_heads": 1, "tie_word_embeddings": False, **overrides})
    model = Qwen2ForCausalLM(Qwen2Config(**fields))
    with torch.no_grad():
        for layer in model.model.layers:  # random, non-zero biases so the bias path is exercised
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0, 0.02)
    return model.eval()


def save_policy_dir(model, tokenizer, directory: Path) -> Path:
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
