"""Two gloo processes on CPU follow one process on the same global batch (loss, gradients, run)."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import default_collate

from a3d_core.errors import InputError
from a3d_core.train.distributed import DistributedContext, ShardedBatches
from a3d_core.train.loop import train
from a3d_core.train.metrics_log import JsonlMetrics
from tests.train.ddp_worker import GLOBAL_BATCH, first_step_gradients, run_settings, run_worker, toy_model
from tests.train.toys import ToyAmodalDataset

CPU = DistributedContext(device=torch.device("cpu"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_gloo_processes_match_one_process_on_the_same_global_batch(tmp_path):
    mp.spawn(run_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"gradients-{rank}.pt", weights_only=True) for rank in (0, 1)]

    dataset = ToyAmodalDataset()
    global_indices = next(ShardedBatches(len(dataset), GLOBAL_BATCH, CPU, seed=0).epoch(0))
    assert sorted(ranks[0]["indices"] + ranks[1]["indices"]) == sorted(global_indices)
    assert not set(ranks[0]["indices"]) & set(ranks[1]["indices"])

    loss, gradients = first_step_gradients(toy_model(), default_collate([dataset[i] for i in global_indices]))
    for rank in ranks:
        assert float(rank["loss"]) == pytest.approx(float(loss), abs=1e-6)
        for name, gradient in gradients.items():
            torch.testing.assert_close(rank["gradients"][name], gradient, atol=1e-6, rtol=1e-5)

    single = toy_model()
    train(single, dataset, run_settings(), tmp_path / "single-run", context=CPU)
    for rank in (0, 1):
        parameters = torch.load(tmp_path / f"parameters-{rank}.pt", weights_only=True)
        for name, value in single.state_dict().items():
            torch.testing.assert_close(parameters[name], value, atol=1e-6, rtol=1e-5)
    ddp_losses = [record["loss"] for record in JsonlMetrics(tmp_path / "ddp-run" / "metrics.jsonl").read()]
    single_losses = [record["loss"] for record in JsonlMetrics(tmp_path / "single-run" / "metrics.jsonl").read()]
    assert ddp_losses == pytest.approx(single_losses, abs=1e-6)
    assert len(ddp_losses) == 4  # rank 0 alone wrote the file


def test_sharded_batches_cover_an_epoch_once_and_resume_mid_epoch():
    dataset_size = 10
    ranks = [DistributedContext(rank=rank, world_size=2) for rank in (0, 1)]
    shards = [ShardedBatches(dataset_size, 4, context, seed=3) for context in ranks]
    assert shards[0].steps_per_epoch == 2  # (10 // 2) // 2
    epoch = [list(shard.epoch(0)) for shard in shards]
    seen = [index for batches in epoch for batch in batches for index in batch]
    assert len(seen) == len(set(seen)) == 8
    assert [list(shard.epoch(0, skip=1)) for shard in shards] == [batches[1:] for batches in epoch]
    assert [list(shard.epoch(1)) for shard in shards] != epoch


def test_a_batch_that_does_not_divide_among_processes_is_refused():
    with pytest.raises(InputError, match="batch size 5 does not divide among 2 processes"):
        ShardedBatches(10, 5, DistributedContext(rank=0, world_size=2), seed=0)
