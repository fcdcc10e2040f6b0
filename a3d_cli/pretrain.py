"""`a3d pretrain`: Pretrain the 3D shape prior (stage 2) on single-object data, unsupervised (paper 3.7)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from a3d_cli.common import announce, console, default_run_folder, user_errors
from a3d_cli.options import (
    DataAliasOption,
    DataRootOption,
    DeviceOption,
    Kind,
    RunsRootOption,
    SeedOption,
    choices,
    dataset_or_alias,
    model_option,
)
from a3d_cli.progress import ProgressDisplay
from a3d_core.data.catalog import resolve_dataset
from a3d_core.errors import InputError
from a3d_core.model.asm import ASMSettings
from a3d_core.model.losses import LossSettings
from a3d_core.model.refine import REFINE_ARCHITECTURES, RefineSettings
from a3d_core.model.shape import ShapeDecoderSettings
from a3d_core.model.shapedict import ShapeDictSettings
from a3d_core.model.viewpoint import CAMERAS, HYPOTHESIS_SELECTIONS, ViewpointSettings
from a3d_core.train.loop import AMP_MODES, TrainSettings
from a3d_core.train.pretrain import PretrainResult, PretrainSettings, pretrain as run_pretrain

DEFAULT_DATASET = "shapenet"
RUN_NAME = "pretrain"
HypothesisSelection = choices("HypothesisSelection", HYPOTHESIS_SELECTIONS)
Camera = choices("Camera", CAMERAS)
RefineArchitecture = choices("RefineArchitecture", REFINE_ARCHITECTURES)
AmpMode = choices("AmpMode", AMP_MODES)


@user_errors
def pretrain(
    dataset: Optional[str] = typer.Option(
        None,
        "--dataset",
        help="Dataset folder (or name under the data root) from `a3d prepare shapenet` or `a3d prepare modal`, "
        "or a COCO-style instance file (.json) of ordinary masks: its class-agnostic Deocclusion pairs are "
        "prepared into <out>/modal-pairs first. Default: shapenet under the data root.",
    ),
    data: Optional[str] = DataAliasOption,
    data_root: Optional[Path] = DataRootOption,
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        help="Run folder: last.pt, best.pt, metrics.jsonl, results.json. Default: pretrain under the runs root, or "
        "pretrain-2, -3, ... when it holds a run (with --resume: the latest).",
    ),
    runs_root: Optional[Path] = RunsRootOption,
    model: Kind = model_option(),
    epochs: int = typer.Option(
        10, "--epochs", min=1, help="Passes over the training split (ignored when --steps is given)."
    ),
    steps: Optional[int] = typer.Option(
        None, "--steps", min=1, help="Train for this many optimizer steps instead of --epochs."
    ),
    batch_size: int = typer.Option(
        64, "--batch-size", min=1, help="Instances per step, over all processes (paper: 64)."
    ),
    lr: float = typer.Option(1e-4, "--lr", help="Adam learning rate (paper: 1e-4)."),
    cross_view: Optional[bool] = typer.Option(
        None,
        "--cross-view/--no-cross-view",
        help="Cross-view consistency (paper 3.7). Default: on for a3d kinds, off for 2d.",
    ),
    template_level: int = typer.Option(
        3,
        "--template-level",
        min=0,
        max=6,
        help="Ico-sphere level of the mesh template: 3 = 642 vertices (paper), 2 = 162 (faster on CPU).",
    ),
    symmetric: bool = typer.Option(
        True, "--symmetric/--asymmetric", help="Mirror-symmetric meshes (as CMR): each shape equals its mirror image."
    ),
    azimuth_hypotheses: int = typer.Option(
        ViewpointSettings.azimuth_hypotheses,
        "--azimuth-hypotheses",
        min=1,
        help="Turned cameras per instance; training learns from the one closest to the amodal mask, which lets the "
        "viewpoint learn to turn. 1: the paper's single camera.",
    ),
    framing: float = typer.Option(
        1.1,
        "--framing",
        min=0.0,
        max=4.0,
        help="Crop every view at the square around its amodal box, this many times its longer side, as `a3d finetune` "
        "crops instances. 0: keep the views as they are (Kato's framing).",
    ),
    hypothesis_selection: HypothesisSelection = typer.Option(
        "render",
        "--hypothesis-selection",
        help="With several azimuth hypotheses, how evaluation picks one: render (all, the silhouette agreeing best "
        "with the visible mask) or scores (the viewpoint estimator scores them, trained towards the best-fitting one; "
        "one rendered: a single camera's cost).",
    ),
    camera: Camera = typer.Option(
        "learned",
        "--camera",
        help="Where the a3d camera comes from: learned (the paper's, never supervised), supervised (trained towards "
        "the views' true cameras, predicted at test; not the paper's) or oracle (an UPPER BOUND: rendered at the true "
        "camera, which it needs at test time too; --azimuth-hypotheses 1).",
    ),
    shapedict_atoms: int = typer.Option(
        64,
        "--shapedict-atoms",
        min=0,
        help="K-means atoms per category of --model shapedict*; 0: every training mask is an atom.",
    ),
    view_cycle: Optional[float] = typer.Option(
        None,
        "--view-cycle",
        min=0.0,
        help="Weight of the view cycle (a3d kinds; not in the paper): each mesh is rendered at a random camera and "
        "re-encoded, and the viewpoint estimator must find that camera, the shape decoder that mesh. 0: off. "
        f"Default: {LossSettings.VIEW_CYCLE_WEIGHT:g} for a3d kinds, off for 2d.",
    ),
    refine: RefineArchitecture = typer.Option(
        RefineSettings.architecture,
        "--refine",
        help="The refine after the coarse mask: edge (the paper's three conv layers, 3.5) or unet (a small U-Net on "
        "the same inputs; not in the paper).",
    ),
    occluder_input: bool = typer.Option(
        False,
        "--occluder-input/--no-occluder-input",
        help="Every model part that reads the instance also reads the mask of the pasted occluders (a fifth input "
        "channel; data prepared by `a3d prepare shapenet` stores it). Not in the paper.",
    ),
    flip: bool = typer.Option(
        False,
        "--flip/--no-flip",
        help="Horizontal-flip augmentation, drawn per object and epoch (all views of an object flip together). Off in "
        "the paper.",
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from last.pt, exactly as if never interrupted."
    ),
    val_every: Optional[int] = typer.Option(
        None, "--val-every", min=1, help="Validate (and checkpoint) every N steps. Default: once per epoch."
    ),
    val_instances: int = typer.Option(
        512, "--val-instances", min=1, help="Validate on at most this many val instances, evenly spread."
    ),
    checkpoint_every: int = typer.Option(
        500, "--checkpoint-every", min=1, help="Write last.pt every N steps (also after each validation)."
    ),
    amp: AmpMode = typer.Option(
        "bf16", "--amp", help="Mixed precision on CUDA: bf16, fp16 (with loss scaling) or off. CPU runs in float32."
    ),
    device: str = DeviceOption,
    seed: int = SeedOption,
    workers: int = typer.Option(0, "--workers", min=0, help="DataLoader worker processes."),
) -> None:
    """Pretrain the 3D shape prior (stage 2) on single-object data, unsupervised (paper 3.7).

    Trains on the train split and validates on val (mIoU); then reports the mIoU of the checkpoint chosen on val, on test and every held-out viewpoint split (test_newview, test_elevation, test_combination), beside the visible-mask baseline (the IoU of the visible mask itself with the amodal mask). Runs under torchrun for data parallelism.
    """  # noqa: E501 (typer's help keeps the line breaks of a paragraph: one line each, the terminal wraps them)
    dataset = dataset_or_alias(dataset, data)
    if dataset is None:
        dataset = DEFAULT_DATASET
        announce(f"data: {resolve_dataset(dataset, data_root)} (the default; --dataset DATASET to choose)")
    if out is None:
        out = default_run_folder(RUN_NAME, resume, runs_root)
    try:
        train_settings = TrainSettings(
            lr=lr,
            batch_size=batch_size,
            epochs=None if steps is not None else epochs,
            steps=steps,
            seed=seed,
            workers=workers,
            val_every=val_every,
            checkpoint_every=checkpoint_every,
            amp=amp.value,
        )
        if 0.0 < framing < 1.0:
            raise InputError(f"--framing must be 0 (keep the views as they are) or between 1 and 4, got {framing}")
        stage2 = ASMSettings(
            template_level=template_level,
            shape=ShapeDecoderSettings(symmetric=symmetric),
            viewpoint=ViewpointSettings(
                azimuth_hypotheses=azimuth_hypotheses,
                hypothesis_selection=hypothesis_selection.value,
                camera=camera.value,
            ),
            shapedict=ShapeDictSettings(atoms_per_category=shapedict_atoms),
            losses=LossSettings(view_cycle_camera=view_cycle, view_cycle_shape=view_cycle),
            refine=RefineSettings(architecture=refine.value),
            occluder_input=occluder_input,
        )
        settings = PretrainSettings(
            data=Path(dataset) if Path(dataset).is_file() else resolve_dataset(dataset, data_root),
            out=out,
            stage2_kind=model.value,
            stage2=stage2,
            train=train_settings,
            cross_view=cross_view,
            framing=framing or None,
            flip=flip,
            device=device,
            resume=resume,
            val_instances=val_instances,
        )
    except ValueError as error:
        raise InputError(str(error)) from None
    with ProgressDisplay(console) as display:
        result = run_pretrain(settings, progress=display)
    if not result.main_process:
        return
    if result.evaluations:
        console.print(result_table(result))
    training = result.training
    console.print(
        f"{training.steps} steps ({training.steps - training.start_step} in this run, {training.seconds:.0f} s); "
        f"evaluated {result.evaluated_checkpoint}; results in {result.out / 'results.json'}",
        highlight=False,
    )


def result_table(result: PretrainResult) -> Table:
    """Per-category IoU (%) of the model and of the visible-mask baseline, one column pair per test split.

    The last row is the mIoU: the mean of the category IoUs, as in the paper's Table 1.
    """
    table = Table(
        title=f"Amodal mask IoU (%): {result.model} ({result.evaluated_checkpoint.name}) vs. the visible mask"
    )
    table.add_column("category")
    for split in result.evaluations:
        table.add_column(f"{split}\n{result.model}", justify="right")
        table.add_column(f"{split}\nvisible mask", justify="right")
    for name in result.category_names:
        cells = []
        for evaluation in result.evaluations.values():
            cells += [
                _percent(evaluation.model.per_category.get(name)),
                _percent(evaluation.visible_baseline.per_category.get(name)),
            ]
        table.add_row(name, *cells)
    table.add_section()
    means = []
    for evaluation in result.evaluations.values():
        means += [_percent(evaluation.model.miou), _percent(evaluation.visible_baseline.miou)]
    table.add_row("mIoU", *means, style="bold")
    return table


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"
