"""Prediction throughput: stage 1 alone vs. both stages (A3D), images per second, same process.

Run by hand: ``python benchmarks/bm_predict.py [--checkpoint runs/scenes/best.pt] [--size 128x96]
[--images 8] [--batch 4] [--device cpu|cuda]``.

Without ``--checkpoint`` untrained networks are built (MobileNetV3-FPN stage 1, 64 x 64 stage-2
crops, ico-sphere level 2) and stage 1 keeps its ``--detections`` best boxes per image whatever
their score, so that stage 2 always has the same number of instances to complete. One row per
stage-2 variant, each network built from the same seed: the defaults (one azimuth, the U-Net
refine), the paper's network (one azimuth, the edge refine), 4 azimuth hypotheses all rendered to
pick one (``render``, the former default) and 4 hypotheses scored by the viewpoint estimator with
only the chosen one rendered (``scores``). The difference between the two throughput columns is
the price of stage 2 (crop, encode, mesh, render, refine, paste).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
from rich.console import Console
from rich.table import Table

from a3d_core.model.a3d import A3DNetwork, A3DSettings, build_a3d, load_a3d_from_checkpoint
from a3d_core.model.asm import ASMSettings
from a3d_core.model.refine import RefineSettings
from a3d_core.model.viewpoint import ViewpointSettings
from a3d_core.runtime import resolve_device
from a3d_core.train.finetune import small_stage1_settings

STAGE2_VARIANTS = (  # label, stage-2 settings beyond the benchmark's size (empty: the defaults)
    ("the defaults", {}),
    ("1 azimuth, edge refine (the paper's)", {"refine": RefineSettings(architecture="edge")}),
    (
        "4 hypotheses, render, edge refine (the former default)",
        {"viewpoint": ViewpointSettings(azimuth_hypotheses=4), "refine": RefineSettings(architecture="edge")},
    ),
    (
        "4 hypotheses, scores, edge refine",
        {
            "viewpoint": ViewpointSettings(azimuth_hypotheses=4, hypothesis_selection="scores"),
            "refine": RefineSettings(architecture="edge"),
        },
    ),
)


def untrained_network(detections: int, min_size: int, stage2: dict) -> A3DNetwork:
    stage1 = dataclasses.replace(
        small_stage1_settings(min_size=min_size, max_size=2 * min_size),
        box_score_thresh=0.0,
        box_detections_per_img=detections,
    )
    torch.manual_seed(0)
    return build_a3d(
        ["airplane", "car", "chair"],
        A3DSettings(stage1=stage1, stage2=ASMSettings(image_size=64, template_level=2, **stage2)),
    )


def images_per_second(function, images: list[torch.Tensor], batch: int, repeats: int) -> float:
    def run() -> None:
        for start in range(0, len(images), batch):
            function(images[start : start + batch])

    run()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return len(images) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--size", default="128x96", help="WIDTHxHEIGHT of the synthetic images")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--detections", type=int, default=5, help="untrained network: instances per image")
    parser.add_argument("--min-size", type=int, default=96, help="untrained network: stage 1's short side")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = resolve_device(args.device)
    width, height = (int(v) for v in args.size.split("x"))
    if args.checkpoint:
        variants = [("checkpoint", load_a3d_from_checkpoint(args.checkpoint))]
    else:
        variants = [
            (label, untrained_network(args.detections, args.min_size, stage2)) for label, stage2 in STAGE2_VARIANTS
        ]
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(3, height, width, generator=generator).to(device) for _ in range(args.images)]
    table = Table()
    for column in ("stage 2", "instances / image", "stage 1 alone (img/s)", "both stages (img/s)", "stage-2 share"):
        table.add_column(column, justify="right")
    for label, network in variants:
        network = network.to(device).eval()
        with torch.no_grad():
            counts = [len(output["boxes"]) for output in network(images[: args.batch])]
            stage1 = images_per_second(network.stage1, images, args.batch, args.repeats)
            both = images_per_second(network, images, args.batch, args.repeats)
        table.add_row(
            label,
            f"{sum(counts) / len(counts):.1f}",
            f"{stage1:.2f}",
            f"{both:.2f}",
            f"{100 * (1 - both / stage1):.0f}%",
        )
    stage2 = network.stage2
    Console().print(
        f"stage 1: {network.stage1.settings.backbone}, short side {network.stage1.settings.min_size}; "
        f"stage 2: {stage2.kind}, S = {stage2.settings.image_size}, ico-sphere level {stage2.settings.template_level}; "
        f"{width}x{height} images, batch {args.batch}, {device}, {torch.get_num_threads()} threads"
    )
    Console().print(table)


if __name__ == "__main__":
    main()
