"""vLLM-only checks beyond the contract: an untied GQA Qwen2 with biases, synced twice."""

from __future__ import annotations

import pytest
import torch

from r1zero.rollout import SamplingParams, build_engine
from r1zero.rollout.hf import HFEngine
from tests.rollout.conftest import HAS_VLLM
from tests.rollout.fixtures import tiny_qwen2

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed (see .ci/run)"),
]

PROMPTS = ["User: what is 3+4?\nAssistant: <think>", "hello", "12+7=19, 3+"]


def _greedy(engine):
    sampling = SamplingParams(n=2, temperature=0.0, max_new_tokens=24)
    return [[r.completion_ids for r in g] for g in engine.generate(PROMPTS, sampling)]


def test_qwen2_untied_weights_follow_two_learner_updates(tokenizer):
    learner = tiny_qwen2(seed=6)
    engine = build_engine("vllm", learner, tokenizer, max_model_len=256)
    try:
        seen = [_greedy(engine)]
        assert seen[0] == _greedy(HFEngine(learner, tokenizer))
        for step in range(2):
            with torch.no_grad():
                gen = torch.Generator().manual_seed(step)
                for p in learner.parameters():
                    p.add_(torch.randn(p.shape, generator=gen) * 0.05)
            engine.load_weights(learner)
            seen.append(_greedy(engine))
            assert seen[-1] == _greedy(HFEngine(learner, tokenizer))
        assert seen[0] != seen[1] != seen[2]
    finally:
        engine.close()
