"""`a3d evaluate`: Evaluate amodal predictions: COCO AP, mIoU, occluded AP (paper 4.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from a3d_cli.common import console, default_checkpoint, user_errors
from a3d_cli.options import (
    DataRootOption,
    DeviceOption,
    RunsRootOption,
    UnknownCategory,
    UnknownCategoryOption,
    choices,
    dataset_option,
    given_once,
)
from a3d_cli.progress import ProgressDisplay
from a3d_core.eval.coco import STAT_NAMES
from a3d_core.eval.evaluate import EvaluationResult
from a3d_core.eval.plots import write_plots
from a3d_core.eval.report import write_report
from a3d_core.pipelines import evaluate as pipeline
from a3d_core.pipelines.completers import COMPLETERS
from a3d_core.train.run_folders import FINE_TUNED

Protocol = choices("Protocol", pipeline.PROTOCOLS)
Completer = choices("Completer", COMPLETERS)
Masks = choices("Masks", pipeline.MASKS)


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


def _order_table(result: EvaluationResult) -> Table:
    order = result.order
    table = Table(title=f"Pairwise occlusion order against {order.source} (Deocclusion's measure)")
    for column in ("accuracy %", "of all pairs %", "pairs", "matched", "correct", "no relation"):
        table.add_column(column, justify="right")
    table.add_row(
        _percent(order.accuracy),
        _percent(order.accuracy_all_pairs),
        str(order.pairs),
        str(order.matched),
        str(order.correct),
        str(order.unordered),
    )
    return table


@user_errors
def evaluate(
    dataset: str = dataset_option(...),
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
        "run for this dataset under the runs root.",
    ),
    protocol: Protocol = typer.Option(
        "detection",
        "--protocol",
        help="detection: score --predictions or the --checkpoint's detections. completion: complete the ground-truth "
        "visible masks (ground-truth boxes as detections, C2F-Seg's setting) with --completer.",
    ),
    completer: Completer = typer.Option(
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
    unknown_category: UnknownCategory = UnknownCategoryOption,
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
    masks: Optional[Masks] = typer.Option(
        None,
        "--masks",
        help="The masks to score against: amodal, visible, occluded (the amodal masks of instances occluded by at "
        "least 15%) or all (the default).",
    ),
    kind: Optional[Masks] = typer.Option(None, "--kind", hidden=True, help="The old name of --masks."),
    json_out: Optional[Path] = typer.Option(
        None, "--json", help="Write the full report (all stats, per category, mIoU) to this JSON file."
    ),
    plots: Optional[Path] = typer.Option(
        None, "--plots", help="Write precision-recall curves and an IoU histogram (PNG) into this folder."
    ),
    data_root: Optional[Path] = DataRootOption,
    runs_root: Optional[Path] = RunsRootOption,
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
    chosen_masks = given_once(masks, kind, "--masks", "--kind")
    if protocol.value == "detection" and predictions is None and checkpoint is None:
        checkpoint = default_checkpoint(FINE_TUNED, runs_root, dataset, "--checkpoint FILE or --predictions FILE")
    request = pipeline.EvaluateRequest(
        dataset=dataset,
        split=split,
        protocol=protocol.value,
        predictions=predictions,
        checkpoint=checkpoint,
        completer=completer.value,
        category_map=category_map,
        shipped_category_map=shipped_category_map,
        unknown_category=unknown_category.value,
        predictions_out=predictions_out,
        score_threshold=score_threshold,
        masks=chosen_masks.value if chosen_masks is not None else "all",
        device=device,
        data_root=data_root,
        runs_root=runs_root,
    )
    with ProgressDisplay(console) as display:
        result = pipeline.evaluate(request, display)
    _print_result(result.evaluation, json_out, plots, result.source)
    if result.handling is not None:
        console.print(result.handling.summary(), highlight=False)


def _print_result(result: EvaluationResult, json_out: Optional[Path], plots: Optional[Path], source: str) -> None:
    console.print(_stats_table(result))
    console.print(_category_table(result))
    if result.segments is not None:
        console.print(_miou_table(result))
    if result.order is not None:
        console.print(_order_table(result))
    for skipped_kind, reason in result.skipped.items():
        console.print(f"[yellow]skipped {skipped_kind}:[/] {reason}")
    if json_out is not None:
        console.print(f"report: {write_report(result, json_out, source)}")
    if plots is not None:
        for path in write_plots(result, plots):
            console.print(f"plot: {path}")
