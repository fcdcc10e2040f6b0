"""`a3d evaluate`: Evaluate amodal predictions: COCO AP, mIoU, occluded AP (paper 4.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from a3d_cli.common import announce, console, fail, user_errors
from a3d_cli.options import DeviceOption
from a3d_cli.progress import ProgressDisplay
from a3d_core.data.catalog import resolve_dataset
from a3d_core.data.category_map import CategoryMap
from a3d_core.errors import InputError
from a3d_core.eval.coco import STAT_NAMES
from a3d_core.eval.evaluate import KINDS, EvaluationResult, EvaluationSettings, evaluate_dataset
from a3d_core.eval.plots import write_plots
from a3d_core.eval.report import write_report
from a3d_core.pipelines.completers import CompleterRequest, build_completer
from a3d_core.pipelines.evaluate import evaluate_checkpoint, evaluate_completion
from a3d_core.pipelines.predict import PredictSettings
from a3d_core.progress import count_callback, step_callback
from a3d_core.run_folders import FINE_TUNED, dataset_name, newest_run, runs_root

KIND_CHOICES = (*KINDS, "all")
PROTOCOLS = ("detection", "completion")


def _percent(value: float) -> str:
    return "-" if value < 0 else f"{100 * value:.1f}"


def _stats_table(result: EvaluationResult) -> Table:
    table = Table(title=f"COCO mask AP/AR on {result.dataset}/{result.split} (%)")
    table.add_column("stat")
    for kind in result.kinds:
        table.add_column(kind, justify="right")
    for name in STAT_NAMES:
        table.add_row(name, *(_percent(kind_result.stats[name]) for kind_result in result.kinds.values()))
    return table


def _category_table(result: EvaluationResult) -> Table:
    table = Table(title="Per category (%)")
    table.add_column("category")
    kinds = list(result.kinds)
    for kind in kinds:
        table.add_column(f"{kind} AP", justify="right")
        table.add_column(f"{kind} AP50", justify="right")
    if result.segments is not None:
        table.add_column("IoU", justify="right")
        table.add_column("instances", justify="right")
    rows = {row.name: row for row in (result.segments.per_category if result.segments else [])}
    for name in result.category_names:
        cells = []
        for kind in kinds:
            stats = result.kinds[kind].per_category[name]
            cells += [_percent(stats["AP"]), _percent(stats["AP50"])]
        if result.segments is not None:
            row = rows.get(name)
            cells += [_percent(row.iou) if row else "-", str(row.count) if row else "0"]
        table.add_row(name, *cells)
    if result.segments is not None:
        table.add_section()
        table.add_row("mean", *([""] * (2 * len(kinds))), _percent(result.segments.category_mean), "")
    return table


def _miou_table(result: EvaluationResult) -> Table:
    segments = result.segments
    table = Table(title="Instance IoU (best-matching prediction per instance, %)")
    for column in ("mIoU", "instances", "mIoU_occ", "occluded instances"):
        table.add_column(column, justify="right")
    table.add_row(
        _percent(segments.miou), str(segments.num_instances), _percent(segments.miou_occ), str(segments.num_occluded)
    )
    return table


def newest_checkpoint_for(dataset: str) -> Path:
    """The newest fine-tuned run for ``dataset`` (by its folder name) under the runs root, announced."""
    name = dataset_name(dataset)
    run = newest_run(FINE_TUNED, dataset=name)
    if run is None:
        raise InputError(
            f"no fine-tuned run for {name} under {runs_root()}: train one with `a3d finetune --dataset {dataset}`, "
            "or give --checkpoint FILE or --predictions FILE"
        )
    announce(
        f"checkpoint: {run.checkpoint}, the newest fine-tuned run for {name} under {runs_root()} (--checkpoint FILE to "
        "choose)"
    )
    return run.checkpoint


@user_errors
def evaluate(
    dataset: str = typer.Option(
        ..., "--dataset", help="A dataset folder written by `a3d prepare`, or its name under the data root."
    ),
    predictions: Optional[Path] = typer.Option(
        None,
        "--predictions",
        help="COCO results JSON (as `a3d predict` writes): image_id, category_id, score, segmentation (amodal RLE), "
        "optional visible_mask.",
    ),
    checkpoint: Optional[Path] = typer.Option(
        None,
        "--checkpoint",
        help="A fine-tuned checkpoint (`a3d finetune`): predict the split with it, then evaluate. With --protocol "
        "completion also a pretraining one (`a3d pretrain`). Default (without --predictions): the newest fine-tuned "
        "run for this dataset under $A3D_RUNS_ROOT or ./runs.",
    ),
    protocol: str = typer.Option(
        "detection",
        "--protocol",
        help="detection: score --predictions or the --checkpoint's detections. completion: complete the ground-truth "
        "visible masks (ground-truth boxes as detections, C2F-Seg's setting) with --completer.",
    ),
    completer: str = typer.Option(
        "checkpoint",
        "--completer",
        help="With --protocol completion: checkpoint (stage 2 of --checkpoint), visible (the visible mask as amodal "
        "mask: the baseline) or shapedict (K-means atoms of the dataset's train masks retrieved by the visible mask: "
        "the 2D shape-prior baseline).",
    ),
    category_map: Optional[Path] = typer.Option(
        None,
        "--category-map",
        help='With --protocol completion: JSON {"dataset class": "checkpoint category"} over the shipped map.',
    ),
    shipped_category_map: bool = typer.Option(
        True,
        "--default-category-map/--no-category-map",
        help="With --protocol completion: match the dataset's classes to the checkpoint's through the shipped map "
        "(couch -> sofa, ...), or by name only.",
    ),
    predictions_out: Optional[Path] = typer.Option(
        None,
        "--predictions-out",
        help="With --checkpoint or --protocol completion: keep the predictions (COCO results; overlays for detection) "
        "in this folder.",
    ),
    score_threshold: float = typer.Option(
        0.05, "--score-threshold", min=0.0, max=1.0, help="With --checkpoint: leave out detections scoring below this."
    ),
    split: str = typer.Option("val", "--split", help="Which split of the dataset to evaluate against."),
    kind: str = typer.Option("all", "--kind", help="amodal, visible, occluded (occlusion rate >= 0.15) or all."),
    json_out: Optional[Path] = typer.Option(
        None, "--json", help="Write the full report (all stats, per category, mIoU) to this JSON file."
    ),
    plots: Optional[Path] = typer.Option(
        None, "--plots", help="Write precision-recall curves and an IoU histogram (PNG) into this folder."
    ),
    data_root: Optional[Path] = typer.Option(
        None, "--data-root", help="Where named datasets live (default $A3D_DATA_ROOT or ./data)."
    ),
    device: str = DeviceOption,
) -> None:
    """Evaluate amodal predictions: COCO AP, mIoU, occluded AP (paper 4.2).

    AP and AR are pycocotools COCOeval's 12 mask stats, computed in torch with identical
    numbers: against amodal masks (amodal), visible masks (visible, when predictions carry
    visible_mask), and amodal masks of instances occluded by at least 15% (occluded). mIoU
    averages each instance's IoU with its best-matching prediction.

    --protocol completion scores amodal completion alone: every ground-truth instance's box and
    visible mask go to the completer, and its amodal masks are scored (mIoU, mIoU_occ, AP).
    """
    if protocol not in PROTOCOLS:
        fail(f"--protocol {protocol}: expected one of {', '.join(PROTOCOLS)}")
    if kind not in KIND_CHOICES:
        fail(f"--kind {kind}: expected one of {', '.join(KIND_CHOICES)}")
    settings = EvaluationSettings(
        kinds=KINDS if kind == "all" else (kind,), require_visible=kind == "visible", device=device
    )
    if protocol == "completion":
        if predictions is not None:
            fail("--protocol completion completes the ground-truth visible masks itself: leave out --predictions")
        result = _completion(
            dataset,
            split,
            completer,
            checkpoint,
            category_map,
            shipped_category_map,
            predictions_out,
            settings,
            data_root,
            device,
        )
        _print_result(
            result,
            json_out,
            plots,
            f"{completer} completer" + (f" ({checkpoint})" if completer == "checkpoint" else ""),
        )
        return
    if predictions is not None and checkpoint is not None:
        fail("give either --predictions FILE (a COCO results JSON) or --checkpoint FILE (a fine-tuned model), not both")
    if predictions is None and checkpoint is None:
        checkpoint = newest_checkpoint_for(dataset)
    with ProgressDisplay(console) as display:
        if checkpoint is not None:
            predict_settings = PredictSettings(
                checkpoint=checkpoint,
                score_threshold=score_threshold,
                device=device,
                masks=False,
                overlays=predictions_out is not None,
            )
            result = evaluate_checkpoint(
                dataset, split, predict_settings, settings, predictions_out, data_root, progress=display
            ).evaluation
        else:
            result = evaluate_dataset(
                dataset, predictions, split, settings, data_root, on_step=step_callback(display, "evaluate")
            )
    _print_result(result, json_out, plots, str(predictions or checkpoint))


def _completion(
    dataset: str,
    split: str,
    completer: str,
    checkpoint: Optional[Path],
    category_map: Optional[Path],
    shipped_category_map: bool,
    predictions_out: Optional[Path],
    settings: EvaluationSettings,
    data_root: Optional[Path],
    device: str,
) -> EvaluationResult:
    """The completion protocol, its progress over the split's images reported."""
    request = CompleterRequest(
        checkpoint=checkpoint,
        category_map=CategoryMap.load(category_map, shipped_category_map),
        device=device,
        dataset=resolve_dataset(dataset, data_root),
    )
    built = build_completer(completer, request)
    predictions_file = predictions_out / "predictions.json" if predictions_out is not None else None
    if predictions_file is not None:
        predictions_out.mkdir(parents=True, exist_ok=True)
    with ProgressDisplay(console) as display:
        return evaluate_completion(
            dataset,
            built,
            split,
            settings,
            data_root,
            predictions_file,
            progress=count_callback(display, f"complete {split} with {built.name}", "image"),
        )


def _print_result(result: EvaluationResult, json_out: Optional[Path], plots: Optional[Path], source: str) -> None:
    console.print(_stats_table(result))
    console.print(_category_table(result))
    if result.segments is not None:
        console.print(_miou_table(result))
    for skipped_kind, reason in result.skipped.items():
        console.print(f"[yellow]skipped {skipped_kind}:[/] {reason}")
    if json_out is not None:
        console.print(f"report: {write_report(result, json_out, source)}")
    if plots is not None:
        for path in write_plots(result, plots):
            console.print(f"plot: {path}")
