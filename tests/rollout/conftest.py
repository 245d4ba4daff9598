"""Fixtures of the rollout tests: one tiny random Llama policy and an engine per available backend."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from r1zero.rollout import build_engine
from tests.rollout.fixtures import char_tokenizer, tiny_llama

HAS_VLLM = importlib.util.find_spec("vllm") is not None
BACKEND_PARAMS = [
    "hf",
    "fast",
    pytest.param(
        "vllm",
        marks=[
            pytest.mark.vllm,
            pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed (see .ci/run)"),
        ],
    ),
]


@pytest.fixture(scope="session", autouse=True)
def _few_threads():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tokenizer():
    return char_tokenizer()


@pytest.fixture(scope="module")
def policy():
    return tiny_llama(seed=0)


@pytest.fixture(scope="module", params=BACKEND_PARAMS)
def engine(request, policy, tokenizer):
    options = {"max_model_len": 256} if request.param == "vllm" else {}
    built = build_engine(request.param, policy, tokenizer, **options)
    yield built
    close = getattr(built, "close", None)
    if close is not None:
        close()
