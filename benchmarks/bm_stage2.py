"""Stage-2 network speed: one training step and one eval forward, per kind, same process.

Run by hand: ``python benchmarks/bm_stage2.py [--batch 8] [--size 64] [--level 3] [--repeats 3] [--eval-only]
[--device cuda]``; the variants take turns and each keeps its best time (load hits them alike).
The 2D baseline (no mesh, no renderer) is the reference beside the full A3D network; the
difference is the price of the 3D branch (mostly pytorch3d's soft rasteriser). A3D with a single
azimuth and the edge refine is the paper's network: the last column divides every eval forward by
its. 4 azimuth hypotheses (the former default) render every shape 4 times; with scored hypotheses
(``--hypothesis-selection scores``) the eval forward renders one. The view cycle (``--view-cycle``)
adds a render and two encodings to a training step and nothing to evaluation; the U-Net refine
(``--refine unet``) replaces the edge refine. The default (one azimuth, the view cycle, the U-Net
refine: :class:`~a3d_core.model.asm.ASMSettings`) is the first row.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable

import torch
from rich.console import Console
from rich.table import Table

from a3d_core.model.asm import ASMSettings, build_stage2
from a3d_core.model.losses import LossSettings
from a3d_core.model.refine import RefineSettings
from a3d_core.model.viewpoint import ViewpointSettings


def synthetic_batch(batch: int, size: int, categories: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    radius = size * (0.2 + 0.2 * torch.rand(batch, 1, 1, generator=generator))
    amodal = (((ys - size / 2) ** 2 + (xs - size / 2) ** 2) <= radius**2).float().unsqueeze(1)
    visible = amodal * (xs >= size // 3).float()
    return {
        "rgb": torch.rand(batch, 3, size, size, generator=generator),
        "visible": visible,
        "amodal": amodal,
        "category": torch.arange(batch) % categories,
    }


def best_seconds(functions: dict[str, Callable[[], None]], repeats: int, device: str) -> dict[str, float]:
    """The best wall time of each function after a warm-up, timed in turns (one call of each per
    round), so that load from other processes hits them alike; on CUDA queued kernels are waited for."""
    synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for function in functions.values():
        function()  # warm-up
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for key, function in functions.items():
            synchronize()
            start = time.perf_counter()
            function()
            synchronize()
            best[key] = min(best[key], time.perf_counter() - start)
    return best


def train_step_of(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def train_step() -> None:
        model.train()
        loss = sum(model(batch).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return train_step


def eval_forward_of(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    def eval_forward() -> None:
        model.eval()
        with torch.no_grad():
            model(batch)

    return eval_forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--level", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--eval-only", action="store_true", help="time the eval forward only")
    args = parser.parse_args()
    names = ["airplane", "car", "chair"]
    batch = {k: v.to(args.device) for k, v in synthetic_batch(args.batch, args.size, len(names)).items()}
    table = Table(
        title=f"stage 2, batch {args.batch}, S = {args.size}, ico-sphere level {args.level}, {args.device}, "
        f"{torch.get_num_threads()} threads"
    )
    columns = ("kind", "parameters", "train step (s)", "instances / s (train)", "eval forward (s)", "eval / paper's")
    for column in columns:
        table.add_column(column, justify="right")
    cycle = LossSettings(view_cycle_camera=1.0, view_cycle_shape=1.0)
    no_cycle = LossSettings(view_cycle_camera=0.0, view_cycle_shape=0.0)
    default = ASMSettings(image_size=args.size, template_level=args.level)
    variants = [  # label, kind, settings (None: the defaults)
        ("a3d, the defaults", "a3d", None),
        ("2d", "2d", (4, "render", no_cycle, "edge")),
        ("a3d-no-refine", "a3d-no-refine", (4, "render", no_cycle, "edge")),
        ("a3d, 1 azimuth (the paper's)", "a3d", (1, "render", no_cycle, "edge")),
        ("a3d, 4 hypotheses (the former default)", "a3d", (4, "render", no_cycle, "edge")),
        ("a3d, 4 scored hypotheses", "a3d", (4, "scores", no_cycle, "edge")),
        ("a3d, 1 azimuth, view cycle", "a3d", (1, "render", cycle, "edge")),
        ("a3d, 1 azimuth, view cycle, U-Net refine", "a3d", (1, "render", cycle, "unet")),
    ]
    timed, parameters = {}, {}
    for label, kind, choice in variants:
        torch.manual_seed(0)
        settings = default
        if choice is not None:
            hypotheses, selection, losses, refine = choice
            settings = dataclasses.replace(
                default,
                viewpoint=ViewpointSettings(azimuth_hypotheses=hypotheses, hypothesis_selection=selection),
                losses=losses,
                refine=RefineSettings(architecture=refine),
            )
        model = build_stage2(kind, names, settings).to(args.device)
        parameters[label] = sum(p.numel() for p in model.parameters())
        timed[label, "eval"] = eval_forward_of(model, batch)
        if not args.eval_only:
            timed[label, "train"] = train_step_of(model, batch)
    best = best_seconds(timed, args.repeats, args.device)
    paper = best["a3d, 1 azimuth (the paper's)", "eval"]
    for label, _, _ in variants:
        step = best.get((label, "train"))
        forward = best[label, "eval"]
        train_cells = ("-", "-") if step is None else (f"{step:.3f}", f"{args.batch / step:.1f}")
        table.add_row(
            label, f"{parameters[label] / 1e6:.1f} M", *train_cells, f"{forward:.3f}", f"{forward / paper:.2f}x"
        )
    Console().print(table)


if __name__ == "__main__":
    main()
