"""Data-parallel training under ``torchrun``: process group, DDP wrapping, sharded batches.

One process per device; ``torchrun --nproc_per_node N -m a3d_cli pretrain ...`` sets the
environment variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``) that :func:`init_distributed` reads. CUDA processes use NCCL, CPU processes
gloo. The global batch of ``B`` instances is split into ``B / world_size`` per process, and
:class:`ShardedBatches` draws the same global batches as a single process would, so a run on N
processes follows the single-process run (up to per-process BatchNorm statistics on CPU, where
SyncBatchNorm is not available). Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from a3d_core.errors import InputError
from a3d_core.runtime import resolve_device


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: its rank among ``world_size`` and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_process_group: bool = False

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"DistributedContext: rank {self.rank} is not in 0..{self.world_size - 1}")

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes checkpoints, logs and progress (rank 0)."""
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistributedContext:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) this is a single process on
    ``resolve_device(device)``. Under ``torchrun`` on CUDA, each process takes ``cuda:LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    resolved = resolve_device(device)
    if world_size == 1:
        return DistributedContext(device=resolved)
    try:
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError) as error:
        raise InputError(
            f"WORLD_SIZE={world_size} but RANK/LOCAL_RANK are missing or not integers; launch with torchrun"
        ) from error
    if resolved.type == "cuda":
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
        backend = "nccl"
    else:
        backend = "gloo"
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(
        rank=rank, world_size=world_size, local_rank=local_rank, device=resolved, owns_process_group=owns
    )


def shutdown_distributed(context: DistributedContext) -> None:
    """Leave the process group if :func:`init_distributed` created it."""
    if context.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, context: DistributedContext) -> nn.Module:
    """``model`` on its device, wrapped in DDP when distributed.

    ``find_unused_parameters`` is on: category-specific parameters of categories absent from
    a process's batch receive no gradient there.
    """
    model = model.to(context.device)
    if not context.is_distributed:
        return model
    if context.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[context.device.index], find_unused_parameters=True)
    return DistributedDataParallel(model, find_unused_parameters=True)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def all_reduce_mean(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """The mean of ``values`` over all processes (``values`` itself in a single process)."""
    if not context.is_distributed:
        return values
    reduced = values.clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / context.world_size


def all_gather_objects(value: Any, context: DistributedContext) -> list[Any]:
    """``[value of rank 0, value of rank 1, ...]`` on every process."""
    if not context.is_distributed:
        return [value]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def barrier(context: DistributedContext) -> None:
    """Wait for every process (no-op in a single process)."""
    if context.is_distributed:
        dist.barrier()


def set_dataset_epoch(dataset: Any, epoch: int) -> None:
    """Tell a dataset which epoch it serves, for per-epoch randomness drawn from ``(seed, epoch, index)``.

    Calls ``dataset.set_epoch(epoch)`` when it exists (``DistributedSampler``'s convention), else
    sets an ``epoch`` attribute the dataset already has.
    """
    set_epoch = getattr(dataset, "set_epoch", None)
    if callable(set_epoch):
        set_epoch(epoch)
    elif hasattr(dataset, "epoch"):
        dataset.epoch = epoch


class ShardedBatches:
    """This process's batches of one epoch, in a seeded order, resumable mid-epoch.

    The order of an epoch is ``DistributedSampler``'s: a permutation drawn from a generator
    seeded with ``seed + epoch``; rank ``r`` takes every ``world_size``-th index from ``r``.
    Local batch ``k`` of all ranks together is global batch ``k`` of a single process: the
    same instances, so a global-mean loss and its gradients agree.

    Args:
        dataset_size: number of items in the dataset.
        global_batch_size: instances per optimizer step over all processes.
        context: this process's rank and world size.
        seed: the run's seed.
    """

    def __init__(self, dataset_size: int, global_batch_size: int, context: DistributedContext, seed: int) -> None:
        if global_batch_size % context.world_size:
            raise InputError(f"batch size {global_batch_size} does not divide among {context.world_size} processes")
        if dataset_size < global_batch_size:
            raise InputError(
                f"the training set has {dataset_size} instances, fewer than one batch of {global_batch_size}; "
                "lower --batch-size"
            )
        self.dataset_size = dataset_size
        self.local_batch_size = global_batch_size // context.world_size
        self.context = context
        self.seed = seed

    @property
    def steps_per_epoch(self) -> int:
        """Full global batches per epoch (an incomplete last batch is dropped)."""
        return (self.dataset_size // self.context.world_size) // self.local_batch_size

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[list[int]]:
        """Local batches (lists of dataset indices) of ``epoch``, starting after ``skip`` batches."""
        sampler = DistributedSampler(
            range(self.dataset_size),
            num_replicas=self.context.world_size,
            rank=self.context.rank,
            shuffle=True,
            seed=self.seed,
            drop_last=True,
        )
        sampler.set_epoch(epoch)
        indices = list(sampler)
        for batch in range(skip, self.steps_per_epoch):
            yield indices[batch * self.local_batch_size : (batch + 1) * self.local_batch_size]
