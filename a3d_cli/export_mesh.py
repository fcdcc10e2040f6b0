"""`a3d export-mesh`: Export the reconstructed mesh of an instance (OBJ, PLY, masks, turntable GIF)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from a3d_cli.common import announce, console, default_checkpoint, user_errors
from a3d_cli.options import (
    DataAliasOption,
    DataRootOption,
    DeviceOption,
    RunsRootOption,
    choices,
    dataset_option,
    dataset_or_alias,
    out_option,
)
from a3d_core.data.catalog import resolve_dataset
from a3d_core.pipelines.export_mesh import CROP_MODES, export_instance_mesh
from a3d_core.train.run_folders import PRETRAINING, read_run

Crop = choices("Crop", CROP_MODES)


def pretraining_data(checkpoint: Path) -> Optional[str]:
    """The dataset folder ``checkpoint`` was pretrained on, when it records one that still exists, announced."""
    run = read_run(checkpoint)
    dataset = run.dataset if run is not None and run.kind == PRETRAINING else None
    if dataset is None or not dataset.is_dir():
        return None
    announce(
        f"dataset: {dataset}, the dataset {checkpoint} was pretrained on (--dataset DATASET or --image FILE to choose)"
    )
    return str(dataset)


@user_errors
def export_mesh(
    checkpoint: Optional[Path] = typer.Option(
        None,
        "--checkpoint",
        help="Stage-2 checkpoint (from `a3d pretrain` or `a3d finetune`). Default: the newest pretraining run under "
        "the runs root.",
    ),
    out: Path = out_option(
        ..., "Folder to write mesh.obj, mesh.ply, the mask PNGs, turntable.gif and summary.json into."
    ),
    image: Optional[Path] = typer.Option(
        None, "--image", help="The instance's image: its crop, or a single-object image (used whole)."
    ),
    visible_mask: Optional[Path] = typer.Option(
        None, "--visible-mask", help="The instance's visible mask, same size as --image (non-zero = visible)."
    ),
    category: Optional[str] = typer.Option(
        None, "--category", help="Use this category's shape decoder instead of the predicted one."
    ),
    dataset: Optional[str] = dataset_option(
        None,
        "Take its instance --index instead of --image. Default (without --image): the dataset the checkpoint was "
        "pretrained on, when it is still there.",
    ),
    data: Optional[str] = DataAliasOption,
    index: Optional[int] = typer.Option(
        None,
        "--index",
        help="With --dataset: the annotation's 0-based position in the split (default with the checkpoint's dataset: "
        "0).",
    ),
    split: str = typer.Option("test", "--split", help="With --dataset: the split to read."),
    crop: Crop = typer.Option(
        "amodal-box", "--crop", help="With --dataset: amodal-box (square around the amodal box) or full-image."
    ),
    frames: int = typer.Option(24, "--frames", help="Number of turntable frames (evenly spaced azimuths)."),
    turntable_size: int = typer.Option(128, "--turntable-size", help="Side of the turntable frames in pixels."),
    data_root: Optional[Path] = DataRootOption,
    runs_root: Optional[Path] = RunsRootOption,
    device: str = DeviceOption,
) -> None:
    """Export the reconstructed mesh of an instance (OBJ, PLY, masks, turntable GIF).

    Give either --image and --visible-mask, or --dataset and --index. The network reconstructs the instance's 3D shape, renders it at the predicted viewpoint (coarse mask) and refines it (final amodal mask); the turntable GIF shows the mesh all around.
    """  # noqa: E501 (typer's help keeps the line breaks of a paragraph: one line each, the terminal wraps them)
    dataset = dataset_or_alias(dataset, data)
    if dataset is not None:
        dataset = str(resolve_dataset(dataset, data_root))
    if checkpoint is None:
        checkpoint = default_checkpoint(PRETRAINING, runs_root)
    if dataset is None and image is None and visible_mask is None:
        dataset = pretraining_data(checkpoint)
        if dataset is not None and index is None:
            index = 0
            announce(f"instance: --index 0 of the {split} split (--index N to choose)")
    with console.status("reconstructing and rendering the turntable..."):
        result = export_instance_mesh(
            checkpoint,
            out,
            image=image,
            visible_mask=visible_mask,
            data=dataset,
            index=index,
            split=split,
            category=category,
            crop=crop.value,
            device=device,
            turntable_frames=frames,
            turntable_size=turntable_size,
        )
    table = Table(title=f"export-mesh: {result.source}", show_header=False)
    table.add_row("category", f"{result.category} ({result.category_source}, p = {result.category_probability:.2f})")
    if result.ground_truth_category is not None:
        table.add_row("ground-truth category", result.ground_truth_category)
    table.add_row("mesh", f"{result.num_vertices} vertices, {result.num_faces} faces")
    table.add_row(
        "viewpoint",
        f"elevation {result.elevation_deg:.1f} deg, azimuth {result.azimuth_deg:.1f} deg, distance "
        f"{result.distance:.3f}",
    )
    table.add_row(
        "mask pixels", f"visible {result.visible_pixels}, coarse {result.coarse_pixels}, refined {result.amodal_pixels}"
    )
    if result.amodal_iou is not None:
        table.add_row("IoU with the GT amodal mask", f"{result.amodal_iou:.3f}")
    for name, path in result.files.items():
        table.add_row(name, str(path))
    console.print(table)
