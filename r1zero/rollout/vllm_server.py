"""The ``vllm-server`` rollout engine: sample from an ``r1zero serve-rollouts`` server, push weights to it.

The server (``r1zero.rollout.serve``) runs vLLM on its own devices (other GPUs of the node, another
node); the trainer reaches it over HTTP at ``url``. This client needs no vLLM: only the standard library
and safetensors.

- ``generate`` sends prompt token ids and the sampling settings (``POST /generate``); prompt ``i`` gets the
  per-request seed ``seed + i`` there, as with the ``vllm`` engine, and each sampled token's log-prob
  comes back. Completion text is decoded here with the trainer's tokenizer.
- ``load_weights`` streams the learner's tensors (``r1zero.rollout.weights.full_weights``: FSDP2 shards
  gathered one parameter at a time, LoRA merged, a tied head skipped) in buckets of whole decoder layers,
  each one safetensors-encoded in memory (``POST /weights``), then ``POST /weights/done``. Under
  ``torch.distributed`` every rank iterates the stream (gathering is a collective), rank 0 alone sends,
  and all ranks wait for it before sampling again.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch

from r1zero.rollout.base import Rollout, SamplingParams, encode_prompts, truncate_at_stop
from r1zero.rollout.weights import buckets, full_weights

__all__ = ["VLLMServerEngine", "decode_bucket", "encode_bucket"]

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def encode_bucket(bucket: Sequence[tuple[str, torch.Tensor]]) -> bytes:
    """A bucket of ``(name, tensor)`` as safetensors bytes (in memory; no pickle).

    >>> decode_bucket(encode_bucket([("w", torch.ones(2))]))
    [('w', tensor([1., 1.]))]
    """
    from safetensors.torch import save

    return save({name: t.detach().contiguous().cpu() for name, t in bucket})


def decode_bucket(data: bytes) -> list[tuple[str, torch.Tensor]]:
    """The ``(name, tensor)`` pairs of ``encode_bucket``'s bytes, in their order there."""
    from safetensors.torch import load

    return list(load(data).items())


class VLLMServerEngine:
    """Rollouts from a remote ``r1zero serve-rollouts`` server.

    Args:
        model: the learner (unused until ``load_weights``; the server loaded its own starting weights).
        tokenizer: the learner's tokenizer (encodes prompts, decodes completions).
        url: the server's base URL, e.g. ``http://127.0.0.1:8000``.
        timeout: seconds one request may take (a generate call of a big batch is long).
        bucket_mb: megabytes of weights per ``POST /weights`` (whole decoder layers; one layer may exceed it).
    """

    name = "vllm-server"

    def __init__(
        self,
        model: torch.nn.Module | None,
        tokenizer,
        *,
        url: str,
        timeout: float = 3600.0,
        bucket_mb: int = 256,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"rollout url {url!r} must start with http:// or https://")
        self.tokenizer = tokenizer
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.bucket_bytes = int(bucket_mb * 2**20)
        info = self._request("GET", "/health")
        self.dtype = _DTYPES.get(info.get("dtype", ""))
        logger.info("rollout server %s: %s", self.url, info)

    def _request(self, method: str, path: str, body: bytes | None = None, content: str = "") -> dict:
        request = urllib.request.Request(self.url + path, data=body, method=method)
        if content:
            request.add_header("Content-Type", content)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise RuntimeError(f"rollout server {self.url}{path}: HTTP {exc.code}: {detail}") from exc
        except urllib.error.URLError as exc:
            raise ConnectionError(
                f"no rollout server at {self.url} ({exc.reason}); start one with r1zero serve-rollouts"
            ) from exc

    def generate(
        self, prompts: Sequence[str] | Sequence[Sequence[int]], sampling: SamplingParams
    ) -> list[list[Rollout]]:
        prompt_ids = encode_prompts(self.tokenizer, prompts)
        payload = {"prompt_ids": prompt_ids, "sampling": _sampling_dict(sampling)}
        reply = self._request("POST", "/generate", json.dumps(payload).encode(), "application/json")
        return [
            [self._rollout(ids, c, sampling) for c in group]
            for ids, group in zip(prompt_ids, reply["groups"], strict=True)
        ]

    def _rollout(
        self, prompt_ids: list[int], completion: dict[str, Any], sampling: SamplingParams
    ) -> Rollout:
        ids = tuple(int(t) for t in completion["ids"])
        text, _ = truncate_at_stop(self.tokenizer.decode(ids, skip_special_tokens=True), sampling.stop)
        logprobs = tuple(float(x) for x in completion["logprobs"])
        return Rollout(tuple(prompt_ids), ids, text, logprobs, completion["finish_reason"])

    @torch.no_grad()
    def load_weights(self, model: torch.nn.Module) -> None:
        """Push the learner's weights to the server (see the module docstring)."""
        dist = torch.distributed
        distributed = dist.is_available() and dist.is_initialized()
        sender = not distributed or dist.get_rank() == 0
        for bucket in buckets(full_weights(model, self.dtype), self.bucket_bytes):
            if sender:
                self._request("POST", "/weights", encode_bucket(bucket), "application/octet-stream")
        if sender:
            self._request("POST", "/weights/done", b"", "application/json")
        if distributed:
            dist.barrier()  # no rank samples before the server has the new weights

    def close(self) -> None:
        """Nothing to free here: the server outlives the trainer."""


def _sampling_dict(sampling: SamplingParams) -> dict[str, Any]:
    """The JSON form of ``sampling`` (``stop`` as a list).

    >>> _sampling_dict(SamplingParams(n=2, stop=("</answer>",)))["stop"]
    ['</answer>']
    """
    fields = asdict(sampling)
    fields["stop"] = list(sampling.stop)
    return fields
