"""Training on CUDA: bf16 autocast and fp16 with loss scaling learn, and resume exactly; two NCCL
processes follow one process (with two GPUs)."""

import socket

import pytest
import torch
import torch.multiprocessing as mp

from a3d_core.train.checkpoint import load_checkpoint
from a3d_core.train.distributed import DistributedContext
from a3d_core.train.loop import TrainSettings, train
from a3d_core.train.metrics_log import JsonlMetrics
from tests.train.ddp_worker import run_settings, run_worker, toy_model
from tests.train.toys import ToyAmodalDataset

pytestmark = pytest.mark.cuda
CUDA = DistributedContext(device=torch.device("cuda")) if torch.cuda.is_available() else None


def settings(amp: str, **overrides) -> TrainSettings:
    values = dict(
        lr=5e-2,
        batch_size=4,
        epochs=None,
        steps=60,
        log_every=10,
        checkpoint_every=30,
        progress=False,
        tensorboard=False,
        amp=amp,
    )
    values.update(overrides)
    return TrainSettings(**values)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_training_on_cuda_lowers_the_loss(tmp_path, amp):
    model = toy_model()
    train(model, ToyAmodalDataset(), settings(amp), tmp_path, context=CUDA)
    losses = [record["loss"] for record in JsonlMetrics(tmp_path / "metrics.jsonl").read()]
    assert losses[-1] < 0.5 * losses[0]
    assert next(model.parameters()).is_cuda
    assert all(torch.isfinite(p).all() for p in model.parameters())
    scaler_state = load_checkpoint(tmp_path / "last.pt")["grad_scaler"]
    assert bool(scaler_state) == (amp == "fp16")  # a GradScaler only for fp16


def test_resume_on_cuda_equals_an_uninterrupted_run(tmp_path):
    whole = toy_model()
    train(whole, ToyAmodalDataset(), settings("bf16", steps=8, checkpoint_every=4), tmp_path / "whole", context=CUDA)
    first = toy_model()
    train(first, ToyAmodalDataset(), settings("bf16", steps=4, checkpoint_every=4), tmp_path / "split", context=CUDA)
    resumed = toy_model()
    train(
        resumed,
        ToyAmodalDataset(),
        settings("bf16", steps=8, checkpoint_every=4),
        tmp_path / "split",
        resume=True,
        context=CUDA,
    )
    for key, value in whole.state_dict().items():  # cuDNN may sum in another order: equal to rounding
        torch.testing.assert_close(resumed.state_dict()[key], value, atol=1e-5, rtol=1e-4)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL needs a GPU per process")
def test_two_nccl_processes_match_one_process(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(run_worker, args=(2, port, str(tmp_path), "cuda"), nprocs=2, join=True)
    single = toy_model()
    train(single, ToyAmodalDataset(), run_settings(), tmp_path / "single-run", context=CUDA)
    for rank in (0, 1):
        parameters = torch.load(tmp_path / f"parameters-{rank}.pt", weights_only=True)
        for name, value in single.state_dict().items():
            torch.testing.assert_close(parameters[name].cpu(), value.cpu(), atol=1e-4, rtol=1e-3)
