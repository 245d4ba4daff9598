"""Fixtures for trainer tests: a random-init tiny Llama (the tiny-base architecture, smaller) on disk."""

from pathlib import Path

import pytest
import torch


def make_tiny_model(path: Path, seed: int = 0, hidden_size: int = 32, kv_heads: int = 2) -> Path:
    """Save a random-init tiny-base-architecture model + the real tiny-base tokenizer to ``path``
    (2 heads, so ``hidden_size`` 64 gives the head_dim 32 that vLLM's CPU attention needs; ``kv_heads``
    1 makes it grouped-query)."""
    from transformers import LlamaForCausalLM

    from r1zero.models.tiny import build_tokenizer, tiny_config

    torch.manual_seed(seed)
    config = tiny_config(
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=kv_heads,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    build_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-random"))
