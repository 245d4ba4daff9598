"""Data parallelism with plain torch.distributed: one process per device, launched by ``torchrun``.

``torchrun --nproc_per_node N -m r1zero train ...`` sets RANK/WORLD_SIZE/LOCAL_RANK; ``init_distributed``
joins the group (gloo on CPU, NCCL on GPU). Each rank rolls out and verifies its own share of the step's
prompts (whole groups, so advantages stay group-local), starts from rank 0's weights
(``broadcast_parameters``), and after its backward passes sums the gradients over ranks
(``all_reduce_grads``, once per optimiser step); rank 0 alone writes the run directory. Without torchrun
everything here is a no-op with world size 1.

Why not ``DistributedDataParallel``: DDP syncs inside the backward of each forward it wraps, so the
learner's shared prompt pass (each distinct prompt run once, its keys/values read by every row of its
group, and sent backward once after the micro-batches: ``r1zero.train.forward.prompt_prefix``) cannot
run under it, and each rank would recompute every row's prompt. One explicit all-reduce after the last
backward costs the overlap of communication with the backward, which is small next to a rollout step.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "all_gather_list",
    "all_reduce_grads",
    "all_reduce_sum",
    "broadcast_parameters",
    "check_gpu_rank",
    "init_distributed",
    "shard_range",
]

#: Gradients are all-reduced in flat buckets of about this many bytes (one collective per bucket).
BUCKET_BYTES = 64 * 2**20

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); else return a 1-process info."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if device.type == "cuda":
        check_gpu_rank(int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count())
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
    return info


def check_gpu_rank(local_rank: int, gpus: int) -> None:
    """One GPU per rank: a local rank past this machine's GPUs is an error that says so (CUDA itself says
    "invalid device ordinal" from inside the first rank that lacks one).

    >>> check_gpu_rank(1, 1)
    Traceback (most recent call last):
    ...
    ValueError: local rank 1 has no GPU: this machine has 1; use --nproc_per_node 1 (one rank per GPU), or --model.device cpu
    """
    if local_rank >= gpus:
        raise ValueError(
            f"local rank {local_rank} has no GPU: this machine has {gpus}; use --nproc_per_node {gpus} "
            "(one rank per GPU), or --model.device cpu"
        )


def shard_range(total: int, info: DistInfo) -> range:
    """The contiguous slice of ``total`` items this rank handles; an uneven total is an error.

    >>> shard_range(16, DistInfo(rank=1, world_size=4))
    range(4, 8)
    """
    if total % info.world_size:
        raise ValueError(f"{total} prompts per step cannot be split evenly over {info.world_size} ranks")
    per = total // info.world_size
    return range(info.rank * per, (info.rank + 1) * per)


def all_gather_list(items: Sequence[T], info: DistInfo) -> list[T]:
    """Concatenate every rank's list in rank order (picklable items; used for per-sample records)."""
    if not info.enabled:
        return list(items)
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, list(items))
    return [item for part in gathered for item in part]


def all_reduce_sum(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Sum float statistics over ranks (every rank gets the result)."""
    if not info.enabled or not values:
        return dict(values)
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return dict(zip(keys, tensor.tolist(), strict=True))


def broadcast_parameters(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """Give every rank rank 0's parameters and buffers (in place); returns ``model``."""
    if info.enabled:
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                dist.broadcast(tensor.data, src=0)
    return model


def all_reduce_grads(parameters: Iterable[torch.nn.Parameter], info: DistInfo | None) -> None:
    """Sum the parameters' gradients over ranks, in place (a missing gradient counts as zero; no-op
    without data parallelism).

    The loss normalisers are global (``policy_update``), so the sum is the whole step's gradient. Same-
    dtype gradients travel in flat buckets of about ``BUCKET_BYTES``, one collective each.
    """
    if info is None or not info.enabled:
        return
    params = [p for p in parameters if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    for bucket in _buckets([p.grad for p in params], BUCKET_BYTES):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        for g, part in zip(bucket, flat.split([g.numel() for g in bucket]), strict=True):
            g.copy_(part.view_as(g))


def _buckets(tensors: list[torch.Tensor], limit: int) -> list[list[torch.Tensor]]:
    """Consecutive same-dtype, same-device runs of ``tensors`` of at most ``limit`` bytes (or one tensor).

    >>> [len(b) for b in _buckets([torch.zeros(4), torch.zeros(4), torch.zeros(4, dtype=torch.int8)], 32)]
    [2, 1]
    """
    out: list[list[torch.Tensor]] = []
    size = 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        same = out and out[-1][0].dtype == t.dtype and out[-1][0].device == t.device
        if same and size + nbytes <= limit:
            out[-1].append(t)
            size += nbytes
        else:
            out.append([t])
            size = nbytes
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
