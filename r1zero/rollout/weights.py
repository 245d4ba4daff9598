"""The learner's weights as a stream of ``(hf_name, full tensor)`` pairs, for pushing to a rollout engine.

Nothing is written to disk and the whole model is never gathered at once:

- **Sharded learners** (FSDP2): a ``DTensor`` parameter is gathered with ``full_tensor()`` when the stream
  reaches it (a collective: every rank must iterate the stream in the same order) and dropped once the
  consumer has moved on.
- **LoRA** (PEFT): a LoRA layer yields ``base + delta`` (its ``get_delta_weight``), named like the plain
  model's weight; the adapter tensors themselves are not yielded.
- **Tied embeddings**: ``lm_head.weight`` is skipped when the config ties it to the input embedding (the
  engine re-ties its head to the new embedding).

``buckets`` groups the stream into lists of at most ``bucket_bytes`` (one tensor alone may exceed it), the
unit one RPC or HTTP request carries.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

__all__ = ["buckets", "full_weights", "hf_name", "layer_of"]

_PEFT_PREFIX = "base_model.model."


def hf_name(name: str) -> str:
    """The plain Hugging Face name of a (PEFT-wrapped) parameter.

    >>> hf_name("base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight")
    'model.layers.0.self_attn.q_proj.weight'
    >>> hf_name("model.norm.weight")
    'model.norm.weight'
    """
    return name.removeprefix(_PEFT_PREFIX).replace(".base_layer.", ".")


def _is_adapter(name: str) -> bool:
    parts = name.split(".")
    return any(p.startswith(("lora_", "lora_magnitude")) for p in parts)


def _full(tensor: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def _tied(model: torch.nn.Module) -> bool:
    config = getattr(model, "config", None)
    return bool(getattr(config, "tie_word_embeddings", False))


@torch.no_grad()
def full_weights(
    model: torch.nn.Module, dtype: torch.dtype | None = None
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(hf_name, tensor)`` for every weight of ``model``, one full tensor at a time.

    Args:
        model: the learner: a plain ``*ForCausalLM``, its FSDP2-sharded form, or a PEFT LoRA model.
        dtype: cast each tensor to this dtype (the engine's) before yielding; None keeps it.
    """
    modules = dict(model.named_modules())
    skip_head = _tied(model)
    for name, param in model.named_parameters():
        if _is_adapter(name):
            continue
        plain = hf_name(name)
        if skip_head and plain == "lm_head.weight":
            continue
        tensor = _full(param.detach())
        owner, _, leaf = name.rpartition(".")
        if ".base_layer" in name and leaf == "weight":
            lora = modules[owner.removesuffix(".base_layer")]
            if not getattr(lora, "merged", False):
                tensor = tensor.clone()
                for adapter in getattr(lora, "active_adapters", ()):
                    if adapter in getattr(lora, "lora_A", {}):
                        tensor += _full(lora.get_delta_weight(adapter)).to(tensor.dtype)
        yield plain, tensor if dtype is None else tensor.to(dtype)


def layer_of(name: str) -> str:
    """The decoder layer a weight belongs to (``model.layers.N``), else the weight's own name.

    >>> layer_of("model.layers.12.self_attn.q_proj.weight")
    'model.layers.12'
    >>> layer_of("model.embed_tokens.weight")
    'model.embed_tokens.weight'
    """
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part == "layers" and parts[i + 1].isdigit():
            return ".".join(parts[: i + 2])
    return name


def buckets(
    weights: Iterable[tuple[str, torch.Tensor]], bucket_bytes: int
) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Group a weight stream into lists of about ``bucket_bytes``, never splitting a decoder layer.

    A bucket closes only between layers (``layer_of``): vLLM fuses a layer's projections (q/k/v into
    ``qkv_proj``, gate/up into ``gate_up_proj``) and processes a fused weight when its load call ends, so a
    call carrying ``q_proj`` without ``k_proj`` would leave part of it unset. A layer larger than
    ``bucket_bytes`` travels alone.

    >>> ws = [("a", torch.zeros(4)), ("b", torch.zeros(4)), ("c", torch.zeros(16))]
    >>> [[n for n, _ in b] for b in buckets(ws, bucket_bytes=32)]
    [['a', 'b'], ['c']]
    >>> [[n for n, _ in b] for b in buckets(ws, bucket_bytes=16)]
    [['a'], ['b'], ['c']]
    >>> layer = [(f"model.layers.0.{n}", torch.zeros(4)) for n in ("q", "k", "v")]
    >>> [[n[-1] for n, _ in b] for b in buckets(layer + [("lm_head", torch.zeros(4))], bucket_bytes=16)]
    [['q', 'k', 'v'], ['d']]
    """
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes must be > 0, got {bucket_bytes}")
    bucket: list[tuple[str, torch.Tensor]] = []
    size, layer = 0, None
    for name, tensor in weights:
        nbytes = tensor.numel() * tensor.element_size()
        if bucket and size + nbytes > bucket_bytes and layer_of(name) != layer:
            yield bucket
            bucket, size = [], 0
        bucket.append((name, tensor))
        size += nbytes
        layer = layer_of(name)
    if bucket:
        yield bucket
