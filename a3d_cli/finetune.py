"""`a3d finetune`: Fine-tune both stages on an amodal dataset, transferring categories by name (paper 3.7)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from a3d_cli.common import announce, console, default_run_folder, fail, user_errors
from a3d_cli.options import DataRootOption, DeviceOption, Kind, RunsRootOption, SeedOption, choices, model_option
from a3d_cli.progress import ProgressDisplay
from a3d_core.errors import InputError
from a3d_core.model.asm import ASMSettings
from a3d_core.model.stage1 import BACKBONES, NORMS, SMALL_ANCHOR_SIZES
from a3d_core.train.checkpoint import LAST_CHECKPOINT
from a3d_core.train.loop import AMP_MODES, TrainSettings
from a3d_core.train.run_folders import PRETRAINING, dataset_name, newest_run, read_run, runs_root as resolve_runs_root

if TYPE_CHECKING:
    from a3d_core.train.finetune import FinetuneResult

Backbone = choices("Backbone", BACKBONES)
Norm = choices("Norm", NORMS)
AmpMode = choices("AmpMode", AMP_MODES)


@user_errors
def finetune(
    dataset: str = typer.Option(
        ...,
        "--dataset",
        help="Dataset name under the data root (d2sa, kins, kins2020, cocoa-cls, cocoa, scenes) or a canonical dataset "
        "folder.",
    ),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        help="Run folder: last.pt, best.pt (best val AP), metrics.jsonl, results.json. Default: <dataset name> under "
        "the runs root, or <name>-2, -3, ... when it holds a run (with --resume: the latest).",
    ),
    runs_root: Optional[Path] = RunsRootOption,
    init: Optional[Path] = typer.Option(
        None,
        "--init",
        help="Stage-2 checkpoint of `a3d pretrain` to start from. Default: the newest pretraining run under the runs "
        "root, when there is one (with --resume: the one the run began with).",
    ),
    no_init: bool = typer.Option(
        False, "--no-init", help="Train stage 2 from scratch (paper Table 3, N), even when a pretraining run exists."
    ),
    category_map: Optional[Path] = typer.Option(
        None,
        "--category-map",
        help='JSON {"dataset class": "pretrained category" or null} over the shipped map (couch -> sofa, van -> car, '
        '...; docs/twostage.md), e.g. {"bus": "car"}.',
    ),
    shipped_category_map: bool = typer.Option(
        True,
        "--default-category-map/--no-category-map",
        help="Use the shipped map from the real datasets' class names to the 13 ShapeNet categories; "
        "--no-category-map: same names (and --category-map) only.",
    ),
    backbone: Backbone = typer.Option(
        "mobilenet_v3-fpn", "--backbone", help="Stage-1 backbone (resnet50-fpn is the paper's)."
    ),
    backbone_weights: Optional[Path] = typer.Option(
        None, "--backbone-weights", help="Local torchvision ImageNet checkpoint of the backbone (never downloaded)."
    ),
    detector_weights: Optional[Path] = typer.Option(
        None,
        "--detector-weights",
        help="Local torchvision Mask R-CNN checkpoint of the same backbone (never downloaded).",
    ),
    stage1_norm: Norm = typer.Option(
        "group",
        "--stage1-norm",
        help="Normalisation of a stage-1 backbone trained from scratch: group (GroupNorm, for small batches) or batch "
        "(torchvision's). Pretrained backbones keep frozen BatchNorm.",
    ),
    min_size: int = typer.Option(
        128, "--min-size", min=16, help="Stage 1 resizes images to this short side (paper: 800)."
    ),
    max_size: int = typer.Option(
        256, "--max-size", min=16, help="... unless the long side would exceed this (paper: 1333)."
    ),
    anchor_sizes: str = typer.Option(
        ",".join(map(str, SMALL_ANCHOR_SIZES)),
        "--anchor-sizes",
        help="Five increasing anchor sides in pixels of the resized image (paper: 32,64,128,256,512 at 800 pixels).",
    ),
    model: Kind = model_option("Without --init only (with --init: the checkpoint's)."),
    image_size: int = typer.Option(
        64, "--image-size", min=8, help="Stage-2 crop side S without --init (with --init: the checkpoint's)."
    ),
    template_level: int = typer.Option(
        2, "--template-level", min=0, max=6, help="Ico-sphere level without --init (3 = 642 vertices, the paper's)."
    ),
    crop_scale: Optional[float] = typer.Option(
        None,
        "--crop-scale",
        min=1.0,
        max=4.0,
        help="Stage 2 sees each instance at the square around its amodal box, this many times its longer side. "
        "Default: the framing the --init checkpoint was pretrained with, else 1.1.",
    ),
    train_on_detections: bool = typer.Option(
        False, "--train-on-detections", help="Also train stage 2 on stage-1 detections matched to the ground truth."
    ),
    epochs: int = typer.Option(
        10, "--epochs", min=1, help="Passes over the training split (ignored when --steps is given)."
    ),
    steps: Optional[int] = typer.Option(
        None, "--steps", min=1, help="Train for this many optimizer steps instead of --epochs."
    ),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Images per step, over all processes."),
    lr: float = typer.Option(1e-4, "--lr", help="Adam learning rate (paper: 1e-4)."),
    stage1_lr: Optional[float] = typer.Option(
        None,
        "--stage1-lr",
        help="Adam learning rate of stage 1 (default: --lr). Raise it (e.g. 1e-3) when stage 1 starts from scratch.",
    ),
    val_every: Optional[int] = typer.Option(
        None, "--val-every", min=1, help="Validate (AP, mIoU) and checkpoint every N steps. Default: once per epoch."
    ),
    train_split: str = typer.Option("train", "--train-split", help="The split to train on."),
    val_split: str = typer.Option(
        "val", "--val-split", help="The split to validate on (none: no validation, last.pt only)."
    ),
    val_images: int = typer.Option(50, "--val-images", min=1, help="Validate on the first N images of the val split."),
    checkpoint_every: int = typer.Option(
        500, "--checkpoint-every", min=1, help="Write last.pt every N steps (also after each validation)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from last.pt."),
    amp: AmpMode = typer.Option(
        "bf16", "--amp", help="Mixed precision on CUDA: bf16, fp16 or off. CPU runs in float32."
    ),
    data_root: Optional[Path] = DataRootOption,
    workers: int = typer.Option(0, "--workers", min=0, help="DataLoader worker processes."),
    device: str = DeviceOption,
    seed: int = SeedOption,
) -> None:
    """Fine-tune both stages on an amodal dataset, transferring categories by name (paper 3.7).

    Stage 1 (Mask R-CNN) learns amodal boxes and visible masks; stage 2 completes each instance through its 3D shape prior. With --init, categories present in both the pretraining and this dataset reuse the pretrained shape decoders; the others start fresh. Validates amodal AP and mIoU on the val split; runs under torchrun for data parallelism.
    """  # noqa: E501 (typer's help keeps the line breaks of a paragraph: one line each, the terminal wraps them)
    # the fine-tuning stack (the two-stage network, the predict pipeline) loads only when the command runs
    from a3d_core.train.finetune import BEST_METRIC, FinetuneSettings, finetune as run_finetune, small_stage1_settings

    if init is not None and no_init:
        fail("--init FILE and --no-init exclude each other")
    if out is None:
        out = default_run_folder(dataset_name(dataset), resume, runs_root)
    if init is None and not no_init:
        init = default_init(out, resume, runs_root)
    try:
        settings = FinetuneSettings(
            dataset=dataset,
            out=out,
            init=init,
            category_map=category_map,
            shipped_category_map=shipped_category_map,
            stage1=small_stage1_settings(
                backbone.value, min_size, max_size, parse_anchor_sizes(anchor_sizes), stage1_norm.value
            ),
            backbone_weights=backbone_weights,
            detector_weights=detector_weights,
            stage1_lr=stage1_lr,
            stage2_kind=model.value,
            stage2=ASMSettings(image_size=image_size, template_level=template_level),
            crop_scale=crop_scale,
            train_on_detections=train_on_detections,
            train=TrainSettings(
                lr=lr,
                batch_size=batch_size,
                epochs=None if steps is not None else epochs,
                steps=steps,
                seed=seed,
                workers=workers,
                val_every=val_every,
                checkpoint_every=checkpoint_every,
                amp=amp.value,
                best_metric=BEST_METRIC,
            ),
            train_split=train_split,
            val_split=val_split,
            val_images=val_images,
            device=device,
            resume=resume,
            data_root=data_root,
        )
    except ValueError as error:
        raise InputError(str(error)) from None
    with ProgressDisplay(console) as display:
        result = run_finetune(settings, progress=display)
    if not result.main_process:
        return
    console.print(transfer_table(result))
    for line in result.weight_reports:
        console.print(f"stage-1 weights: {line}", highlight=False)
    if result.training.validation:
        console.print(validation_table(result))
    training = result.training
    console.print(
        f"{training.steps} steps ({training.steps - training.start_step} in this run, {training.seconds:.0f} s); "
        f"checkpoints in {result.out} (best.pt = best val AP); results in {result.out / 'results.json'}",
        highlight=False,
    )


def default_init(out: Path, resume: bool, runs_root: Optional[Path] = None) -> Optional[Path]:
    """Stage 2's starting point without --init or --no-init, announced: on resume the one the run in
    ``out`` began with, else the newest pretraining run under the runs root (``--runs-root``; none:
    from scratch)."""
    if resume:
        run = read_run(out / LAST_CHECKPOINT)
        recorded = run.settings.get("init") if run is not None else None
        if run is not None:
            announce(f"stage 2: {recorded or 'from scratch'}, as the run in {out} began")
        return Path(recorded) if recorded else None
    run = newest_run(PRETRAINING, runs_root)
    if run is None:
        announce(
            f"stage 2: from scratch, no pretraining run under {resolve_runs_root(runs_root)} (`a3d pretrain` makes "
            "one; --init FILE to choose one)"
        )
        return None
    announce(
        f"stage 2 starts from {run.checkpoint}, the newest pretraining run under {resolve_runs_root(runs_root)} "
        "(--init FILE to choose another, --no-init to train stage 2 from scratch)"
    )
    return run.checkpoint


def parse_anchor_sizes(text: str) -> tuple[int, ...]:
    """``"16,32,64,128,256"`` -> ``(16, 32, 64, 128, 256)``; anything else raises InputError."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InputError(
            f"--anchor-sizes: expected comma-separated whole numbers such as 16,32,64,128,256, got {text!r}"
        ) from None


def transfer_table(result: FinetuneResult) -> Table:
    """Which categories reuse a pretrained shape decoder (paper 3.7) and which start fresh."""
    source = result.transfer.source
    table = Table(
        title=f"Categories of {result.dataset}: initialised from {source}"
        if source
        else f"Categories of {result.dataset}: stage 2 from scratch"
    )
    table.add_column("category")
    table.add_column("stage-2 initialisation")
    for name in result.category_names:
        pretrained = result.transfer.transferred.get(name)
        if pretrained is None:
            table.add_row(name, "fresh")
        else:
            table.add_row(
                name, f"pretrained '{pretrained}'" + (f" ({pretrained} <- {name})" if pretrained != name else "")
            )
    return table


def validation_table(result: FinetuneResult) -> Table:
    """Amodal AP, AP50 and mIoU (%) at each validation."""
    table = Table(title="Validation (amodal masks, %)")
    for column in ("step", "AP", "AP50", "AP75", "mIoU"):
        table.add_column(column, justify="right")
    for record in result.training.validation:
        best = " *" if record["step"] == result.training.best_step else ""
        table.add_row(
            f"{int(record['step'])}{best}", *(f"{100 * record[key]:.1f}" for key in ("ap", "ap50", "ap75", "miou"))
        )
    return table
