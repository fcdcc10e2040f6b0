"""``a3d prepare modal``: Deocclusion-style training pairs from a COCO instance file without amodal masks.

A thin wrapper over :func:`a3d_core.data.prepare_modal.prepare_modal` (docs/modal.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from a3d_cli.common import console, user_errors
from a3d_cli.options import DataRootOption, OverwriteOption, SeedOption, out_option
from a3d_cli.prepare import app
from a3d_cli.prepare.shapenet import parse_fractions
from a3d_cli.progress import ProgressDisplay
from a3d_core.errors import InputError
from a3d_core.progress import stage_callback

SHOWN_PROBLEMS = 5


@app.command("modal")
@user_errors
def modal(
    annotations: Path = typer.Option(
        ..., "--annotations", help="COCO-style instance file (polygons or RLE; modal masks, no amodal ones)."
    ),
    images: Optional[Path] = typer.Option(
        None,
        "--images",
        help="Folder the images' file_name are relative to: the erasers' pixels are pasted over the image. "
        "Default: mask-only pairs (RGB = visible, eraser, 0).",
    ),
    out: Optional[Path] = out_option(None, "Dataset folder to write (default: <data root>/modal)."),
    data_root: Optional[Path] = DataRootOption,
    class_agnostic: bool = typer.Option(
        False, "--class-agnostic", help="One category, 'object' (Deocclusion's setting), instead of the file's."
    ),
    image_size: int = typer.Option(
        64, "--image-size", min=8, help="Pair side in pixels (as the other pretraining data)."
    ),
    max_images: Optional[int] = typer.Option(
        None, "--max-images", min=1, help="Use only the first this many images (by id) that have instances."
    ),
    split: str = typer.Option("0.7,0.1,0.2", "--split", help="TRAIN,VAL,TEST fractions of the IMAGES."),
    min_occlusion: float = typer.Option(0.1, "--min-occlusion", help="Lowest erased fraction of an instance."),
    max_occlusion: float = typer.Option(0.7, "--max-occlusion", help="Highest erased fraction of an instance."),
    eraser_front_prob: float = typer.Option(
        0.8,
        "--eraser-front-prob",
        min=0.0,
        max=1.0,
        help="Chance that the eraser is in front of a train instance (Deocclusion: 0.8); else behind it.",
    ),
    overwrite: bool = OverwriteOption,
    seed: int = SeedOption,
) -> None:
    """Build completion pairs from modal instance masks (Deocclusion's recipe; images optional).

    Each instance's own modal mask is the target; another instance's mask of the same split is
    placed over it as the eraser, behind the instance's real neighbours. Splits are by image.
    Writes the shard format of `a3d prepare shapenet`: train any model with `a3d pretrain --dataset DIR`.
    """
    from a3d_core.data.catalog import data_root as resolve_root
    from a3d_core.data.occlusion import OcclusionSettings
    from a3d_core.data.prepare_modal import ERASER_ONLY, PHASES, ModalPairSettings, PrepareModalConfig, prepare_modal

    try:
        config = PrepareModalConfig(
            annotations=annotations,
            out=out or resolve_root(data_root) / "modal",
            images=images,
            class_agnostic=class_agnostic,
            image_size=image_size,
            split_fractions=parse_fractions(split),
            pairs=ModalPairSettings(
                OcclusionSettings(min_rate=min_occlusion, max_rate=max_occlusion, kind_weights=ERASER_ONLY),
                eraser_front_prob,
            ),
            seed=seed,
            max_images=max_images,
            overwrite=overwrite,
        )
    except ValueError as error:
        raise InputError(str(error)) from None
    with ProgressDisplay(console) as display:
        result = prepare_modal(config, progress=stage_callback(display, PHASES))

    table = Table(title=f"Modal completion pairs -> {result.out}")
    for column in ("split", "images", "instances", "mean occlusion"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for name, (images, instances, rate) in result.splits.items():
        table.add_row(name, str(images), str(instances), f"{rate:.2f}")
    console.print(table)
    console.print(f"{len(result.categories)} categories; {image_size}x{image_size}; {result.seconds:.1f} s")
    if result.problems:
        console.print(f"skipped {len(result.problems)} entries:")
        for problem in result.problems[:SHOWN_PROBLEMS]:
            console.print(f"  {problem.describe()}", markup=False, highlight=False)
        if len(result.problems) > SHOWN_PROBLEMS:
            console.print(f"  ... and {len(result.problems) - SHOWN_PROBLEMS} more")
