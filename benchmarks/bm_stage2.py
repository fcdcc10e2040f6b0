"""Stage-2 network speed: one training step and one eval forward, per kind, same process.

Run by hand: ``python benchmarks/bm_stage2.py [--batch 8] [--size 64] [--level 3] [--repeats 3] [--device cuda]``.
The 2D baseline (no mesh, no renderer) is the reference beside the full A3D network; the
difference is the price of the 3D branch (mostly pytorch3d's soft rasteriser). A3D with a single
azimuth (the paper's camera) shows the training price of the default 4 azimuth hypotheses, which
render every shape 4 times; with scored hypotheses (``--hypothesis-selection scores``) the eval
forward renders one. The view cycle (``--view-cycle``) adds a render and two encodings to a
training step and nothing to evaluation; the U-Net refine (``--refine unet``) replaces the edge refine.
"""

from __future__ import annotations

import argparse
import time

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


def seconds(function, repeats: int, device: str) -> float:
    """Mean wall time of ``function`` after a warm-up; on CUDA the queued kernels are waited for."""
    synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    function()  # warm-up
    synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--level", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    names = ["airplane", "car", "chair"]
    batch = {k: v.to(args.device) for k, v in synthetic_batch(args.batch, args.size, len(names)).items()}
    table = Table(
        title=f"stage 2, batch {args.batch}, S = {args.size}, ico-sphere level {args.level}, {args.device}, "
        f"{torch.get_num_threads()} threads"
    )
    for column in ("kind", "parameters", "train step (s)", "instances / s (train)", "eval forward (s)"):
        table.add_column(column, justify="right")
    cycle = LossSettings(view_cycle_camera=1.0, view_cycle_shape=1.0)
    variants = [  # label, kind, azimuth hypotheses, selection, losses, refine
        ("2d", "2d", 4, "render", LossSettings(), "edge"),
        ("a3d-no-refine", "a3d-no-refine", 4, "render", LossSettings(), "edge"),
        ("a3d, 1 azimuth", "a3d", 1, "render", LossSettings(), "edge"),
        ("a3d", "a3d", 4, "render", LossSettings(), "edge"),
        ("a3d, 4 scored hypotheses", "a3d", 4, "scores", LossSettings(), "edge"),
        ("a3d, 1 azimuth, view cycle", "a3d", 1, "render", cycle, "edge"),
        ("a3d, 1 azimuth, view cycle, U-Net refine", "a3d", 1, "render", cycle, "unet"),
    ]
    for label, kind, hypotheses, selection, losses, refine in variants:
        torch.manual_seed(0)
        viewpoint = ViewpointSettings(azimuth_hypotheses=hypotheses, hypothesis_selection=selection)
        settings = ASMSettings(
            image_size=args.size,
            template_level=args.level,
            viewpoint=viewpoint,
            losses=losses,
            refine=RefineSettings(architecture=refine),
        )
        model = build_stage2(kind, names, settings).to(args.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

        def train_step() -> None:
            model.train()
            loss = sum(model(batch).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        def eval_forward() -> None:
            model.eval()
            with torch.no_grad():
                model(batch)

        step = seconds(train_step, args.repeats, args.device)
        forward = seconds(eval_forward, args.repeats, args.device)
        parameters = sum(p.numel() for p in model.parameters())
        table.add_row(label, f"{parameters / 1e6:.1f} M", f"{step:.3f}", f"{args.batch / step:.1f}", f"{forward:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
