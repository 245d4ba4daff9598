"""vLLM-only checks beyond the contract: an untied GQA Qwen2 with biases, synced twice; the demo's
rollout shape (16 prompts x 8 samples x 128 new tokens), which once crashed vLLM on CPU."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from r1zero.rollout import SamplingParams, build_engine
from r1zero.rollout.hf import HFEngine
from tests.rollout.conftest import HAS_VLLM
from tests.rollout.fixtures import tiny_llama, tiny_qwen2

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


def test_demo_rollout_shape_runs_and_repeats(tokenizer):
    # 16 x 8 prompts hold more than vLLM's CPU budget of 4096 tokens per step: with chunked prefill a
    # seeded request's prefill was split and vLLM crashed ("CPU Generator does not use offset").
    prompts = [
        f"User: what is {i}+{i % 7}+{i % 5}+{2 * i % 9}+8+{i % 3}? Show your work.\nAssistant: <think>"
        for i in range(16)
    ]
    assert 8 * sum(len(tokenizer(p)["input_ids"]) for p in prompts) > 4096
    sampling = SamplingParams(n=8, temperature=1.0, max_new_tokens=128, seed=5)
    engine = build_engine("vllm", tiny_llama(seed=1), tokenizer, max_model_len=256)
    try:
        first = engine.generate(prompts, sampling)
        again = engine.generate(prompts, sampling)
        alone = engine.generate(prompts[:3], sampling)  # per-request seeds: other prompts do not matter
    finally:
        engine.close()
    assert [len(g) for g in first] == [8] * 16
    rollouts = [r for g in first for r in g]
    assert all(1 <= len(r.completion_ids) == len(r.logprobs) <= 128 for r in rollouts)
    assert any(r.finish_reason == "length" for r in rollouts)
    assert len({r.completion_ids for r in rollouts}) > 32  # measured 67: a group is not one sample x 8
    assert [[(r.completion_ids, r.logprobs) for r in g] for g in first] == [
        [(r.completion_ids, r.logprobs) for r in g] for g in again
    ]
    assert [[r.completion_ids for r in g] for g in alone] == [
        [r.completion_ids for r in g] for g in first[:3]
    ]


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _perturb(model: torch.nn.Module, seed: int, scale: float = 0.05) -> None:
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)


@pytest.mark.parametrize(
    ("make", "bucket_mb", "in_process"),
    [(tiny_qwen2, 0.001, False), (tiny_llama, 0.001, False), (tiny_qwen2, 256, True)],
    ids=["qwen2-per-layer", "llama-tied-per-layer", "qwen2-in-process-iterator"],
)  # 0.001 MB: one decoder layer per RPC; in-process (the GPU launcher's mode): one lazy iterator
def test_sync_streams_from_memory_and_writes_no_file(
    tokenizer, tmp_path, monkeypatch, make, bucket_mb, in_process
):
    from transformers import PreTrainedModel

    from r1zero.models import loading

    if in_process:
        monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))  # the engine's worker processes inherit it
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    learner = make(seed=3)
    engine = build_engine("vllm", learner, tokenizer, max_model_len=256, bucket_mb=bucket_mb)
    try:
        assert engine.in_process == in_process
        initial = _greedy(engine)
        before = _tree(tmp)

        def no_disk(*args, **kwargs):
            raise AssertionError("a weight sync wrote a checkpoint")

        monkeypatch.setattr(loading, "save_policy", no_disk)
        monkeypatch.setattr(PreTrainedModel, "save_pretrained", no_disk)
        _perturb(learner, seed=11)
        engine.load_weights(learner)
        assert _tree(tmp) == before
        got = _greedy(engine)
        assert got == _greedy(HFEngine(learner, tokenizer))
        assert got != initial
    finally:
        engine.close()


@pytest.mark.timeout(1500)
def test_fsdp2_sharded_learner_syncs_into_an_engine_on_rank_0(tmp_path):
    # torchrun, 2 gloo ranks: each gathers the shards one tensor at a time, rank 0's engine loads them.
    from tests.rollout.test_weights import run_fsdp_script

    verdict = run_fsdp_script(tmp_path, "--engine", timeout=1400)
    assert verdict["sharded_params"] > 0 and verdict["world"] == 2
    assert verdict["equal_to_hf"] and verdict["changed"]
