"""One pass of a stage-2 model over a single-object split, and the two views of it the project reads.

:func:`score_instances` is the one loop: it runs a model (eval mode, no gradients) over a split
and keeps, per instance, the amodal IoU, the IoU of the visible mask itself (the visible-mask
baseline: predicting the visible mask as the amodal mask is what a method gains nothing over),
the IoU of the HIDDEN part (prediction minus visible against amodal minus visible: what
completion adds beyond copying the visible mask) and, for A3D models, the chosen camera and the
mesh. Two results are derived from it:

- :func:`evaluate_amodal`: per-category and mean IoU of the model beside the visible-mask
  baseline (paper Table 1: per-category IoU and their mean), what pretraining validates on;
- :func:`collect_instances`: an :class:`InstanceTable` with the metadata the viewpoint benchmark
  groups by (category, object, camera), for intervals and the 3D diagnostics
  (:mod:`a3d_core.eval.viewpoint_diagnostics`). Cameras are metadata, read from the dataset's
  arrays, never given to the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, default_collate

from a3d_core.errors import InputError
from a3d_core.eval.miou import IoUByCategory, IoUSummary, paired_mask_iou
from a3d_core.progress import SILENT, ProgressReporter
from a3d_core.runtime import move_to_device


@dataclass
class InstanceTable:
    """One row per instance of a split (N rows). Angles in degrees.

    Attributes:
        iou: ``(N,)`` amodal mask IoU (threshold 0.5).
        hidden_iou: ``(N,)`` IoU of the hidden part; NaN where the instance has none.
        category, object_index, view_id: ``(N,)`` int64 metadata.
        elevation, azimuth: ``(N,)`` the true camera (metadata).
        predicted_elevation, predicted_azimuth, predicted_distance: ``(N,)`` the chosen camera
            of a 3D model (``None`` for 2D models).
        vertices: ``(N, V, 3)`` float32 meshes of a 3D model (``None`` otherwise).
    """

    iou: np.ndarray
    hidden_iou: np.ndarray
    category: np.ndarray
    object_index: np.ndarray
    view_id: np.ndarray
    elevation: np.ndarray
    azimuth: np.ndarray
    predicted_elevation: np.ndarray | None = None
    predicted_azimuth: np.ndarray | None = None
    predicted_distance: np.ndarray | None = None
    vertices: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.iou)


def hidden_part_iou(prediction: torch.Tensor, visible: torch.Tensor, amodal: torch.Tensor) -> torch.Tensor:
    """IoU of ``prediction > 0.5`` minus the visible mask against the amodal minus the visible mask.

    All ``(B, S, S)`` (masks in {0, 1}); returns ``(B,)``, NaN where the amodal mask has no hidden part.
    """
    seen = visible > 0.5
    predicted = (prediction > 0.5) & ~seen
    hidden = (amodal > 0.5) & ~seen
    ious = paired_mask_iou(predicted.float(), hidden.float())
    return torch.where(hidden.flatten(1).any(1), ious, torch.full_like(ious, math.nan))


class CompletedInstances:
    """Per-instance scores of a completion of ground-truth instances in their images: an
    ``on_image(image, target, completion)`` callback of
    :func:`~a3d_core.pipelines.evaluate.complete_ground_truth` (the completion protocol). Each
    instance keeps its amodal IoU, its hidden-part IoU (:func:`hidden_part_iou`, NaN where nothing
    is hidden) and its image id, the unit intervals resample."""

    def __init__(self) -> None:
        self._iou: list[torch.Tensor] = []
        self._hidden: list[torch.Tensor] = []
        self._image: list[torch.Tensor] = []

    def __call__(self, image: torch.Tensor, target: dict[str, Any], completion: dict[str, torch.Tensor]) -> None:
        amodal, visible = target["amodal_masks"].float(), target["masks"].float()  # (K, H, W) each
        predicted = completion["amodal_masks"].cpu().float()  # (K, H, W)
        self._iou.append(paired_mask_iou(predicted, amodal))
        self._hidden.append(hidden_part_iou(predicted, visible, amodal))
        self._image.append(torch.full((len(amodal),), int(target["image_id"])))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(iou, hidden_iou, image_id)``, each ``(N,)`` (float64, float64, int64), in completion order."""
        if not self._iou:
            return np.zeros(0), np.zeros(0), np.zeros(0, np.int64)
        return (
            torch.cat(self._iou).double().numpy(),
            torch.cat(self._hidden).double().numpy(),
            torch.cat(self._image).long().numpy(),
        )


def _metadata(dataset: Dataset, name: str) -> np.ndarray:
    """An ``(N,)`` metadata array of ``dataset`` (read through wrappers and subsets)."""
    indices = None
    while not hasattr(dataset, name) and hasattr(dataset, "indices") and hasattr(dataset, "dataset"):
        indices = np.asarray(dataset.indices) if indices is None else np.asarray(dataset.indices)[indices]
        dataset = dataset.dataset
    values = getattr(dataset, name, None)
    if values is None:
        raise InputError(f"{type(dataset).__name__}: no {name!r} array to group instances by")
    values = np.asarray(values)
    return values if indices is None else values[indices]


@dataclass
class InstanceScores:
    """What :func:`score_instances` keeps of N instances, in dataset order (CPU tensors).

    Attributes:
        iou: ``(N,)`` amodal mask IoU of the model (threshold 0.5).
        visible_iou: ``(N,)`` amodal mask IoU of the visible mask itself (the visible-mask baseline).
        hidden_iou: ``(N,)`` IoU of the hidden part (:func:`hidden_part_iou`); NaN where there is none.
        category: ``(N,)`` int64 category indices.
        elevation, azimuth: ``(N,)`` the camera a 3D model chose, in degrees (``None`` for 2D models).
        distance: ``(N,)`` its distance (``None`` for 2D models).
        vertices: ``(N, V, 3)`` float32 meshes of a 3D model when asked for (``None`` otherwise).
    """

    iou: torch.Tensor
    visible_iou: torch.Tensor
    hidden_iou: torch.Tensor
    category: torch.Tensor
    elevation: torch.Tensor | None = None
    azimuth: torch.Tensor | None = None
    distance: torch.Tensor | None = None
    vertices: torch.Tensor | None = None


def score_instances(
    model: nn.Module,
    dataset: Dataset,
    *,
    device: torch.device | str,
    batch_size: int = 64,
    workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] = default_collate,
    keep_meshes: bool = False,
    phase: str = "evaluate",
    progress: ProgressReporter = SILENT,
) -> InstanceScores:
    """Run ``model`` over ``dataset`` once and score every instance against its GT amodal mask.

    Args:
        model: in eval mode ``model(batch)["amodal_mask"]`` is ``(B, S, S)`` probabilities, and a 3D
            model adds ``"viewpoint"`` (a :class:`~a3d_core.geometry.Viewpoint` of ``(B,)`` radians
            and distances) and ``"vertices"`` ``(B, V, 3)``; the model is put in eval mode for the
            pass and back in its former mode after.
        dataset: non-empty; items with ``rgb`` (3, S, S), ``visible`` (1, S, S), ``amodal`` (1, S, S),
            ``category`` (int64 scalar).
        keep_meshes: keep a 3D model's vertices (for novel-view IoU).
        phase, progress: ``progress`` receives the phase ``phase`` (instances).
    """
    columns: dict[str, list[torch.Tensor]] = {
        key: []
        for key in ("iou", "visible_iou", "hidden_iou", "category", "elevation", "azimuth", "distance", "vertices")
    }
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate_fn)
    was_training = model.training
    model.eval()
    try:
        progress.start(phase, len(dataset), unit="instance")
        done = 0
        with torch.no_grad():
            for batch in loader:
                batch = move_to_device(batch, device)
                out = model(batch)
                amodal, visible = batch["amodal"][:, 0], batch["visible"][:, 0]
                columns["iou"].append(paired_mask_iou(out["amodal_mask"], amodal).cpu())
                columns["visible_iou"].append(paired_mask_iou(visible, amodal).cpu())
                predicted = out["amodal_mask"].reshape(amodal.shape)
                columns["hidden_iou"].append(hidden_part_iou(predicted, visible, amodal).cpu())
                columns["category"].append(batch["category"].reshape(-1).cpu())
                if "viewpoint" in out:
                    viewpoint = out["viewpoint"]
                    columns["elevation"].append(torch.rad2deg(viewpoint.elevation).cpu())
                    columns["azimuth"].append(torch.rad2deg(viewpoint.azimuth).cpu())
                    columns["distance"].append(viewpoint.distance.cpu())
                    if keep_meshes:
                        columns["vertices"].append(out["vertices"].float().cpu())
                done += len(amodal)
                progress.update(done)
        progress.end()
    finally:
        model.train(was_training)
    joined = {key: torch.cat(parts) if parts else None for key, parts in columns.items()}
    return InstanceScores(**joined)


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
        model, dataset: as :func:`score_instances` takes them; ``category`` indexes ``category_names``.
        split: the split's name, for the report.
        progress: receives the phase ``evaluate <split>`` (instances).
    """
    if len(dataset) == 0:
        raise InputError(f"split {split!r} has no instances to evaluate")
    scores = score_instances(
        model,
        dataset,
        device=device,
        batch_size=batch_size,
        workers=workers,
        collate_fn=collate_fn,
        phase=f"evaluate {split}",
        progress=progress,
    )
    model_ious, baseline_ious = IoUByCategory(list(category_names)), IoUByCategory(list(category_names))
    model_ious.update(scores.iou, scores.category)
    baseline_ious.update(scores.visible_iou, scores.category)
    return AmodalEvaluation(
        split=split, instances=len(dataset), model=model_ious.summary(), visible_baseline=baseline_ious.summary()
    )


def collect_instances(
    model: nn.Module,
    dataset: Dataset,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    keep_meshes: bool = True,
) -> InstanceTable:
    """Score every instance of ``dataset`` (:func:`score_instances`) and tabulate it with its metadata.

    ``dataset`` items are :class:`~a3d_core.data.shapenet.ShapeNetAmodalDataset`'s (possibly
    framed); its ``object_index``, ``view_id``, ``elevation`` and ``azimuth`` arrays give the
    metadata. ``keep_meshes`` keeps a 3D model's vertices (for novel-view IoU).
    """
    if len(dataset) == 0:
        raise InputError("no instances to evaluate")
    scores = score_instances(model, dataset, device=device, batch_size=batch_size, keep_meshes=keep_meshes)

    def array(values: torch.Tensor | None) -> np.ndarray | None:
        return None if values is None else values.numpy()

    return InstanceTable(
        iou=scores.iou.numpy().astype(np.float64),
        hidden_iou=scores.hidden_iou.numpy().astype(np.float64),
        category=scores.category.numpy().astype(np.int64),
        object_index=_metadata(dataset, "object_index").astype(np.int64),
        view_id=_metadata(dataset, "view_id").astype(np.int64),
        elevation=_metadata(dataset, "elevation").astype(np.float64),
        azimuth=_metadata(dataset, "azimuth").astype(np.float64),
        predicted_elevation=array(scores.elevation),
        predicted_azimuth=array(scores.azimuth),
        predicted_distance=array(scores.distance),
        vertices=array(scores.vertices),
    )


def visible_mask_table(dataset: Dataset) -> InstanceTable:
    """The visible-mask baseline's table: the visible mask itself as the amodal mask."""

    class VisibleAsAmodal(nn.Module):
        def forward(self, batch):
            return {"amodal_mask": batch["visible"][:, 0]}

    return collect_instances(VisibleAsAmodal(), dataset)
