"""FSDP2 sharding of the learner (``model.sharding fsdp``): weights, gradients and AdamW state split
over the ranks, float32 master weights with a lower-precision compute dtype.

``shard_model`` applies torch's ``fully_shard`` to each decoder layer, then to the root (the embedding,
final norm and LM head), as torchtitan and verl do: a layer's full weights exist only during its own
forward/backward. ``MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)`` computes in bf16
while the optimizer steps float32 shards and gradients are reduced in float32.

Gradients are summed over ranks, not averaged: the loss normalisers are already the whole step's
(``r1zero.train.learner``), so FSDP2's default division by the world size is switched off
(``set_gradient_divide_factor(1.0)``, with plain SUM collectives, which gloo also has). The sharded parameters are DTensors: the gradient norm is one
(``grad_norm`` turns it into a plain tensor, the same on every rank, so every rank skips the same
non-finite steps). The rollout engines need full weights: ``FullWeightsEngine`` gathers them into an
unsharded copy before each ``load_weights``.

Every rank must run the same number of forward/backward calls on a sharded model (each one gathers
the layers' shards): the learner splits rows into fixed-size micro-batches under FSDP, and each rank
holds the same number of rows (``collect_groups``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import Any

import torch

__all__ = [
    "FullWeightsEngine",
    "copy_full_weights",
    "decoder_layers",
    "grad_norm",
    "is_sharded",
    "shard_model",
    "unsharded_copy",
]

log = logging.getLogger(__name__)


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks to shard one by one: modules of the model's ``_no_split_modules`` classes
    (Hugging Face's list of blocks that must stay on one device), else ``model.model.layers``.

    >>> from transformers import LlamaForCausalLM
    >>> from r1zero.models.tiny import tiny_config
    >>> len(decoder_layers(LlamaForCausalLM(tiny_config(num_hidden_layers=3))))
    3
    """
    names = set(getattr(model, "_no_split_modules", None) or ())
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names |= set(getattr(base, "_no_split_modules", None) or ())
    found = [m for m in model.modules() if type(m).__name__ in names]
    if found:
        return found
    layers = getattr(getattr(base, "model", None), "layers", None)
    if layers is None:
        raise ValueError(
            f"cannot find the decoder layers of {type(model).__name__} to shard: it names no "
            "_no_split_modules and has no model.layers"
        )
    return list(layers)


def shard_model(
    model: torch.nn.Module,
    *,
    device: torch.device,
    compute_dtype: torch.dtype | None = None,
    cpu_offload: bool = False,
) -> torch.nn.Module:
    """Shard ``model`` in place over the default process group's ranks with FSDP2; returns it.

    Args:
        model: A causal LM (or a critic on one) with its weights in the master dtype, already on ``device``
            (under ``cpu_offload`` they move to CPU memory).
        device: The ranks' device (the mesh's device type).
        compute_dtype: dtype of the forward/backward (FSDP2 ``param_dtype``), None = the weights'.
            Gradients are reduced in float32 whenever it differs from the weights' dtype.
        cpu_offload: Keep shards, gradients and optimizer state in CPU memory (``CPUOffloadPolicy``).

    Activation checkpointing (``model.gradient_checkpointing``) composes: transformers checkpoints inside
    each layer's forward, FSDP2 gathers the layer's weights again for the recomputation.
    """
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import (
        CPUOffloadPolicy,
        FSDPModule,
        MixedPrecisionPolicy,
        OffloadPolicy,
        fully_shard,
    )

    if not dist.is_initialized():
        raise RuntimeError("shard_model needs a process group (init_distributed(device, always=True))")
    master = next(model.parameters()).dtype
    compute = compute_dtype if compute_dtype not in (None, master) else None
    mixed = MixedPrecisionPolicy(param_dtype=compute, reduce_dtype=torch.float32 if compute else None)
    offload = CPUOffloadPolicy() if cpu_offload else OffloadPolicy()
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    options: dict[str, Any] = {"mesh": mesh, "mp_policy": mixed, "offload_policy": offload}
    for layer in decoder_layers(model):
        fully_shard(layer, **options)
    fully_shard(model, **options)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)  # a sum over ranks: the normalisers are global
            # a plain SUM collective (gloo has no PREMUL_SUM; NCCL copies zero-copy only for SUM)
            module.set_force_sum_reduction_for_comms(True)
    log.info(
        "sharded %s over %d rank(s) with FSDP2 (master %s, compute %s%s)",
        type(model).__name__,
        dist.get_world_size(),
        master,
        compute or master,
        ", CPU offload" if cpu_offload else "",
    )
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model`` went through ``shard_model`` (an FSDP2 module).

    >>> is_sharded(torch.nn.Linear(1, 1))
    False
    """
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a DTensor (a collective: every rank must call it), else ``tensor``."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def grad_norm(parameters: Iterable[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """Clip the gradients to a global norm of ``max_norm`` (0 = no clipping); return the norm before
    clipping as a plain tensor, the same on every rank (sharded gradients give a DTensor norm).

    >>> layer = torch.nn.Linear(2, 1, bias=False)
    >>> layer.weight.grad = torch.tensor([[3.0, 4.0]])
    >>> float(grad_norm(layer.parameters(), 1.0)), [round(g, 4) for g in layer.weight.grad[0].tolist()]
    (5.0, [0.6, 0.8])
    """
    norm = torch.nn.utils.clip_grad_norm_(list(parameters), max_norm if max_norm > 0 else float("inf"))
    return _full(norm)


def unsharded_copy(model: torch.nn.Module, dtype: torch.dtype, device: torch.device) -> torch.nn.Module:
    """A plain, frozen copy of ``model`` (before sharding) in ``dtype`` on ``device``: what a rollout
    engine generates from while the learner is sharded."""
    replica = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
    replica.requires_grad_(False)
    return replica


@torch.no_grad()
def copy_full_weights(source: torch.nn.Module, target: torch.nn.Module) -> torch.nn.Module:
    """Copy ``source``'s (sharded) parameters into the unsharded ``target``, one gathered tensor at a time
    (a collective: every rank calls it); returns ``target``."""
    params = dict(target.named_parameters())
    for name, param in source.named_parameters():
        params[name].copy_(_full(param.detach()))
    return target


class FullWeightsEngine:
    """A rollout engine behind a sharded learner: ``load_weights(learner)`` gathers the learner's full
    weights into the engine's own unsharded copy first; everything else is the wrapped engine's."""

    def __init__(self, engine: Any, replica: torch.nn.Module) -> None:
        self.engine = engine
        self.replica = replica

    def load_weights(self, model: torch.nn.Module) -> None:
        self.engine.load_weights(copy_full_weights(model, self.replica))

    def __getattr__(self, name: str) -> Any:
        if name in ("engine", "replica"):  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.engine, name)
