"""Data parallelism with plain torch.distributed: one process per device, launched by ``torchrun``.

``torchrun --nproc_per_node N -m r1zero train ...`` sets RANK/WORLD_SIZE/LOCAL_RANK; ``init_distributed``
joins the group (gloo on CPU, NCCL on GPU). Each rank rolls out and verifies its own share of the step's
prompts (whole groups, so advantages stay group-local), the learner is wrapped in DDP, and rank 0 alone
writes the run directory. Without torchrun everything here is a no-op with world size 1.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "all_gather_list", "all_reduce_sum", "init_distributed", "shard_range", "wrap_model"]

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
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
    return info


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


def wrap_model(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """DDP around the learner when data-parallel (CPU/gloo or GPU/NCCL); the model itself otherwise.

    FSDP2 (``torch.distributed.fsdp.fully_shard``) is the route for models that do not fit one GPU; it
    is not wired here yet (see docs/training.md).
    """
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.local_rank] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model inside a DDP wrapper (for saving and for the rollout engine)."""
    return getattr(model, "module", model)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
