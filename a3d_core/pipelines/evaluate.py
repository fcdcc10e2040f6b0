"""Evaluate a fine-tuned checkpoint on a dataset split.

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
from a3d_core.data.detection import AmodalDetectionDataset
from a3d_core.eval.evaluate import EvaluationResult, EvaluationSettings, evaluate_dataset, evaluate_predictions
from a3d_core.eval.predictions import detections_to_results
from a3d_core.io.atomic import atomic_write_json
from a3d_core.pipelines.completers import Completer
from a3d_core.pipelines.predict import PredictResult, PredictSettings, predict_dataset
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
) -> list[dict[str, Any]]:
    """Complete the ground-truth instances of every image from their amodal boxes and VISIBLE
    masks (C2F-Seg's setting): what the completion does without detection errors.

    Args:
        completer: e.g. a checkpoint's stage 2 or the visible-mask baseline (:mod:`a3d_core.pipelines.completers`).
        dataset: the split's images and targets; its category ids and names label the instances.
        on_image: called per image with ``(image (3, H, W), target, completion)``, e.g. to draw overlays.
        progress: ``progress(done, total)`` after each batch of images.

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
) -> EvaluationResult:
    """``a3d evaluate --protocol completion``: score :func:`complete_ground_truth` on split
    ``split`` (amodal AP with the ground-truth instances as detections, mIoU, mIoU_occ).

    ``predictions_file`` keeps the completed masks (COCO results, for ``a3d evaluate --predictions``);
    ``on_image`` sees each image's completion (:func:`complete_ground_truth`), e.g. to draw it.
    """
    folder = read_dataset(resolve_dataset(dataset, data_root))
    images = AmodalDetectionDataset(folder, split)
    results = complete_ground_truth(completer, images, on_image=on_image, progress=progress)
    if predictions_file is not None:
        atomic_write_json(Path(predictions_file), results)
    return evaluate_predictions(images.split, results, evaluation_settings, folder.name, split)
