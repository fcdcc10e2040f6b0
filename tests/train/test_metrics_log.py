"""Metrics sinks: JSONL rewind on resume (torn lines dropped), TensorBoard scalars and purge step."""

from __future__ import annotations

import sys
import types

import torch

from a3d_core.train.distributed import DistributedContext
from a3d_core.train.loop import TrainSettings, train
from a3d_core.train.metrics_log import JsonlMetrics, open_tensorboard
from tests.train.toys import ToyAmodalDataset, ToyAmodalModel


def test_rewind_keeps_complete_records_up_to_the_step(tmp_path):
    log = JsonlMetrics(tmp_path / "metrics.jsonl")
    for step in (1, 2, 3):
        log.append({"step": step, "split": "train", "loss": float(step)})
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 4, "split": "tr')  # a line torn by a crash
    log.rewind(2)
    assert log.read() == [{"step": 1, "split": "train", "loss": 1.0}, {"step": 2, "split": "train", "loss": 2.0}]
    log.append({"step": 3, "split": "val", "miou": float("nan")})
    assert log.read()[-1] == {"step": 3, "split": "val", "miou": None}


class RecordingWriter:
    instances: list = []

    def __init__(self, log_dir, purge_step=None):
        self.log_dir, self.purge_step, self.scalars, self.closed = log_dir, purge_step, [], False
        RecordingWriter.instances.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_tensorboard_gets_every_scalar_and_purges_after_the_resumed_step(tmp_path, monkeypatch):
    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = RecordingWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    RecordingWriter.instances = []
    context = DistributedContext(device=torch.device("cpu"))
    settings = TrainSettings(lr=1e-2, batch_size=4, epochs=None, steps=2, log_every=1, progress=False)
    torch.manual_seed(0)
    train(
        ToyAmodalModel(["cube", "ball"]),
        ToyAmodalDataset(),
        settings,
        tmp_path,
        validate=lambda model: {"miou": 0.25},
        context=context,
    )
    longer = TrainSettings(lr=1e-2, batch_size=4, epochs=None, steps=3, log_every=1, progress=False)
    train(
        ToyAmodalModel(["cube", "ball"]),
        ToyAmodalDataset(),
        longer,
        tmp_path,
        validate=lambda model: {"miou": 0.5},
        resume=True,
        context=context,
    )

    first, resumed = RecordingWriter.instances
    assert first.purge_step == 1 and resumed.purge_step == 3
    assert first.closed and resumed.closed
    assert [(tag, step) for tag, _, step in first.scalars if tag.startswith("train/loss")] == [
        ("train/loss", 1),
        ("train/loss/mask", 1),
        ("train/loss/weights", 1),
        ("train/loss", 2),
        ("train/loss/mask", 2),
        ("train/loss/weights", 2),
    ]
    assert ("val/miou", 0.25, 2) in first.scalars and ("val/miou", 0.5, 3) in resumed.scalars
    assert not any(isinstance(value, str) for _, value, _ in first.scalars)


def test_without_tensorboard_installed_there_is_no_writer(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import raises ImportError
    assert open_tensorboard(tmp_path, purge_step=None) is None
