"""Several processes through ``torchrun`` + DistributedDataParallel (NCCL on GPUs, gloo on CPU).

``torchrun --nproc-per-node N -m unmix train DIR`` starts N copies; each finds ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` in its environment (:func:`init_distributed`). The global batch (``batch_size``) is split evenly
over the processes, gradients are averaged by DDP, validation items are shared round-robin and their sums reduced,
so every process takes the same scheduler and early-stopping decisions. Only rank 0 writes files.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from unmix.train.config import TrainingError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands.

    Attributes:
        rank: global rank (0 in a single process).
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: the device of this process.
        initialized: whether this module started a process group (and must end it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``; other names as given."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"device {name!r} requested but CUDA is not available; use --device cpu")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
    return device


def init_distributed(device_name: str = "auto") -> DistributedContext:
    """Join the process group described by torchrun's environment, or describe a single process.

    Returns:
        The context; ``initialized`` is True when this call created the process group.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(device=resolve_device(device_name))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    device = resolve_device(device_name, local_rank)
    initialized = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        initialized = True
        logger.info("process %d/%d joined (%s backend, %s)", rank, world_size, backend, device)
    return DistributedContext(rank, world_size, local_rank, device, initialized)


def wrap(module: nn.Module, context: DistributedContext) -> nn.Module:
    """``module`` wrapped in DistributedDataParallel when running distributed (unchanged otherwise)."""
    if not context.distributed:
        return module
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


RELEASE_TIMEOUT = 5.0
"""Seconds :func:`_all_reduce` waits for gloo's worker thread to let go of a reduced tensor."""


def _all_reduce(tensor: torch.Tensor, op: dist.ReduceOp) -> None:
    """``dist.all_reduce`` that returns only once the backend's worker thread has released ``tensor``.

    Gloo's worker thread drops its reference to a finished collective's tensors just *after* ``wait()`` returns, and
    dropping a tensor that Python also holds takes the GIL. If that happens while the interpreter is shutting down
    (a collective right before the process ends, as :func:`check_in_sync` at the end of training), the thread
    cannot take the GIL and the process aborts ("terminate called without an active exception", pytorch#179291).
    The backend's reference shows in the tensor's Python reference count, so wait until that is back to its value
    before the call.
    """
    held = sys.getrefcount(tensor)
    dist.all_reduce(tensor, op=op)
    if dist.get_backend() != "gloo":
        return
    deadline = time.monotonic() + RELEASE_TIMEOUT
    while sys.getrefcount(tensor) > held:
        if time.monotonic() > deadline:
            logger.debug("gloo still holds a reduced tensor after %.1f s", RELEASE_TIMEOUT)
            return
        time.sleep(1e-4)


def all_reduce_sum(values: Sequence[float], context: DistributedContext) -> list[float]:
    """Sum ``values`` over the processes (float64; unchanged in a single process)."""
    if not context.distributed:
        return [float(v) for v in values]
    device = context.device if context.device.type == "cuda" else torch.device("cpu")
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    _all_reduce(tensor, dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def check_in_sync(module: nn.Module, context: DistributedContext) -> None:
    """Raise :class:`TrainingError` unless every process holds the same parameters (a cheap checksum).

    The checksum of each process (a weighted sum of all parameters, float64) is reduced with MIN and MAX; both
    equal the local value only when all processes agree.
    """
    if not context.distributed:
        return
    total = torch.zeros((), dtype=torch.float64)
    for k, param in enumerate(module.parameters()):
        total += (k + 1) * param.detach().double().cpu().sum()
    device = context.device if context.device.type == "cuda" else torch.device("cpu")
    low, high = total.clone().to(device), total.clone().to(device)
    _all_reduce(low, dist.ReduceOp.MIN)
    _all_reduce(high, dist.ReduceOp.MAX)
    if low.item() != high.item():
        raise TrainingError(
            f"process {context.rank}: parameters differ between processes (checksums {low.item()} .. {high.item()}); "
            "gradients were not synchronised; report this with the torchrun command line"
        )


def barrier(context: DistributedContext) -> None:
    """Wait for every process (no-op in a single process)."""
    if context.distributed:
        dist.barrier()


def shutdown(context: DistributedContext) -> None:
    """End the process group if :func:`init_distributed` created it."""
    if context.initialized and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["DistributedContext", "all_reduce_sum", "barrier", "check_in_sync", "init_distributed", "resolve_device",
           "shutdown", "wrap"]
