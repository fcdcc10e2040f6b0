"""Amodal mask IoU of a stage-2 model on a single-object split, beside the visible-mask baseline.

The visible-mask baseline predicts the visible mask itself as the amodal mask: the IoU it
scores is what a method gains nothing over. Both are measured on the same instances, per
category and overall (paper Table 1: per-category IoU and their mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, default_collate

from a3d_core.errors import InputError
from a3d_core.eval.miou import IoUByCategory, IoUSummary, mask_iou
from a3d_core.progress import SILENT, ProgressReporter
from a3d_core.train.loop import move_to_device


@dataclass(frozen=True)
class AmodalEvaluation:
    """IoUs of the model and of the visible-mask baseline on ``instances`` instances of ``split``."""

    split: str
    instances: int
    model: IoUSummary
    visible_baseline: IoUSummary

    def as_metrics(self) -> dict[str, float]:
        """``miou``, ``instance_miou``, ``miou/<category>`` of the model and ``visible_baseline/miou``."""
        return {**self.model.as_metrics(), "visible_baseline/miou": self.visible_baseline.miou}

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: for ``results.json``."""
        return {
            "split": self.split,
            "instances": self.instances,
            "model": vars(self.model),
            "visible_baseline": vars(self.visible_baseline),
        }


def evenly_spaced(dataset: Dataset, limit: int | None) -> Dataset:
    """At most ``limit`` items of ``dataset``, spread evenly over it (all of it when ``limit`` is None)."""
    if limit is None or limit >= len(dataset):
        return dataset
    if limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    indices = torch.linspace(0, len(dataset) - 1, limit).round().long().unique().tolist()
    return Subset(dataset, indices)


def evaluate_amodal(
    model: nn.Module,
    dataset: Dataset,
    category_names: Sequence[str],
    *,
    split: str,
    device: torch.device,
    batch_size: int = 64,
    workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] = default_collate,
    progress: ProgressReporter = SILENT,
) -> AmodalEvaluation:
    """Mask IoU (threshold 0.5) of ``model``'s amodal masks and of the visible masks, vs. the GT amodal masks.

    Args:
        model: in eval mode ``model(batch)["amodal_mask"]`` is ``(B, S, S)`` probabilities; the
            model is put in eval mode for the evaluation and back in its former mode after.
        dataset: items with ``rgb`` (3, S, S), ``visible`` (1, S, S), ``amodal`` (1, S, S),
            ``category`` (int64 scalar, index into ``category_names``).
        split: the split's name, for the report.
        progress: receives the phase ``evaluate <split>`` (instances).
    """
    if len(dataset) == 0:
        raise InputError(f"split {split!r} has no instances to evaluate")
    model_ious, baseline_ious = IoUByCategory(list(category_names)), IoUByCategory(list(category_names))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate_fn)
    was_training = model.training
    model.eval()
    try:
        progress.start(f"evaluate {split}", len(dataset), unit="instance")
        done = 0
        with torch.no_grad():
            for batch in loader:
                batch = move_to_device(batch, device)
                predicted = model(batch)["amodal_mask"]
                model_ious.update(mask_iou(predicted, batch["amodal"]), batch["category"])
                baseline_ious.update(mask_iou(batch["visible"], batch["amodal"]), batch["category"])
                done += len(batch["category"])
                progress.update(done)
        progress.end()
    finally:
        model.train(was_training)
    return AmodalEvaluation(
        split=split, instances=len(dataset), model=model_ious.summary(), visible_baseline=baseline_ious.summary()
    )
