"""The fast CPU engine against Hugging Face generate: same greedy tokens, same seeded samples."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from r1zero.rollout.base import SamplingParams
from r1zero.rollout.fast import FastEngine
from r1zero.rollout.hf import HFEngine
from tests.rollout.fixtures import tiny_llama, tiny_qwen2

# Prompts of very different lengths, so left padding and per-row positions matter.
PROMPTS = [
    "User: what is 3+4+8+1?\nAssistant: <think>",
    "hi",
    "5+5=10, 7+",
    "abcdefghijklmnopqrstuvwxyz 0123",
]
SAMPLINGS = [
    SamplingParams(n=3, temperature=0.0, max_new_tokens=40),
    SamplingParams(n=4, temperature=1.0, max_new_tokens=40, seed=11),
    SamplingParams(
        n=4, temperature=0.7, top_k=20, top_p=0.9, max_new_tokens=40, seed=5, stop=("e", "</answer>")
    ),
]


@pytest.mark.parametrize("make_model", [tiny_llama, tiny_qwen2], ids=["llama", "qwen2-gqa-bias"])
@pytest.mark.parametrize("sampling", SAMPLINGS, ids=["greedy", "t1", "t0.7-topk-topp-stop"])
def test_fast_matches_hf_tokens_and_logprobs(make_model, sampling, tokenizer):
    model = make_model(seed=2)
    hf = HFEngine(model, tokenizer).generate(PROMPTS, sampling)
    fast = FastEngine(model, tokenizer).generate(PROMPTS, sampling)
    for group_hf, group_fast in zip(hf, fast, strict=True):
        for a, b in zip(group_hf, group_fast, strict=True):
            assert a.completion_ids == b.completion_ids
            assert a.text == b.text and a.finish_reason == b.finish_reason
            assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) < 1e-5


def test_fast_batches_split_by_max_batch_rows_give_the_same_greedy_tokens(tokenizer):
    model = tiny_qwen2(seed=4)
    sampling = SamplingParams(n=2, temperature=0.0, max_new_tokens=20)
    whole = FastEngine(model, tokenizer).generate(PROMPTS, sampling)
    split = FastEngine(model, tokenizer, max_batch_rows=2).generate(PROMPTS, sampling)
    assert [[r.completion_ids for r in g] for g in whole] == [[r.completion_ids for r in g] for g in split]


def test_fast_rejects_other_architectures(tokenizer):
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=112, n_embd=32, n_layer=1, n_head=2))
    with pytest.raises(ValueError, match="model_type in \\('llama', 'qwen2'\\), got 'gpt2'"):
        FastEngine(gpt2, tokenizer)


def test_fast_rejects_sequences_past_the_position_table(tokenizer):
    engine = FastEngine(tiny_llama(max_position_embeddings=32), tokenizer)
    with pytest.raises(ValueError, match="max_position_embeddings=32"):
        engine.generate(["x" * 20], SamplingParams(max_new_tokens=20))


def test_fast_leaves_the_callers_rng_alone(tokenizer):
    engine = FastEngine(tiny_llama(), tokenizer)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    engine.generate(PROMPTS, SamplingParams(n=2, max_new_tokens=8, seed=9))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.gpu
@pytest.mark.parametrize("engine_class", [HFEngine, FastEngine], ids=["hf", "fast"])
def test_cuda_greedy_equals_cpu_greedy(engine_class, tokenizer):
    model = tiny_qwen2(seed=2)
    sampling = SamplingParams(n=2, temperature=0.0, max_new_tokens=24, stop=("e",))
    on_cpu = engine_class(model, tokenizer).generate(PROMPTS, sampling)
    on_gpu = engine_class(model.to("cuda"), tokenizer).generate(PROMPTS, sampling)
    assert [[r.completion_ids for r in g] for g in on_gpu] == [[r.completion_ids for r in g] for g in on_cpu]


@pytest.mark.gpu
@pytest.mark.parametrize("sampling", SAMPLINGS, ids=["greedy", "t1", "t0.7-topk-topp-stop"])
def test_cuda_fast_matches_cuda_hf_tokens_and_logprobs(sampling, tokenizer):
    model = tiny_qwen2(seed=2).to("cuda")
    hf = HFEngine(model, tokenizer).generate(PROMPTS, sampling)
    fast = FastEngine(model, tokenizer).generate(PROMPTS, sampling)
    for group_hf, group_fast in zip(hf, fast, strict=True):
        for a, b in zip(group_hf, group_fast, strict=True):
            assert a.completion_ids == b.completion_ids
            assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) < 1e-4
