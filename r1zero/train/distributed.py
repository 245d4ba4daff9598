"""Data parallelism with plain torch.distributed: one process per device, launched by ``torchrun``.

``torchrun --nproc_per_node N -m r1zero train ...`` sets RANK/WORLD_SIZE/LOCAL_RANK; ``init_distributed``
joins the group (gloo on CPU, NCCL on GPU). Each rank rolls out and verifies its own share of the step's
prompts (whole groups, so advantages stay group-local), starts from rank 0's weights
(``broadcast_parameters``), and after its backward passes sums the gradients over ranks
(``all_reduce_grads``, once per optimiser step, in float32 whatever the weights' dtype); rank 0 alone
writes the run directory. Without torchrun everything here is a no-op with world size 1. With
``model.sharding fsdp`` the weights are sharded instead (``r1zero.train.sharding``) and FSDP2 reduces
the gradients itself; ``init_distributed(device, always=True)`` then joins a 1-rank group when there
is no torchrun, since FSDP2 needs a process group.

Every tensor collective here goes through ``_check_backend_device``: NCCL moves CUDA tensors only,
gloo CPU ones, and a tensor on the wrong device fails deep inside the backend (or hangs).

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
    "backend_for",
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


def init_distributed(device: torch.device, always: bool = False) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); else return a 1-process info.

    ``always`` (FSDP, which needs a process group) joins a 1-rank group without torchrun too.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not always:
        return DistInfo()
    if device.type == "cuda":
        check_gpu_rank(int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count())
    if not dist.is_initialized():
        backend = backend_for(device)
        if "MASTER_ADDR" in os.environ or world > 1:
            dist.init_process_group(backend=backend)
        else:  # one process, no torchrun: an in-memory store is all a 1-rank group needs
            dist.init_process_group(backend=backend, store=dist.HashStore(), rank=0, world_size=1)
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


def backend_for(device: torch.device) -> str:
    """The process-group backend for ranks whose tensors live on ``device``.

    >>> backend_for(torch.device("cpu")), backend_for(torch.device("cuda", 1))
    ('gloo', 'nccl')
    """
    return "nccl" if device.type == "cuda" else "gloo"


#: the device type each backend's tensor collectives take
BACKEND_DEVICES = {"nccl": "cuda", "gloo": "cpu"}


def _check_backend_device(tensor: torch.Tensor, backend: str | None = None) -> torch.Tensor:
    """``tensor``, after checking that ``backend`` (default: the process group's) can move it.

    NCCL takes CUDA tensors only and gloo CPU ones; a mismatch would fail inside the backend with a
    message that names neither, or hang. Backends not in ``BACKEND_DEVICES`` are not checked.

    >>> _check_backend_device(torch.zeros(2), "gloo").shape
    torch.Size([2])
    >>> _check_backend_device(torch.zeros(2), "nccl")
    Traceback (most recent call last):
    ...
    ValueError: a collective on the nccl backend needs cuda tensors; got one on cpu (float32, shape (2,))
    """
    backend = str(backend if backend is not None else dist.get_backend()).lower()
    wanted = BACKEND_DEVICES.get(backend)
    if wanted is not None and tensor.device.type != wanted:
        raise ValueError(
            f"a collective on the {backend} backend needs {wanted} tensors; got one on "
            f"{tensor.device.type} ({str(tensor.dtype).removeprefix('torch.')}, shape {tuple(tensor.shape)})"
        )
    return tensor


def _collective_device() -> torch.device:
    """Where this process group's collectives want small helper tensors: the current GPU under NCCL."""
    if str(dist.get_backend()).lower() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


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
    # float64 for exact-enough counts; NCCL reduces float64 too. On NCCL the tensor lives on the GPU.
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(_check_backend_device(tensor), op=dist.ReduceOp.SUM)
    return dict(zip(keys, tensor.tolist(), strict=True))


def broadcast_parameters(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """Give every rank rank 0's parameters and buffers (in place); returns ``model``."""
    if info.enabled:
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                dist.broadcast(_check_backend_device(tensor.data), src=0)
    return model


def all_reduce_grads(parameters: Iterable[torch.nn.Parameter], info: DistInfo | None) -> None:
    """Sum the parameters' gradients over ranks, in place (a missing gradient counts as zero; no-op
    without data parallelism).

    The loss normalisers are global (``policy_update``), so the sum is the whole step's gradient. Same-
    dtype gradients travel in flat buckets of about ``BUCKET_BYTES``, one collective each, summed in
    float32 (bf16 gradients are upcast for the sum, so adding N ranks' parts does not round at bf16).
    """
    if info is None or not info.enabled:
        return
    params = [p for p in parameters if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    for bucket in _buckets([p.grad for p in params], BUCKET_BYTES):
        flat = torch.cat([g.reshape(-1) for g in bucket])  # [n]
        wide = flat.float() if flat.is_floating_point() and flat.element_size() < 4 else flat  # [n]
        dist.all_reduce(_check_backend_device(wide), op=dist.ReduceOp.SUM)
        flat = wide.to(flat.dtype)
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
    """Wait for every rank (no-op without data parallelism). NCCL's barrier runs on the current GPU."""
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
