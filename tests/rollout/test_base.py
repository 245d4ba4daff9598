"""The shared sampling step and protocol records, checked against Hugging Face's own warpers."""

from __future__ import annotations

import pytest
import torch
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from r1zero.rollout import build_engine
from r1zero.rollout.base import SamplingParams, StopChecker, token_logprobs, truncate_at_stop, warp_logits


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [(1.0, 0, 1.0), (0.7, 0, 1.0), (1.3, 5, 1.0), (0.9, 0, 0.8), (0.6, 12, 0.9)],
)
def test_warp_logits_equals_hf_warpers(temperature, top_k, top_p):
    torch.manual_seed(0)
    logits = torch.randn(6, 50) * 3
    expected = logits.clone()
    if temperature != 1.0:
        expected = TemperatureLogitsWarper(temperature)(None, expected)
    if top_k:
        expected = TopKLogitsWarper(top_k)(None, expected)
    if top_p < 1.0:
        expected = TopPLogitsWarper(top_p)(None, expected)
    assert torch.equal(warp_logits(logits, temperature, top_k, top_p), expected)


def test_top_k_keeps_exactly_k_and_top_p_keeps_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(warp_logits(logits, 1.0, 2, 1.0)).sum() == 2
    assert torch.isfinite(warp_logits(logits, 1.0, 0, 0.75)).tolist() == [[True, True, False, False]]


def test_token_logprobs_are_of_the_temperature_scaled_untruncated_distribution():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    expected = torch.log_softmax(logits / 0.5, -1)[0, 1]
    assert torch.allclose(token_logprobs(logits, torch.tensor([1]), 0.5), expected)
    assert torch.allclose(token_logprobs(logits, torch.tensor([1]), 0.0), torch.log_softmax(logits, -1)[0, 1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n=0"),
        ({"temperature": -1}, "temperature=-1"),
        ({"top_p": 0}, "top_p=0"),
        ({"top_k": -2}, "top_k=-2"),
        ({"max_new_tokens": 0}, "max_new_tokens=0"),
        ({"stop": "</answer>"}, "stop="),
    ],
)
def test_sampling_params_reject_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


@pytest.mark.parametrize(
    ("text", "stop", "expected"),
    [
        ("<answer>7</answer> more", ("</answer>",), ("<answer>7</answer>", True)),
        ("a STOP b END", ("END", "STOP"), ("a STOP", True)),  # the earliest-ending one wins
        ("nothing", ("END",), ("nothing", False)),
        ("", ("END",), ("", False)),
    ],
)
def test_truncate_at_stop(text, stop, expected):
    assert truncate_at_stop(text, stop) == expected


def test_stop_checker_finds_a_stop_string_spanning_tokens(tokenizer):
    checker = StopChecker(tokenizer, ("ab!",), vocab_size=len(tokenizer))
    ids = torch.tensor(
        [
            tokenizer("xxab!", add_special_tokens=False)["input_ids"],
            tokenizer("xxabc", add_special_tokens=False)["input_ids"],
        ]
    )
    active = torch.ones(2, dtype=torch.bool)
    assert checker.hits(ids, 3, active).tolist() == [False, False]
    assert checker.hits(ids, 4, active).tolist() == [True, False]
    assert checker.hits(ids, 4, torch.tensor([False, True])).tolist() == [False, False]


def test_unknown_backend_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid: hf, fast, vllm"):
        build_engine("beam", None, None)


def test_empty_and_mixed_prompts_are_rejected(policy, tokenizer):
    engine = build_engine("hf", policy, tokenizer)
    with pytest.raises(ValueError, match="empty"):
        engine.generate([], SamplingParams())
    with pytest.raises(ValueError, match="mixes"):
        engine.generate(["a", [1, 2]], SamplingParams())
