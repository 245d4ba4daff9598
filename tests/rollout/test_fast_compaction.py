"""The fast engine drops finished rows from its decode batch, and still samples what ``generate`` samples."""

from __future__ import annotations

import threading

import pytest
import torch

from r1zero.rollout.base import SamplingParams
from r1zero.rollout.fast import FastEngine
from r1zero.rollout.hf import HFEngine
from tests.rollout.fixtures import tiny_llama, tiny_qwen2
from tests.rollout.test_fast import PROMPTS


class _CountingEngine(FastEngine):
    """Records the rows of every decode step."""

    def _step(self, tokens, *args, **kwargs):
        self.__dict__.setdefault("rows_per_step", []).append(tokens.size(0))
        return super()._step(tokens, *args, **kwargs)


@pytest.mark.parametrize("make_model", [tiny_llama, tiny_qwen2], ids=["llama", "qwen2-gqa-bias"])
@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_compacted_decode_matches_hf(make_model, temperature, tokenizer):
    model = make_model(seed=3)
    sampling = SamplingParams(n=6, temperature=temperature, max_new_tokens=30, seed=2, stop=("e", " "))
    hf = HFEngine(model, tokenizer).generate(PROMPTS, sampling)
    engine = _CountingEngine(model, tokenizer)
    fast = engine.generate(PROMPTS, sampling)
    rows = engine.rows_per_step
    assert rows[0] == len(PROMPTS) * sampling.n and min(rows) < rows[0] // 2  # the batch shrank
    lengths = {len(r.completion_ids) for g in fast for r in g}
    assert len(lengths) > 3  # rows finished at many different steps
    for group_hf, group_fast in zip(hf, fast, strict=True):
        for a, b in zip(group_hf, group_fast, strict=True):
            assert a.completion_ids == b.completion_ids
            assert a.text == b.text and a.finish_reason == b.finish_reason
            assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) < 1e-5


def _tokens(groups):
    return [[r.completion_ids for r in g] for g in groups]


def test_decode_threads_split_the_prompts_and_restore_the_callers_threads(tokenizer):
    """k decode threads: each prompt's group is decoded whole by one thread on one torch thread; greedy
    decoding gives the same tokens as one thread, seeded sampling repeats itself for the same k."""
    model = tiny_qwen2(seed=1)
    prompts = [*PROMPTS, "7 + 8 = ?"]  # an odd count: an uneven split over 2 threads
    counts: list[tuple[str, int]] = []

    class Probe(FastEngine):
        def _step(self, *args, **kwargs):
            counts.append((threading.current_thread().name, torch.get_num_threads()))
            return super()._step(*args, **kwargs)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        greedy = SamplingParams(n=2, temperature=0.0, max_new_tokens=12)
        one = Probe(model, tokenizer).generate(prompts, greedy)
        assert {c for _, c in counts} == {1} and torch.get_num_threads() == 2  # the caller's count is back
        counts.clear()
        two = Probe(model, tokenizer, decode_threads=2).generate(prompts, greedy)
        workers = {name for name, _ in counts}
        assert len(workers) == 2 and all(n.startswith("r1zero-decode") for n in workers)
        assert {c for _, c in counts} == {1} and torch.get_num_threads() == 2
        sampled = SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=4)
        engine = FastEngine(model, tokenizer, decode_threads=2)
        first, again = engine.generate(prompts, sampled), engine.generate(prompts, sampled)
        many = FastEngine(model, tokenizer, decode_threads=8).generate(prompts, greedy)  # > prompts
    finally:
        torch.set_num_threads(before)
    assert _tokens(one) == _tokens(two) == _tokens(many)
    for group_one, group_two in zip(one, two, strict=True):
        for a, b in zip(group_one, group_two, strict=True):
            assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) < 1e-5
    assert _tokens(first) == _tokens(again) and [len(g) for g in first] == [3] * len(prompts)
    with pytest.raises(ValueError, match="decode_threads=0"):
        FastEngine(model, tokenizer, decode_threads=0)
