"""`a3d complete`: Complete the visible instance masks of any segmenter into amodal masks (stage 2 alone)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from a3d_cli.common import console, default_checkpoint, user_errors
from a3d_cli.options import (
    DataRootOption,
    DeviceOption,
    RunsRootOption,
    UnknownCategory,
    UnknownCategoryOption,
    out_option,
)
from a3d_cli.progress import ProgressDisplay
from a3d_core.errors import InputError
from a3d_core.pipelines.complete import CompleteResult, CompleteSettings, complete_images
from a3d_core.progress import count_callback
from a3d_core.train.run_folders import FINE_TUNED


@user_errors
def complete(
    inputs: List[str] = typer.Argument(
        ..., help="Image files, folders or glob patterns (quote patterns: 'photos/*.jpg')."
    ),
    visible: Path = typer.Option(
        ...,
        "--visible",
        help="Visible instance masks as COCO results (a list, or an object with annotations/images/categories): "
        "image_id or file_name (neither: the one image given), category_id or category_name (neither: class-agnostic "
        "'object'), score (or SAM's predicted_iou), segmentation (the VISIBLE mask, RLE or polygons), optional bbox "
        "(the amodal box to crop around). SAM's output for one image works as it is.",
    ),
    checkpoint: Optional[Path] = typer.Option(
        None,
        "--checkpoint",
        help="A pretraining (`a3d pretrain`) or fine-tuned (`a3d finetune`) checkpoint: its stage 2 completes each "
        "instance. Default: the newest fine-tuned run under the runs root.",
    ),
    out: Path = out_option(
        ...,
        "Folder for predictions.json (amodal COCO results for `a3d evaluate --predictions`), images.json and one "
        "folder per image (overlay, masks, meshes).",
    ),
    categories: Optional[str] = typer.Option(
        None,
        "--categories",
        help="What the category_id values mean, when the file does not say: a dataset (name or folder) or a JSON file "
        "with 'categories' (e.g. `a3d predict`'s images.json).",
    ),
    images_index: Optional[Path] = typer.Option(
        None,
        "--images-index",
        help="A JSON file with 'images' (id, file_name) giving the image_id values (e.g. `a3d predict`'s images.json "
        "or a dataset split). Default: the file's own images, else positions in the sorted image list "
        "(as `a3d predict` numbers them).",
    ),
    category_map: Optional[Path] = typer.Option(
        None,
        "--category-map",
        help='JSON {"class": "checkpoint category" or null} over the shipped map (couch -> sofa, van -> car, ...).',
    ),
    shipped_category_map: bool = typer.Option(
        True,
        "--default-category-map/--no-category-map",
        help="Match classes the checkpoint does not have through the shipped map to the 13 ShapeNet categories, or by "
        "name only.",
    ),
    unknown_category: UnknownCategory = UnknownCategoryOption,
    batch_size: int = typer.Option(1, "--batch-size", min=1, help="Images per completion pass."),
    overlay_scale: int = typer.Option(
        1, "--overlay-scale", min=1, max=16, help="Draw the overlays this many times larger than the images."
    ),
    meshes: bool = typer.Option(False, "--meshes", help="Also write each instance's reconstructed mesh (OBJ)."),
    data_root: Optional[Path] = DataRootOption,
    runs_root: Optional[Path] = RunsRootOption,
    device: str = DeviceOption,
) -> None:
    """Complete the visible instance masks of any segmenter into amodal masks (stage 2 alone).

    Each instance (its box and VISIBLE mask) is cropped and completed through its category's 3D shape prior, viewpoint, renderer and edge refine (paper 3.3-3.5). Categories match the checkpoint's by name or through the category map; the others (and masks with no category, as SAM's) go through the shape prior of the class the network predicts (--unknown-category). Every entry is checked first: a bad one stops the run with its index, before anything is written.
    """  # noqa: E501 (typer's help keeps the line breaks of a paragraph: one line each, the terminal wraps them)
    if checkpoint is None:
        checkpoint = default_checkpoint(FINE_TUNED, runs_root)
    try:
        settings = CompleteSettings(
            checkpoint=checkpoint,
            categories=categories,
            images_index=images_index,
            category_map=category_map,
            shipped_category_map=shipped_category_map,
            unknown_category=unknown_category.value,
            batch_size=batch_size,
            device=device,
            meshes=meshes,
            overlay_scale=overlay_scale,
            data_root=data_root,
        )
    except ValueError as error:
        raise InputError(str(error)) from None
    with ProgressDisplay(console) as display:
        result = complete_images(inputs, visible, out, settings, count_callback(display, "complete", "image"))
    console.print(summary_table(result))
    console.print(result.handling.summary(), highlight=False)
    console.print(
        f"COCO results: {result.predictions_file}; image ids and categories: {result.images_file}; "
        f"overlays and masks: {result.out}/<image>/",
        highlight=False,
    )


def summary_table(result: CompleteResult) -> Table:
    """Per category: instances, the decoder that completed them (``sofa <- couch`` through the map,
    ``predicted: car 2`` by the classification branch), how much of the amodal area was hidden."""
    table = Table(title=f"a3d complete ({result.completer}): {result.instances} instances in {result.images} images")
    for column, justify in (
        ("category", "left"),
        ("shape decoder", "left"),
        ("instances", "right"),
        ("hidden share of amodal area", "right"),
    ):
        table.add_column(column, justify=justify)
    for name, counts in sorted(result.per_category.items()):
        table.add_row(
            name,
            _decoder_cell(result, name),
            str(counts.instances),
            f"{100 * counts.completed_fraction:.1f}%",
        )
    return table


def _decoder_cell(result: CompleteResult, name: str) -> str:
    decoder = result.decoders.get(name)
    if decoder is not None:
        return decoder if decoder == name else f"{decoder} <- {name}"
    predicted = result.handling.predicted_decoders.get(name)
    if predicted:
        return "predicted: " + ", ".join(f"{chosen} {count}" for chosen, count in sorted(predicted.items()))
    return "visible mask"
