"""`a3d demo`: Run the whole pipeline at a small scale on the built-in data, into a browsable folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from a3d_cli.common import console, user_errors
from a3d_cli.options import DeviceOption, Kind, OverwriteOption, SeedOption, model_option, out_option
from a3d_cli.progress import ProgressDisplay

if TYPE_CHECKING:
    from a3d_core.pipelines.demo import DemoResult


@user_errors
def demo(
    out: Path = out_option(Path("demo"), "Folder to write everything into (index.md is the front page)."),
    quick: bool = typer.Option(
        False, "--quick", help="A seconds-long run that only shows every step connects (nothing learns)."
    ),
    overwrite: bool = OverwriteOption,
    device: str = DeviceOption,
    seed: int = SeedOption,
    model: Kind = model_option("Pretrained, then fine-tuned as the two-stage network's stage 2 (meshes: a3d only)."),
) -> None:
    """Run the whole pipeline at a small scale on the built-in data, into a browsable folder.

    prepare shapenet -> pretrain stage 2 (--model; a3d: the paper's 3D shape prior) -> prepare scenes -> fine-tune both stages -> evaluate (amodal AP, mIoU, beside the visible-mask baseline) -> complete the ground-truth instances (panels; with a3d, meshes and turntables) -> predict (panels). OUT/index.md opens with summary.png: the most occluded val instances, completed, beside the ground truth. About a quarter of an hour on two CPU cores; open OUT/index.md.
    """  # noqa: E501 (typer's help keeps the line breaks of a paragraph: one line each, the terminal wraps them)
    from dataclasses import replace

    from a3d_core.pipelines.demo import FULL, QUICK, run_demo  # imports every stage: only when the command runs

    plan = replace(QUICK if quick else FULL, stage2_kind=model.value)
    with ProgressDisplay(console, transient=False) as display:
        result = run_demo(out, plan, seed=seed, device=device, overwrite=overwrite, progress=display)
    console.print(summary_table(result))
    console.print(f"open {result.index}", highlight=False)


def summary_table(result: DemoResult) -> Table:
    table = Table(title=f"a3d demo: {result.total_seconds:.0f} s")
    table.add_column("step")
    table.add_column("wall s", justify="right")
    table.add_column("CPU s", justify="right")
    for name, seconds in result.seconds.items():
        table.add_row(name, f"{seconds:.0f}", f"{result.cpu_seconds[name]:.0f}")
    table.add_section()
    labels = {
        "model": "two-stage (detections)",
        "visible_baseline": "visible as amodal (detections)",
        "stage2_on_ground_truth": "stage 2 on GT boxes",
        "ground_truth_visible": "GT visible as amodal",
    }
    for method, values in result.metrics.items():
        label = labels[method]
        table.add_row(f"{label}: AP / mIoU (%)", f"{100 * values['AP']:.1f} / {100 * values['mIoU']:.1f}", "")
    return table
