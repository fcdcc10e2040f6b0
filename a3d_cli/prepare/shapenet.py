"""``a3d prepare shapenet``: ShapeNet renders, mesh folders, or the built-in shape library."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from a3d_cli.common import console, user_errors
from a3d_cli.options import DataRootOption, OverwriteOption, SeedOption, out_option
from a3d_cli.prepare import app
from a3d_cli.progress import ProgressDisplay
from a3d_core.data.viewpoints import parse_numbers, parse_pairs, parse_view_range
from a3d_core.errors import InputError
from a3d_core.progress import stage_callback


def _parse_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    views = parse_view_range(text, "--holdout-views")
    return views[0], views[-1]


def parse_fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise InputError(f"--split: expected TRAIN,VAL,TEST fractions such as 0.7,0.1,0.2, got {text!r}")
    return values  # type: ignore[return-value]


@app.command("shapenet")
@user_errors
def shapenet(
    source: Optional[Path] = typer.Option(
        None,
        "--source",
        help="Kato/SoftRas npz renders ({synset}_{split}_images.npz) or a mesh folder "
        "(ShapeNetCore v1/v2, or any .obj/.ply tree: category = first folder). Default: the built-in shape library.",
    ),
    out: Optional[Path] = out_option(None, "Dataset folder to write (default: <data root>/shapenet)."),
    data_root: Optional[Path] = DataRootOption,
    objects_per_category: Optional[int] = typer.Option(
        None,
        "--objects-per-category",
        min=1,
        help="Objects per category (built-in default 12; for --source: at most this many, default all).",
    ),
    views: int = typer.Option(
        24, "--views", min=1, max=24, help="How many of Kato's 24 azimuths (-15 v degrees), evenly spaced."
    ),
    elevations: str = typer.Option(
        "30",
        "--elevations",
        help="Training elevations in degrees, e.g. 0,30; each is rendered at every azimuth (Kato npz renders: 30 "
        "only).",
    ),
    image_size: int = typer.Option(64, "--image-size", min=8, help="Image side in pixels (Kato: 64)."),
    supersample: int = typer.Option(
        1,
        "--supersample",
        min=1,
        max=4,
        help="Render at this multiple of the size and average (anti-aliasing; costs its square).",
    ),
    split: str = typer.Option(
        "0.7,0.1,0.2", "--split", help="TRAIN,VAL,TEST fractions of the objects (Kato npz files keep their own split)."
    ),
    holdout_views: Optional[str] = typer.Option(
        None,
        "--holdout-views",
        help="FIRST-LAST Kato view ids kept out of training together with their mirror images and front/back "
        "twins (view v mirrors (24 - v) mod 24, its twin is (12 - v) mod 24: 1-2 also holds out 10, 11, 13, 14, "
        "22, 23); the test objects at these views form test_newview.",
    ),
    holdout_elevations: Optional[str] = typer.Option(
        None,
        "--holdout-elevations",
        help="Elevations training never sees, e.g. 60,-15; the test objects at them form test_elevation.",
    ),
    holdout_pairs: Optional[str] = typer.Option(
        None,
        "--holdout-pairs",
        help="ELEVATION:FIRST-LAST (elevation, azimuth) pairs (and mirrors and twins) only in test_combination, "
        "e.g. 0:4-8,30:10-11; every elevation and azimuth must stay in training.",
    ),
    min_occlusion: float = typer.Option(0.1, "--min-occlusion", help="Lowest synthetic occlusion rate."),
    max_occlusion: float = typer.Option(0.7, "--max-occlusion", help="Highest synthetic occlusion rate."),
    workers: int = typer.Option(1, "--workers", min=1, help="Render in this many processes."),
    export_coco: bool = typer.Option(
        False, "--export-coco", help="Also write the canonical COCO JSON of each split and PNG images."
    ),
    preview: Optional[Path] = typer.Option(
        None, "--preview", help="Write a PNG grid of samples (RGB | visible | amodal, one row per category)."
    ),
    overwrite: bool = OverwriteOption,
    seed: int = SeedOption,
) -> None:
    """Build the ShapeNet-style single-object amodal set: renders at Kato's views plus synthetic occlusion.

    With no --source, 13 procedural categories (airplane ... watercraft) are generated, so the
    whole pipeline works without any download. Splits are by object.
    """
    from a3d_core.data.catalog import data_root as resolve_root
    from a3d_core.data.occlusion import OcclusionSettings
    from a3d_core.data.prepare_shapenet import PrepareShapeNetConfig, prepare_shapenet
    from a3d_core.data.render import RenderSettings

    try:
        config = PrepareShapeNetConfig(
            out=out or resolve_root(data_root) / "shapenet",
            source=source,
            objects_per_category=objects_per_category,
            views=views,
            image_size=image_size,
            split_fractions=parse_fractions(split),
            elevations=parse_numbers(elevations, "--elevations"),
            holdout_views=_parse_range(holdout_views),
            holdout_elevations=parse_numbers(holdout_elevations, "--holdout-elevations"),
            holdout_pairs=parse_pairs(holdout_pairs),
            occlusion=OcclusionSettings(min_rate=min_occlusion, max_rate=max_occlusion),
            render=RenderSettings(image_size=image_size, supersample=supersample),
            seed=seed,
            workers=workers,
            export_coco=export_coco,
            preview=preview,
            overwrite=overwrite,
        )
    except ValueError as error:
        raise InputError(str(error)) from None
    if config.out.exists() and not overwrite:
        raise InputError(f"{config.out}: already exists (pass --overwrite to replace it)")

    phases = {"render": ("rendering views", "view"), "occlude": ("occluding views", "view")}
    with ProgressDisplay(console) as display:
        result = prepare_shapenet(config, progress=stage_callback(display, phases))

    table = Table(title=f"ShapeNet-style dataset -> {result.out}")
    for column in ("split", "objects", "samples", "mean occlusion"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for name, summary in result.splits.items():
        table.add_row(name, str(summary.objects), str(summary.samples), f"{summary.mean_occlusion_rate:.2f}")
    console.print(table)
    render_rate = result.views_rendered / max(result.render_seconds, 1e-9)
    occlusion_rate = result.views_occluded / max(result.occlusion_seconds, 1e-9)
    protocol = result.protocol
    console.print(
        f"source {result.source}; {len(result.categories)} categories; {result.image_size}x{result.image_size}; "
        f"views {result.view_ids} at elevations {', '.join(f'{e:g}' for e in protocol.elevations)}"
    )
    if protocol.holdout_views:
        console.print(
            "held out (closed under the mirror v -> (24 - v) mod 24 and the twin v -> (12 - v) mod 24): "
            f"views {list(protocol.holdout_views)}"
        )
    if protocol.holdout_elevations:
        console.print(f"held out: elevations {', '.join(f'{e:g}' for e in protocol.holdout_elevations)}")
    if protocol.holdout_pairs:
        console.print(
            "held out (elevation:view, closed under mirrors and twins): "
            + ", ".join(f"{e:g}:{v}" for e, v in protocol.holdout_pairs)
        )
    console.print(f"rendering {render_rate:.1f} views/s, occlusion {occlusion_rate:.1f} views/s")
    if result.views_skipped:
        console.print(
            f"skipped {result.views_skipped} views whose silhouette was under {config.min_amodal_pixels} pixels"
        )
    if result.preview is not None:
        console.print(f"preview: {result.preview}")
