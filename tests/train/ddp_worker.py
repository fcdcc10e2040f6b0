"""The body of one process of the 2-process gloo test (importable, so that ``spawn`` can run it)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import default_collate

from a3d_core.runtime import move_to_device
from a3d_core.train.distributed import (
    ShardedBatches,
    all_reduce_mean,
    init_distributed,
    shutdown_distributed,
    wrap_model,
)
from a3d_core.train.loop import TrainSettings, train
from tests.train.toys import ToyAmodalDataset, ToyAmodalModel

GLOBAL_BATCH = 4


def toy_model() -> ToyAmodalModel:
    torch.manual_seed(0)
    return ToyAmodalModel(["cube", "ball"], dropout=0.0)


def run_settings() -> TrainSettings:
    return TrainSettings(
        lr=1e-2, batch_size=GLOBAL_BATCH, epochs=None, steps=4, log_every=1, progress=False, tensorboard=False
    )


def first_step_gradients(model: torch.nn.Module, batch: dict) -> tuple[float, dict[str, torch.Tensor]]:
    losses = model(batch)
    total = sum(losses.values())
    total.backward()
    return total.detach(), {
        name.removeprefix("module."): parameter.grad.clone() for name, parameter in model.named_parameters()
    }


def run_worker(rank: int, world_size: int, port: int, results: str, device: str = "cpu") -> None:
    """Join a process group as ``torchrun`` would (gloo on ``cpu``, NCCL on ``cuda``), take one
    gradient, then train a short run."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    context = init_distributed(device)
    try:
        dataset = ToyAmodalDataset()
        local_indices = next(ShardedBatches(len(dataset), GLOBAL_BATCH, context, seed=0).epoch(0))
        model = toy_model()
        batch = move_to_device(default_collate([dataset[i] for i in local_indices]), context.device)
        loss, gradients = first_step_gradients(wrap_model(model, context), batch)
        torch.save(
            {"indices": local_indices, "loss": all_reduce_mean(loss, context), "gradients": gradients},
            Path(results) / f"gradients-{rank}.pt",
        )
        trained = toy_model()
        train(trained, dataset, run_settings(), Path(results) / "ddp-run", context=context)
        torch.save(trained.state_dict(), Path(results) / f"parameters-{rank}.pt")
    finally:
        shutdown_distributed(context)
