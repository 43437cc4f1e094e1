"""torchrun's process group: whether this process is one of several, its rank, joining and
leaving the group, and the helpers every distributed command shares (strided shares of a dump,
means over ranks, barriers). Gradient averaging and global BatchNorm for training are
``augment.training.data_parallel``.

Under torchrun (WORLD_SIZE > 1) rank 0 alone logs and writes files; without it every helper
is the single-process identity.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank in [0, world_size), and the device it should use."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


SINGLE = DistContext()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_device_name(name: str) -> str:
    """Under torchrun, 'cuda' (and 'auto' with a GPU) means this process's GPU, cuda:LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and launched_by_torchrun():
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return name


def init_from_env(device_type: str, timeout_s: float = 600.0) -> DistContext:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*).

    Backend: nccl for CUDA, gloo for CPU. Without torchrun variables, a single process.
    """
    if not launched_by_torchrun():
        return SINGLE
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistContext(rank, world, local_rank)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def strided_indices(n: int, ctx: DistContext) -> range:
    """Indices rank, rank + W, rank + 2W, ... of ``range(n)``: this rank's share of a dump."""
    return range(ctx.rank, n, ctx.world_size)


def all_reduce_mean(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Mean over ranks of a tensor (returns a new tensor; identity on one process)."""
    if not ctx.enabled:
        return values
    out = values.detach().clone()
    dist.all_reduce(out)
    return out / ctx.world_size


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()
