"""The rollout contract, one test body run against every backend available (hf, fast, vllm)."""

from __future__ import annotations

import dataclasses

import torch

from r1zero.rollout import FINISH_REASONS, SamplingParams
from r1zero.rollout.hf import HFEngine
from r1zero.train.forward import sequence_logprobs
from r1zero.train.learner import pack_rollouts

PROMPTS = ["User: what is 3+4?\nAssistant: <think>", "hello", "12+7=19, 3+"]


def _ids(groups):
    return [[r.completion_ids for r in g] for g in groups]


def test_groups_shapes_and_finish_reasons(engine, tokenizer):
    sampling = SamplingParams(n=8, temperature=1.0, max_new_tokens=48, seed=1)
    groups = engine.generate(PROMPTS, sampling)
    assert len(groups) == len(PROMPTS) and all(len(g) == 8 for g in groups)
    reasons = set()
    for prompt, group in zip(PROMPTS, groups, strict=True):
        for r in group:
            assert r.prompt_ids == tuple(tokenizer(prompt)["input_ids"])
            assert 1 <= len(r.completion_ids) == len(r.logprobs) <= 48
            assert all(lp <= 0.0 for lp in r.logprobs)
            assert r.finish_reason in FINISH_REASONS
            reasons.add(r.finish_reason)
            if r.finish_reason == "length":
                assert len(r.completion_ids) == 48 and tokenizer.eos_token_id not in r.completion_ids
            else:  # EOS ends it and is kept; nothing after it
                assert r.completion_ids.index(tokenizer.eos_token_id) == len(r.completion_ids) - 1
            assert r.text == tokenizer.decode(r.completion_ids, skip_special_tokens=True)
    assert reasons == {"stop", "length"}  # this seed samples both kinds


def test_token_id_prompts_equal_text_prompts(engine, tokenizer):
    sampling = SamplingParams(n=2, temperature=0.0, max_new_tokens=16)
    as_text = engine.generate(PROMPTS, sampling)
    as_ids = engine.generate([tokenizer(p)["input_ids"] for p in PROMPTS], sampling)
    assert _ids(as_text) == _ids(as_ids)


def test_stop_string_truncates_text_after_it(engine, tokenizer):
    free = engine.generate(PROMPTS[:1], SamplingParams(n=1, temperature=0.0, max_new_tokens=40))[0][0]
    stop = free.text[6:9]  # a 3-character string the greedy completion contains
    end = free.text.index(stop) + len(stop)
    stopped = engine.generate(PROMPTS[:1], SamplingParams(temperature=0.0, max_new_tokens=40, stop=(stop,)))[
        0
    ][0]
    assert stopped.finish_reason == "stop"
    assert stopped.text == free.text[:end]
    assert stopped.completion_ids == free.completion_ids[: len(stopped.completion_ids)]
    # the last token is the one that completed the stop string
    assert stop in tokenizer.decode(stopped.completion_ids) and stop not in tokenizer.decode(
        stopped.completion_ids[:-1]
    )


def test_same_seed_repeats_other_seed_differs(engine):
    sampling = SamplingParams(n=4, temperature=1.0, top_p=0.95, max_new_tokens=24, seed=7)
    first = engine.generate(PROMPTS, sampling)
    again = engine.generate(PROMPTS, sampling)
    other = engine.generate(PROMPTS, dataclasses.replace(sampling, seed=8))
    assert _ids(first) == _ids(again)
    assert [[r.logprobs for r in g] for g in first] == [[r.logprobs for r in g] for g in again]
    assert _ids(first) != _ids(other)


def test_logprobs_match_learner_recompute(engine, policy, tokenizer):
    # No top-k/top-p: vLLM's log-probs are then of the same distribution (see r1zero.rollout.vllm).
    sampling = SamplingParams(n=4, temperature=0.8, max_new_tokens=32, seed=3)
    rollouts = [r for g in engine.generate(PROMPTS, sampling) for r in g]
    batch = pack_rollouts(rollouts, torch.zeros(len(rollouts)), tokenizer.pad_token_id or 0)
    with torch.no_grad():
        learner, _ = sequence_logprobs(policy, batch, temperature=0.8)  # [B, T], what the loss sees
    mask = batch.loss_mask.bool()
    assert mask.sum() == sum(len(r.completion_ids) for r in rollouts)
    assert torch.allclose(batch.rollout_logp[mask], learner[mask], atol=5e-5), (
        (batch.rollout_logp - learner)[mask].abs().max()
    )


def test_greedy_identical_to_hf_reference(engine, policy, tokenizer):
    sampling = SamplingParams(n=1, temperature=0.0, max_new_tokens=40)
    reference = HFEngine(policy, tokenizer).generate(PROMPTS, sampling)
    assert _ids(engine.generate(PROMPTS, sampling)) == _ids(reference)


def test_load_weights_after_learner_update(engine, policy, tokenizer):
    """Weight sync: after an optimiser step on the learner, greedy outputs equal HF's on the new weights."""
    learner = type(policy)(policy.config)
    learner.load_state_dict(policy.state_dict())
    sampling = SamplingParams(n=1, temperature=0.0, max_new_tokens=24)
    before = _ids(engine.generate(PROMPTS, sampling))
    optimiser = torch.optim.SGD(learner.parameters(), lr=0.5)
    batch = torch.tensor([tokenizer("7+7=14 so the answer is 14")["input_ids"]] * 2)
    for _ in range(3):
        loss = learner(input_ids=batch, labels=batch).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    learner.eval()
    engine.load_weights(learner)
    after = _ids(engine.generate(PROMPTS, sampling))
    assert after == _ids(HFEngine(learner, tokenizer).generate(PROMPTS, sampling))
    assert after != before  # the update changed what greedy decoding says
    engine.load_weights(policy)  # leave the module-scoped engine as it was
