"""``a3d prepare scenes``: the built-in multi-object amodal dataset.

A thin wrapper over :func:`a3d_core.data.prepare_scenes.prepare_scenes`: parses options, shows a
progress bar per stage and prints the summary tables.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from a3d_cli.common import console, user_errors
from a3d_cli.options import DataRootOption, OverwriteOption, SeedOption, out_option
from a3d_cli.prepare import app
from a3d_cli.progress import ProgressDisplay
from a3d_core.data.prepare_scenes import OCCLUSION_BINS, ObjectPoolSettings, ScenesRequest, ScenesResult, prepare_scenes
from a3d_core.data.scenes import SceneSettings
from a3d_core.data.shapes import CATEGORIES
from a3d_core.errors import InputError
from a3d_core.progress import stage_callback

DEFAULT_IMAGES = 250
MAX_DEFAULT_WORKERS = 4
STAGE_PHASES = {
    "render": ("rendering objects", "view"),
    "train": ("composing train", "image"),
    "val": ("composing val", "image"),
}


def parse_image_size(text: str) -> tuple[int, int]:
    """``"256x192"`` -> ``(256, 192)`` (width, height); anything else raises :class:`InputError`."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise InputError(f"--image-size {text!r}: write WIDTHxHEIGHT, e.g. 256x192")
    return int(parts[0]), int(parts[1])


def parse_categories(text: Optional[str]) -> tuple[str, ...]:
    """``"chair,table"`` -> ``("chair", "table")``; ``None`` -> all 13 library categories."""
    if text is None:
        return CATEGORIES
    return tuple(name.strip() for name in text.split(",") if name.strip())


def split_counts(
    images: Optional[int], val_fraction: float, train_images: Optional[int], val_images: Optional[int]
) -> tuple[int, int]:
    """Train and val image counts: explicit counts win, else ``images`` split by ``val_fraction``."""
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    total = DEFAULT_IMAGES if images is None else images
    if total < 1:
        raise InputError(f"--images must be at least 1, got {total}")
    val = round(total * val_fraction)
    return (total - val if train_images is None else train_images), (val if val_images is None else val_images)


@app.command(
    "scenes",
    help="Build the built-in multi-object amodal dataset: shape-library objects rendered at random "
    "poses and composited in depth order on textured backgrounds, so occlusions are real and the "
    "amodal and visible masks exact. Several objects per image, most of them occluded (D2SA-like). "
    "Writes train and val splits in the canonical format; val objects are never seen in train. "
    "The same seed gives byte-identical files.",
)
@user_errors
def scenes(
    images: Optional[int] = typer.Option(
        None,
        "--images",
        "-n",
        help=f"Images in all, split into train and val by --val-fraction (default {DEFAULT_IMAGES}).",
    ),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of --images that goes to val."),
    train_images: Optional[int] = typer.Option(None, "--train-images", help="Train images (overrides --images)."),
    val_images: Optional[int] = typer.Option(
        None, "--val-images", help="Val images (overrides --images; 0: no val split)."
    ),
    image_size: str = typer.Option("256x192", "--image-size", help="Image size WIDTHxHEIGHT in pixels."),
    objects_min: int = typer.Option(3, "--objects-min", help="Fewest objects drawn per image."),
    objects_max: int = typer.Option(6, "--objects-max", help="Most objects drawn per image."),
    categories: Optional[str] = typer.Option(
        None,
        "--categories",
        help=f"Comma-separated subset of the library's categories ({', '.join(CATEGORIES)}); ids stay fixed.",
    ),
    train_objects: int = typer.Option(4, "--train-objects", help="Distinct objects per category rendered for train."),
    val_objects: int = typer.Option(
        2, "--val-objects", help="Distinct objects per category rendered for val (unseen in train)."
    ),
    views_per_object: int = typer.Option(
        3, "--views", help="Random poses rendered per object; each view is reused in several scenes."
    ),
    seed: int = SeedOption,
    workers: Optional[int] = typer.Option(
        None,
        "--workers",
        "-j",
        help=f"Processes for rendering and composing (default: CPU cores, at most {MAX_DEFAULT_WORKERS}). "
        "The output does not depend on it.",
    ),
    out: Optional[Path] = out_option(None, "Dataset folder (default: <data root>/scenes)."),
    data_root: Optional[Path] = DataRootOption,
    overwrite: bool = OverwriteOption,
    preview: Optional[Path] = typer.Option(
        None, "--preview", help="Also write a PNG grid of the first train scenes: image, visible masks, amodal masks."
    ),
) -> None:
    width, height = parse_image_size(image_size)
    train_count, val_count = split_counts(images, val_fraction, train_images, val_images)
    try:
        scene = SceneSettings(width=width, height=height, objects_min=objects_min, objects_max=objects_max)
        pool = ObjectPoolSettings(
            train_objects=train_objects, val_objects=val_objects, views_per_object=views_per_object
        )
    except ValueError as error:
        raise InputError(str(error)) from None
    request = ScenesRequest(
        train_images=train_count,
        val_images=val_count,
        categories=parse_categories(categories),
        scene=scene,
        pool=pool,
        seed=seed,
        workers=workers if workers is not None else max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS)),
        out_dir=out,
        data_root_dir=data_root,
        overwrite=overwrite,
        preview_path=preview,
    )
    started = time.perf_counter()
    with ProgressDisplay(console) as display:
        result = prepare_scenes(request, stage_callback(display, STAGE_PHASES))
    print_result(result, request, time.perf_counter() - started)


def print_result(result: ScenesResult, request: ScenesRequest, seconds: float) -> None:
    """Summary, per-category and occlusion-histogram tables."""
    splits = list(result.splits)
    summary = Table(title="built-in scenes", show_header=True)
    summary.add_column("", style="bold")
    for split in splits:
        summary.add_column(split, justify="right")
    rows = {
        "images": lambda s: str(s.images),
        "instances": lambda s: str(s.instances),
        "instances per image": lambda s: f"{s.instances / max(s.images, 1):.2f}",
        "occluded instances": lambda s: f"{100 * s.occluded_share:.1f}%",
        "mean occlusion rate": lambda s: f"{s.mean_occlusion:.3f}",
        "objects dropped (no valid place)": lambda s: str(s.dropped_objects),
        "objects in pool": lambda s: str(s.objects),
        "views in pool": lambda s: str(s.views),
    }
    for label, cell in rows.items():
        summary.add_row(label, *(cell(result.splits[split]) for split in splits))
    console.print(summary)

    details = Table(show_header=False)
    details.add_column(style="bold")
    details.add_column(overflow="fold")
    details.add_row("dataset", Text(str(result.dataset.root)))
    details.add_row("image size", f"{request.scene.width}x{request.scene.height}")
    details.add_row("render size", str(result.render_size))
    details.add_row("seed", str(request.seed))
    details.add_row("time", f"{seconds:.1f} s with {request.workers} worker(s)")
    if result.preview_path is not None:
        details.add_row("preview", Text(str(result.preview_path)))
    console.print(details)

    per_category = Table(title="instances per category")
    per_category.add_column("id", justify="right")
    per_category.add_column("name")
    for split in splits:
        per_category.add_column(split, justify="right")
    for name in request.categories:
        counts = (str(result.splits[split].per_category[name]) for split in splits)
        per_category.add_row(str(CATEGORIES.index(name) + 1), name, *counts)
    console.print(per_category)

    histogram = Table(title="occlusion rate (1 - visible / amodal area)")
    histogram.add_column("range")
    for split in splits:
        histogram.add_column(split, justify="right")
    histogram.add_column("")
    first = result.splits[splits[0]].occlusion_histogram
    peak = max(first) or 1
    for index in range(OCCLUSION_BINS):
        closing = "]" if index == OCCLUSION_BINS - 1 else ")"
        counts = [str(result.splits[split].occlusion_histogram[index]) for split in splits]
        histogram.add_row(
            f"[{index / OCCLUSION_BINS:.1f}, {(index + 1) / OCCLUSION_BINS:.1f}{closing}",
            *counts,
            "#" * round(30 * first[index] / peak),
        )
    console.print(histogram)
