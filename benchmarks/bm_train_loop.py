"""What the training loop costs on top of a bare PyTorch loop (same model, data, optimizer).

    PYTHONPATH=. python benchmarks/bm_train_loop.py [--steps 30] [--batch-size 16] [--size 64] [--repeats 3]

The bare loop: a seeded shuffled DataLoader, forward, sum of losses, backward, Adam step. The
a3d loop adds the non-finite check, gradient clipping, JSONL logging, RNG capture and atomic
checkpoints (measured with no checkpoint but the last one, and with one every 10 steps). Each
variant runs ``--repeats`` times, interleaved, and the fastest run is kept (the machine is shared).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader

from a3d_core.train.distributed import DistributedContext
from a3d_core.train.loop import TrainSettings, train


class ConvMaskModel(nn.Module):
    """4 conv-bn-relu layers over [rgb, visible] -> amodal logits; train mode returns losses."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        layers, channels = [], 4
        for _ in range(4):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
        self.body = nn.Sequential(*layers, nn.Conv2d(width, 1, 1))

    def forward(self, batch: dict) -> dict:
        logits = self.body(torch.cat([batch["rgb"], batch["visible"]], dim=1))[:, 0]
        return {"mask": F.binary_cross_entropy_with_logits(logits, batch["amodal"][:, 0])}


class DictDataset(torch.utils.data.Dataset):
    def __init__(self, count: int, size: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.rgb = torch.rand(count, 3, size, size, generator=generator)
        self.visible = (torch.rand(count, 1, size, size, generator=generator) > 0.5).float()
        self.amodal = torch.maximum(self.visible, (torch.rand(count, 1, size, size, generator=generator) > 0.7).float())

    def __len__(self) -> int:
        return len(self.rgb)

    def __getitem__(self, index: int) -> dict:
        return {"rgb": self.rgb[index], "visible": self.visible[index], "amodal": self.amodal[index]}


def bare_loop(dataset: DictDataset, steps: int, batch_size: int) -> float:
    torch.manual_seed(0)
    model = ConvMaskModel()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(0)
    )
    started, done = time.perf_counter(), 0
    while done < steps:
        for batch in loader:
            loss = sum(model(batch).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    return time.perf_counter() - started


def a3d_loop(dataset: DictDataset, steps: int, batch_size: int, checkpoint_every: int) -> float:
    torch.manual_seed(0)
    model = ConvMaskModel()
    settings = TrainSettings(
        batch_size=batch_size,
        epochs=None,
        steps=steps,
        checkpoint_every=checkpoint_every,
        log_every=10,
        progress=False,
        tensorboard=False,
    )
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        train(model, dataset, settings, out, context=DistributedContext(device=torch.device("cpu")))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    dataset = DictDataset(arguments.batch_size * 8, arguments.size)
    variants = {
        "bare PyTorch loop": lambda: bare_loop(dataset, arguments.steps, arguments.batch_size),
        "a3d loop, last checkpoint only": lambda: a3d_loop(
            dataset, arguments.steps, arguments.batch_size, checkpoint_every=10**6
        ),
        "a3d loop, checkpoint every 10": lambda: a3d_loop(
            dataset, arguments.steps, arguments.batch_size, checkpoint_every=10
        ),
    }
    runs = {name: float("inf") for name in variants}
    for _ in range(arguments.repeats):
        for name, run in variants.items():
            runs[name] = min(runs[name], run())
    table = Table(
        title=f"{arguments.steps} steps, batch {arguments.batch_size}, {arguments.size}x{arguments.size}, "
        f"{torch.get_num_threads()} threads, CPU, best of {arguments.repeats}"
    )
    for column in ("loop", "seconds", "ms / step", "instances / s", "vs. bare"):
        table.add_column(column, justify="right" if column != "loop" else "left")
    bare = runs["bare PyTorch loop"]
    for name, seconds in runs.items():
        table.add_row(
            name,
            f"{seconds:.2f}",
            f"{1000 * seconds / arguments.steps:.1f}",
            f"{arguments.steps * arguments.batch_size / seconds:.0f}",
            f"{seconds / bare:.2f}x",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
