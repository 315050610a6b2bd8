"""Process-group set-up for ``torchrun`` (env:// rendezvous) and the few collectives training needs.

posekit never spawns processes itself: one process per GPU (or CPU worker) is started by
``torchrun --nproc_per_node N``, which also covers multi-node runs. A plain ``python tools/train.py``
is a world of one and touches no process group.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from yacs.config import CfgNode

from .device import resolve_device


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: global rank, world size, local rank and compute device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and tensorboard events."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether gradients are averaged over several processes."""
        return self.world_size > 1


def init_distributed(cfg: CfgNode) -> DistContext:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK, pick the device and join the process group.

    The backend is DIST_BACKEND (official default nccl) on GPUs and gloo on the CPU, where nccl cannot run.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(cfg.DEVICE, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = cfg.DIST_BACKEND if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def shutdown_distributed() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, context: DistContext, find_unused_parameters: bool = False) -> nn.Module:
    """The model moved to the device and, in a multi-process job, wrapped in DistributedDataParallel."""
    model = model.to(context.device)
    if not context.distributed:
        return model
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids,
                                               find_unused_parameters=find_unused_parameters)


def sum_over_processes(values: torch.Tensor, context: DistContext) -> torch.Tensor:
    """``values`` summed over all processes (unchanged in a world of one)."""
    if context.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values
