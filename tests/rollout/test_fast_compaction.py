"""The fast engine drops finished rows from its decode batch, and still samples what ``generate`` samples."""

from __future__ import annotations

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


def test_decode_threads_are_scoped_and_do_not_change_samples(tokenizer):
    model = tiny_qwen2(seed=1)
    sampling = SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=4)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        counts = []

        class Probe(FastEngine):
            def _step(self, *args, **kwargs):
                counts.append(torch.get_num_threads())
                return super()._step(*args, **kwargs)

        one = Probe(model, tokenizer).generate(PROMPTS, sampling)
        assert set(counts) == {1} and torch.get_num_threads() == 2  # the caller's count is back
        counts.clear()
        two = Probe(model, tokenizer, decode_threads=2).generate(PROMPTS, sampling)
        assert set(counts) == {2}
    finally:
        torch.set_num_threads(before)
    assert [[r.completion_ids for r in g] for g in one] == [[r.completion_ids for r in g] for g in two]
    with pytest.raises(ValueError, match="decode_threads=0"):
        FastEngine(model, tokenizer, decode_threads=0)
