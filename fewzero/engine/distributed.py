"""Minimal ``torch.distributed`` helpers for ``torchrun`` (gloo on CPU, nccl on CUDA)."""

from __future__ import annotations

import gc
import os

import torch
import torch.distributed as dist

__all__ = ["cleanup", "is_main_process", "rank", "setup", "world_size"]


def setup() -> bool:
    """Initialise the process group when launched by ``torchrun``; returns whether it did."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False
    if int(os.environ["WORLD_SIZE"]) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return True


def rank() -> int:
    """This process's rank (0 outside distributed runs)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 outside distributed runs)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Whether this process writes files and prints (rank 0)."""
    return rank() == 0


def cleanup() -> None:
    """Wait for every rank, free what is unreachable, then destroy the process group.

    ``destroy_process_group`` only drops the group from the registry: a
    ``DistributedDataParallel`` wrapper left in a reference cycle keeps its gloo group alive
    until the interpreter's shutdown, whose teardown of the group's threads can abort the
    process (``terminate called without an active exception``) after all its work is done.
    Collecting first ends such groups while the interpreter is whole; the barrier lets no rank
    tear its connections down while a peer still uses them.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        gc.collect()
        dist.destroy_process_group()
