"""``a3d prepare kins | kins2020 | d2sa | cocoa-cls | cocoa``: real amodal datasets.

Each command is a thin wrapper over :func:`a3d_core.data.prepare_real.prepare_real`; this module
only parses options, shows a progress bar and prints the validation report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from a3d_cli.common import console, user_errors
from a3d_cli.options import DataRootOption, OverwriteOption, out_option
from a3d_cli.prepare import app
from a3d_cli.progress import ProgressDisplay
from a3d_core.data.formats import layout_entry
from a3d_core.data.prepare_real import RealPrepareRequest, RealPrepareResult, prepare_real
from a3d_core.data.validate import StrictValidationError, ValidationReport
from a3d_core.progress import count_callback

PROBLEMS_SHOWN = 20

AnnotationsOption = typer.Option(
    ...,
    "--annotations",
    "-a",
    help="Annotation JSON file of this layout. Repeat to merge several files into one split "
    "(e.g. D2SA rot0 + augmented); ids are kept unique.",
)
ImagesOption = typer.Option(
    ...,
    "--images",
    "-i",
    help="Folder holding the images the JSON names. Images are not copied: "
    "the dataset records this folder's absolute path.",
)
SplitOption = typer.Option("train", "--split", "-s", help="Name of the split written (train, val, test, ...).")
OutOption = out_option(None, "Dataset folder (default: <data root>/<layout name>).")
StrictOption = typer.Option(False, "--strict", help="Fail on any problem instead of skipping and counting it.")
KeepStuffOption = typer.Option(False, "--keep-stuff", help="Keep COCOA's isStuff regions (sky, grass, ...).")


def _run(
    layout: str,
    annotations: list[Path],
    images: Path,
    split: str,
    out: Optional[Path],
    data_root: Optional[Path],
    strict: bool,
    overwrite: bool,
    keep_stuff: bool = False,
) -> None:
    request = RealPrepareRequest(
        layout=layout,
        annotation_files=tuple(annotations),
        image_dir=images,
        split=split,
        out_dir=out,
        data_root_dir=data_root,
        strict=strict,
        overwrite=overwrite,
        keep_stuff=keep_stuff,
    )
    title = layout_entry(layout).title
    try:
        with ProgressDisplay(console) as display:
            result = prepare_real(request, count_callback(display, f"converting {title}", "annotation"))
    except StrictValidationError as error:
        print_problems(error.report)
        raise
    print_result(result, title)


def print_result(result: RealPrepareResult, title: str) -> None:
    """The summary, per-category, occlusion and problem tables of a prepared split."""
    report = result.report
    summary = Table(title=Text(f"{title}, split {result.split!r}"), show_header=False)
    summary.add_column(style="bold")
    summary.add_column(justify="right", overflow="fold")
    summary.add_row("dataset", Text(str(result.dataset.root)))
    summary.add_row("images", str(report.images))
    summary.add_row("instances", str(report.instances))
    summary.add_row("images skipped", str(report.skipped_images))
    summary.add_row("annotations skipped", str(report.skipped_instances))
    summary.add_row("problems", str(len(report.problems)))
    for reason, count in {**report.excluded, **report.notes}.items():
        summary.add_row(Text(reason), str(count))
    summary.add_row("splits in dataset", Text(", ".join(result.dataset.splits)))
    if result.replaced_split:
        summary.add_row("replaced split", result.split)
    console.print(summary)

    categories = Table(title="instances per category")
    for column in ("id", "name", "instances", "mean occlusion"):
        categories.add_column(column, justify="left" if column == "name" else "right")
    for category in report.categories:
        categories.add_row(
            str(category.id), Text(category.name), str(category.instances), f"{category.mean_occlusion:.3f}"
        )
    console.print(categories)

    histogram = Table(title="occlusion rate (1 - visible / amodal area)")
    histogram.add_column("range")
    histogram.add_column("instances", justify="right")
    histogram.add_column("")
    peak = max(report.occlusion_histogram) or 1
    bins = len(report.occlusion_histogram)
    for index, count in enumerate(report.occlusion_histogram):
        closing = "]" if index == bins - 1 else ")"
        histogram.add_row(
            f"[{index / bins:.1f}, {(index + 1) / bins:.1f}{closing}", str(count), "#" * round(30 * count / peak)
        )
    console.print(histogram)
    print_problems(report)


def print_problems(report: ValidationReport) -> None:
    """Problem counts per kind, then the first problems with their annotation ids."""
    if not report.problems:
        console.print("[green]no problems found[/]")
        return
    counts = Table(title="problems")
    counts.add_column("problem")
    counts.add_column("count", justify="right")
    for kind, count in report.problem_counts.items():
        counts.add_row(kind.value, str(count))
    console.print(counts)
    listing = Table(title=f"first {min(PROBLEMS_SHOWN, len(report.problems))} of {len(report.problems)} problems")
    for column in ("annotation", "image", "file", "problem", "detail"):
        listing.add_column(column, overflow="fold")
    for problem in report.problems[:PROBLEMS_SHOWN]:
        listing.add_row(
            "-" if problem.annotation_id is None else str(problem.annotation_id),
            "-" if problem.image_id is None else str(problem.image_id),
            Text(problem.file.name),
            problem.kind.value,
            Text(problem.detail),
        )
    console.print(listing)
    if len(report.problems) > PROBLEMS_SHOWN:
        console.print("all problems are listed in the split JSON under info.report.problems")


def _help(layout: str) -> str:
    entry = layout_entry(layout)
    return (
        f"Convert {entry.summary} into the canonical amodal format: checks every image and "
        "annotation, skips and counts the bad ones (--strict: fail), prints a report. --overwrite replaces a "
        "split of the same name; the dataset's other splits are kept."
    )


def _register(layout: str) -> None:
    """Add ``a3d prepare <layout>`` with the options every layout shares."""

    @app.command(layout, help=_help(layout))
    @user_errors
    def convert(
        annotations: list[Path] = AnnotationsOption,
        images: Path = ImagesOption,
        split: str = SplitOption,
        out: Optional[Path] = OutOption,
        data_root: Optional[Path] = DataRootOption,
        strict: bool = StrictOption,
        overwrite: bool = OverwriteOption,
    ) -> None:
        _run(layout, annotations, images, split, out, data_root, strict, overwrite)


for _layout in ("kins", "kins2020", "d2sa", "cocoa-cls"):
    _register(_layout)


@app.command("cocoa", help=_help("cocoa"))
@user_errors
def cocoa(
    annotations: list[Path] = AnnotationsOption,
    images: Path = ImagesOption,
    split: str = SplitOption,
    out: Optional[Path] = OutOption,
    data_root: Optional[Path] = DataRootOption,
    strict: bool = StrictOption,
    overwrite: bool = OverwriteOption,
    keep_stuff: bool = KeepStuffOption,
) -> None:
    _run("cocoa", annotations, images, split, out, data_root, strict, overwrite, keep_stuff)
