"""Evaluate a fine-tuned checkpoint on a dataset split.

:func:`evaluate_checkpoint` predicts the split, then scores it: exactly ``a3d predict --dataset D
--split S`` and ``a3d evaluate --dataset D --split S --predictions predictions.json``, which
``a3d evaluate --checkpoint`` and ``a3d demo`` run together. :func:`complete_ground_truth` runs
stage 2 alone on the ground-truth instances, to measure the completion without detection errors.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from a3d_core.data.detection import AmodalDetectionDataset

from a3d_core.eval.evaluate import EvaluationResult, EvaluationSettings, evaluate_dataset
from a3d_core.model.a3d import A3DNetwork
from a3d_core.predict import PredictResult, PredictSettings, detections_to_results, predict_dataset
from a3d_core.progress import SILENT, ProgressReporter, count_callback, step_callback


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


def _run(dataset: str | os.PathLike, split: str, folder: Path, predict_settings: PredictSettings,
         evaluation_settings: EvaluationSettings | None, data_root: str | os.PathLike | None,
         progress: ProgressReporter) -> CheckpointEvaluation:
    prediction = predict_dataset(dataset, split, folder, predict_settings, count_callback(progress, f"predict {split}", "image"), data_root)
    evaluation = evaluate_dataset(dataset, prediction.predictions_file, split, evaluation_settings, data_root,
                                  on_step=step_callback(progress, "score"))
    progress.end()
    return CheckpointEvaluation(prediction, evaluation)


def complete_ground_truth(
    network: A3DNetwork,
    dataset: AmodalDetectionDataset,
    batch_size: int = 4,
    on_image: Callable[[torch.Tensor, dict[str, Any], dict[str, torch.Tensor]], None] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Stage 2 alone, on the ground-truth amodal boxes, labels and visible masks of every image.

    This isolates what the completion adds (no detection errors): the same instances scored with
    their completed amodal masks and with their visible masks as amodal masks.

    Args:
        network: an eval-mode two-stage network (only :meth:`~a3d_core.model.a3d.A3DNetwork.complete` runs).
        dataset: the split's images and targets; its category ids label the results.
        on_image: called per image with ``(image (3, H, W), target, completion)``, e.g. to draw overlays.

    Returns:
        ``(completed, visible)``: COCO results lists (score 1) with the completed amodal masks
        and with the visible masks as ``segmentation``.
    """
    category_ids = list(dataset.categories.category_ids)
    device = next(network.parameters()).device
    completed: list[dict[str, Any]] = []
    visible: list[dict[str, Any]] = []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[index] for index in range(start, min(start + batch_size, len(dataset)))]
        images = [image.to(device) for image, _ in items]
        targets = [{key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in target.items()} for _, target in items]
        with torch.no_grad():
            completions = network.complete(images, [t["boxes"] for t in targets], [t["masks"].float() for t in targets],
                                           [t["labels"] for t in targets])
        for image, target, completion in zip(images, targets, completions):
            detections = {"boxes": target["boxes"], "labels": target["labels"], "scores": torch.ones(len(target["labels"])),
                          "amodal_masks": completion["amodal_masks"], "visible_masks": target["masks"].float()}
            completed += detections_to_results(detections, target["image_id"], category_ids)
            visible += detections_to_results({**detections, "amodal_masks": detections["visible_masks"]}, target["image_id"], category_ids)
            if on_image is not None:
                on_image(image, target, completion)
    return completed, visible
