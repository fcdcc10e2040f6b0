"""`a3d predict`: Predict amodal and visible masks for images."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from a3d_cli.common import console, default_checkpoint, error_console, fail, user_errors
from a3d_cli.options import DataRootOption, DeviceOption, RunsRootOption, dataset_option, out_option
from a3d_cli.progress import ProgressDisplay
from a3d_core.errors import InputError
from a3d_core.pipelines.predict import PredictResult, PredictSettings, predict_dataset, predict_images
from a3d_core.progress import count_callback
from a3d_core.train.run_folders import FINE_TUNED


@user_errors
def predict(
    inputs: Optional[List[str]] = typer.Argument(
        None, help="Image files, folders or glob patterns (quote patterns: 'photos/*.jpg')."
    ),
    out: Path = out_option(
        ...,
        "Folder for predictions.json, images.json and one folder per image (occlusion.json, panels, overlay, masks, "
        "meshes).",
    ),
    checkpoint: Optional[Path] = typer.Option(
        None,
        "--checkpoint",
        help="Fine-tuned checkpoint (`a3d finetune`). Default: the newest fine-tuned run under the runs root.",
    ),
    dataset: Optional[str] = dataset_option(
        None,
        "Predict a split of it instead of images, with its image and category ids (for `a3d evaluate --predictions`).",
    ),
    split: str = typer.Option("val", "--split", help="With --dataset: the split to predict."),
    score_threshold: float = typer.Option(
        0.5, "--score-threshold", min=0.0, max=1.0, help="Leave out detections scoring below this."
    ),
    batch_size: int = typer.Option(1, "--batch-size", min=1, help="Images per forward pass."),
    overlay_scale: int = typer.Option(
        1,
        "--overlay-scale",
        min=1,
        max=16,
        help="Draw the overlays this many times larger than the images (for small images).",
    ),
    meshes: bool = typer.Option(False, "--meshes", help="Also write each instance's reconstructed mesh (OBJ)."),
    runs_root: Optional[Path] = RunsRootOption,
    data_root: Optional[Path] = DataRootOption,
    device: str = DeviceOption,
) -> None:
    """Predict amodal and visible masks for images.

    Writes a COCO results JSON (amodal mask as segmentation, visible_mask, bbox, category_id, score), per image panels.png (one row per detection: input crop | visible mask | amodal mask with the part completed by the 3D prior in orange, enlarged to be readable) and overlay.png (the whole image: visible parts tinted, completed parts hatched), occlusion.json (who occludes whom, from the amodal and visible masks, with a confidence, and the depth order; each panel row is labelled with its depth rank), and per-instance mask PNGs. Any readable image works; an unreadable one is reported and skipped, and the exit code is 1 when some failed.
    """  # noqa: E501 (typer's help keeps the line breaks of a paragraph: one line each, the terminal wraps them)
    if (dataset is None) == (not inputs):
        fail("give images (files, folders or patterns), or --dataset NAME with --split")
    if checkpoint is None:
        checkpoint = default_checkpoint(FINE_TUNED, runs_root)
    try:
        settings = PredictSettings(
            checkpoint=checkpoint,
            score_threshold=score_threshold,
            batch_size=batch_size,
            device=device,
            meshes=meshes,
            overlay_scale=overlay_scale,
            runs_root=runs_root,
        )
    except ValueError as error:
        raise InputError(str(error)) from None
    with ProgressDisplay(console) as display:
        advance = count_callback(display, "predict", "image")
        if dataset is not None:
            result = predict_dataset(dataset, split, out, settings, advance, data_root)
        else:
            result = predict_images(inputs, out, settings, advance)
    console.print(summary_table(result))
    for path, reason in result.failed:
        error_console.print(
            f"[bold red]skipped[/] {escape(str(path))}: {escape(reason)}", highlight=False, soft_wrap=True
        )
    if result.failed:
        raise typer.Exit(1)


def summary_table(result: PredictResult) -> Table:
    table = Table(title=f"a3d predict ({result.checkpoint})", show_header=False)
    table.add_row("images predicted", str(result.images))
    table.add_row("images skipped (unreadable)", str(len(result.failed)))
    table.add_row("instances", str(result.instances))
    table.add_row("COCO results", str(result.predictions_file))
    table.add_row("image ids and categories", str(result.images_file))
    table.add_row("occlusion order, panels, overlays and masks", f"{result.out}/<image>/")
    return table
