"""``a3d evaluate``: score amodal predictions on a dataset split (paper 4.2).

:func:`evaluate` is the command: one :class:`EvaluateRequest` in, one :class:`EvaluateResult`
out, by one of three modes: a predictions file scored as it is; a fine-tuned checkpoint's
detections (:func:`evaluate_checkpoint`); or, with the ``completion`` protocol, a completer on
the ground truth (:func:`evaluate_completion`). The command line only formats the result.

:func:`evaluate_checkpoint` predicts the split, then scores it: exactly ``a3d predict --dataset D
--split S`` and ``a3d evaluate --dataset D --split S --predictions predictions.json``, which
``a3d evaluate --checkpoint`` and ``a3d demo`` run together. :func:`evaluate_completion`
(``a3d evaluate --protocol completion``) runs a completer (:mod:`a3d_core.pipelines.completers`: a
checkpoint's stage 2 alone, or a baseline) on the ground-truth boxes and visible masks, to
measure the completion without detection errors.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from a3d_core.boxes import mask_boxes_or_zero
from a3d_core.data.canonical import read_dataset
from a3d_core.data.catalog import resolve_dataset
from a3d_core.data.category_map import CategoryMap
from a3d_core.data.detection import AmodalDetectionDataset
from a3d_core.errors import InputError
from a3d_core.eval.evaluate import KINDS, EvaluationResult, EvaluationSettings, evaluate_dataset, evaluate_predictions
from a3d_core.eval.predictions import detections_to_results
from a3d_core.io.atomic import atomic_write_json
from a3d_core.pipelines.completers import Completer, CompleterRequest, HandlingCounts, build_completer
from a3d_core.pipelines.predict import PredictResult, PredictSettings, predict_dataset
from a3d_core.progress import SILENT, ProgressReporter, count_callback, step_callback
from a3d_core.train.run_folders import FINE_TUNED, newest_checkpoint

PROTOCOLS = ("detection", "completion")
"""``detection``: score detections (a predictions file, or a checkpoint's); ``completion``: score a
completer on the ground-truth boxes and visible masks (C2F-Seg's setting)."""
MASKS = (*KINDS, "all")
"""The masks scored against: one of :data:`~a3d_core.eval.evaluate.KINDS`, or all of them."""


@dataclass(frozen=True)
class EvaluateRequest:
    """What :func:`evaluate` scores, and against which masks.

    Attributes:
        dataset: a prepared dataset: its folder, or its name under ``data_root``.
        split: the split scored against.
        protocol: one of :data:`PROTOCOLS`.
        predictions: ``detection``: a COCO results file (as ``a3d predict`` writes) to score.
        checkpoint: ``detection``: a fine-tuned checkpoint whose detections are scored; with neither
            this nor ``predictions``, the newest fine-tuned run for ``dataset`` under ``runs_root``.
            ``completion``: the checkpoint (fine-tuned or pretraining) of the ``checkpoint`` completer.
        completer: ``completion``: a name in :data:`~a3d_core.pipelines.completers.COMPLETERS`.
        category_map: ``completion``: a JSON file ``{dataset class: checkpoint category}`` over the
            shipped map; ``shipped_category_map``: start from the shipped map (else match by name).
        unknown_category: ``completion``: how a category without a decoder is completed
            (:data:`~a3d_core.pipelines.completers.UNKNOWN_CATEGORY`).
        predictions_out: keep the predictions in this folder (COCO results; with a checkpoint's
            detections also overlays); ``None``: they are not kept.
        score_threshold: with a checkpoint's detections: leave out those scoring below this.
        masks: one of :data:`MASKS`.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        data_root: where named datasets live (``None``: ``$A3D_DATA_ROOT``, else ``./data``).
        runs_root: where the newest run is looked up (``None``: ``$A3D_RUNS_ROOT``, else ``./runs``).
    """

    dataset: str | os.PathLike
    split: str = "val"
    protocol: str = "detection"
    predictions: Path | None = None
    checkpoint: Path | None = None
    completer: str = "checkpoint"
    category_map: Path | None = None
    shipped_category_map: bool = True
    unknown_category: str = "predict"
    predictions_out: Path | None = None
    score_threshold: float = 0.05
    masks: str = "all"
    device: str = "auto"
    data_root: Path | None = None
    runs_root: Path | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.masks not in MASKS:
            raise ValueError(f"masks must be one of {', '.join(MASKS)}, got {self.masks!r}")


@dataclass(frozen=True)
class EvaluateResult:
    """The scores of an :class:`EvaluateRequest`, and what was scored (``source``, as the report names
    it: the predictions file, the checkpoint, or the completer); with the ``completion`` protocol,
    ``handling`` counts how the instances were completed."""

    evaluation: EvaluationResult
    source: str
    handling: HandlingCounts | None = None


def evaluate(request: EvaluateRequest, progress: ProgressReporter = SILENT) -> EvaluateResult:
    """``a3d evaluate``: score ``request`` by its mode (see the module docstring).

    ``progress`` receives ``evaluate: <step>`` (a predictions file), ``predict <split>`` and
    ``score: <step>`` (a checkpoint), or ``complete <split> with <completer>`` (completion).

    Raises:
        InputError: for options that do not go together, a missing file or run, or bad input.
    """
    settings = EvaluationSettings(
        kinds=KINDS if request.masks == "all" else (request.masks,),
        require_visible=request.masks == "visible",
        device=request.device,
    )
    if request.protocol == "completion":
        return _evaluate_completer(request, settings, progress)
    if request.predictions is not None and request.checkpoint is not None:
        raise InputError(
            "give either --predictions FILE (a COCO results JSON) or --checkpoint FILE (a fine-tuned model), not both"
        )
    if request.predictions is not None:
        evaluation = evaluate_dataset(
            request.dataset,
            request.predictions,
            request.split,
            settings,
            request.data_root,
            on_step=step_callback(progress, "evaluate"),
        )
        progress.end()
        return EvaluateResult(evaluation, str(request.predictions))
    checkpoint = request.checkpoint or newest_checkpoint(
        FINE_TUNED, request.runs_root, request.dataset, instead="--checkpoint FILE or --predictions FILE"
    )
    predict_settings = PredictSettings(
        checkpoint=checkpoint,
        score_threshold=request.score_threshold,
        device=request.device,
        masks=False,
        overlays=request.predictions_out is not None,
    )
    evaluation = evaluate_checkpoint(
        request.dataset,
        request.split,
        predict_settings,
        settings,
        request.predictions_out,
        request.data_root,
        progress=progress,
    ).evaluation
    return EvaluateResult(evaluation, str(checkpoint))


def _evaluate_completer(
    request: EvaluateRequest, settings: EvaluationSettings, progress: ProgressReporter
) -> EvaluateResult:
    """The ``completion`` protocol: build the completer, run it on the split's ground truth, score it."""
    if request.predictions is not None:
        raise InputError(
            "--protocol completion completes the ground-truth visible masks itself: leave out --predictions"
        )
    completer = build_completer(
        request.completer,
        CompleterRequest(
            checkpoint=request.checkpoint,
            category_map=CategoryMap.load(request.category_map, request.shipped_category_map),
            unknown_category=request.unknown_category,
            device=request.device,
            dataset=resolve_dataset(request.dataset, request.data_root),
        ),
    )
    predictions_file = None
    if request.predictions_out is not None:
        request.predictions_out.mkdir(parents=True, exist_ok=True)
        predictions_file = request.predictions_out / "predictions.json"
    handling = HandlingCounts()
    evaluation = evaluate_completion(
        request.dataset,
        completer,
        request.split,
        settings,
        request.data_root,
        predictions_file,
        progress=count_callback(progress, f"complete {request.split} with {completer.name}", "image"),
        counts=handling,
    )
    progress.end()
    source = f"{request.completer} completer" + (
        f" ({request.checkpoint})" if request.completer == "checkpoint" else ""
    )
    return EvaluateResult(evaluation, source, handling)


@dataclass(frozen=True)
class CheckpointEvaluation:
    """The predictions written (``prediction.out`` is gone when no folder was asked for) and their scores."""

    prediction: PredictResult
    evaluation: EvaluationResult


def evaluate_checkpoint(
    dataset: str | os.PathLike,
    split: str = "val",
    predict_settings: PredictSettings | None = None,
    evaluation_settings: EvaluationSettings | None = None,
    predictions_dir: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    progress: ProgressReporter = SILENT,
) -> CheckpointEvaluation:
    """Predict split ``split`` of ``dataset`` with ``predict_settings.checkpoint`` and evaluate it.

    ``predictions_dir`` keeps the predictions (COCO results, overlays, masks); without it they
    are written to a temporary folder that is removed afterwards. Evaluation should see every
    detection, so ``predict_settings.score_threshold`` is best kept low (COCO AP ranks by score).
    ``progress`` receives the phases ``predict <split>`` (images) and ``score: <step>``.
    """
    predict_settings = predict_settings or PredictSettings(score_threshold=0.05, masks=False, overlays=False)
    if predictions_dir is not None:
        return _run(dataset, split, Path(predictions_dir), predict_settings, evaluation_settings, data_root, progress)
    with tempfile.TemporaryDirectory(prefix="a3d-evaluate-") as folder:
        return _run(dataset, split, Path(folder), predict_settings, evaluation_settings, data_root, progress)


def _run(
    dataset: str | os.PathLike,
    split: str,
    folder: Path,
    predict_settings: PredictSettings,
    evaluation_settings: EvaluationSettings | None,
    data_root: str | os.PathLike | None,
    progress: ProgressReporter,
) -> CheckpointEvaluation:
    prediction = predict_dataset(
        dataset, split, folder, predict_settings, count_callback(progress, f"predict {split}", "image"), data_root
    )
    evaluation = evaluate_dataset(
        dataset,
        prediction.predictions_file,
        split,
        evaluation_settings,
        data_root,
        on_step=step_callback(progress, "score"),
    )
    progress.end()
    return CheckpointEvaluation(prediction, evaluation)


def completion_results(
    image_id: int,
    amodal_masks: torch.Tensor,
    visible_masks: torch.Tensor,
    labels: torch.Tensor,
    scores: torch.Tensor,
    category_id_of_label: Sequence[int],
) -> list[dict[str, Any]]:
    """One image's completed instances -> COCO results (:func:`~a3d_core.eval.predictions.detections_to_results`)
    whose ``bbox`` is the box of the completed amodal mask and ``visible_mask`` the given one.

    Args:
        amodal_masks, visible_masks: ``(K, H, W)`` probabilities or {0, 1}.
        labels: ``(K,)`` in ``1..C``; ``category_id_of_label[l - 1]`` is label ``l``'s category id.
        scores: ``(K,)``.
    """
    detections = {
        "boxes": mask_boxes_or_zero(amodal_masks),
        "labels": labels,
        "scores": scores,
        "amodal_masks": amodal_masks,
        "visible_masks": visible_masks.float(),
    }
    return detections_to_results(detections, image_id, category_id_of_label)


def complete_ground_truth(
    completer: Completer,
    dataset: AmodalDetectionDataset,
    batch_size: int = 4,
    on_image: Callable[[torch.Tensor, dict[str, Any], dict[str, torch.Tensor]], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    counts: HandlingCounts | None = None,
) -> list[dict[str, Any]]:
    """Complete the ground-truth instances of every image from their amodal boxes and VISIBLE
    masks (C2F-Seg's setting): what the completion does without detection errors.

    Args:
        completer: e.g. a checkpoint's stage 2 or the visible-mask baseline (:mod:`a3d_core.pipelines.completers`).
        dataset: the split's images and targets; its category ids and names label the instances.
        on_image: called per image with ``(image (3, H, W), target, completion)``, e.g. to draw overlays.
        progress: ``progress(done, total)`` after each batch of images.
        counts: adds how each instance was completed (:class:`~a3d_core.pipelines.completers.HandlingCounts`).

    Returns:
        COCO results (score 1, :func:`completion_results`), one per ground-truth instance.
    """
    category_ids = list(dataset.categories.category_ids)
    names = list(dataset.categories.names)
    completer.check_categories(names)
    results: list[dict[str, Any]] = []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[index] for index in range(start, min(start + batch_size, len(dataset)))]
        images = [image for image, _ in items]
        targets = [target for _, target in items]
        completions = completer.complete(
            images,
            [t["boxes"] for t in targets],
            [t["masks"].float() for t in targets],
            [[names[label - 1] for label in t["labels"].tolist()] for t in targets],
        )
        for image, target, completion in zip(images, targets, completions):
            amodal = completion["amodal_masks"].cpu()
            if counts is not None:
                categories = [names[label - 1] for label in target["labels"].tolist()]
                counts.add(completer, categories, completion["shape_labels"].cpu())
            results += completion_results(
                target["image_id"],
                amodal,
                target["masks"],
                target["labels"],
                torch.ones(len(target["labels"])),
                category_ids,
            )
            if on_image is not None:
                on_image(image, target, completion)
        if progress is not None:
            progress(min(start + batch_size, len(dataset)), len(dataset))
    return results


def evaluate_completion(
    dataset: str | os.PathLike,
    completer: Completer,
    split: str = "val",
    evaluation_settings: EvaluationSettings | None = None,
    data_root: str | os.PathLike | None = None,
    predictions_file: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_image: Callable[[torch.Tensor, dict[str, Any], dict[str, torch.Tensor]], None] | None = None,
    counts: HandlingCounts | None = None,
) -> EvaluationResult:
    """``a3d evaluate --protocol completion``: score :func:`complete_ground_truth` on split
    ``split`` (amodal AP with the ground-truth instances as detections, mIoU, mIoU_occ).

    ``predictions_file`` keeps the completed masks (COCO results, for ``a3d evaluate --predictions``);
    ``on_image`` sees each image's completion (:func:`complete_ground_truth`), e.g. to draw it;
    ``counts`` adds how each instance was completed.
    """
    folder = read_dataset(resolve_dataset(dataset, data_root))
    images = AmodalDetectionDataset(folder, split)
    results = complete_ground_truth(completer, images, on_image=on_image, progress=progress, counts=counts)
    if predictions_file is not None:
        atomic_write_json(Path(predictions_file), results)
    return evaluate_predictions(images.split, results, evaluation_settings, folder.name, split)
