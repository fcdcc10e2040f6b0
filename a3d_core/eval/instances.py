"""Per-instance results of a stage-2 model on a single-object split, for intervals and 3D diagnostics.

:func:`collect_instances` runs a model over a split once and keeps, for every instance, the
amodal IoU, the IoU of the HIDDEN part (prediction minus visible against amodal minus visible:
what completion adds beyond copying the visible mask) and the metadata the benchmark groups by
(category, object, camera); for A3D models also the chosen camera and the mesh, which the 3D
diagnostics (:mod:`a3d_core.eval.viewpoint_diagnostics`) read. Cameras are metadata, read from
the dataset's arrays, never given to the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from a3d_core.errors import InputError
from a3d_core.eval.miou import mask_iou
from a3d_core.train.loop import move_to_device


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
    ious = mask_iou(predicted.float(), hidden.float())
    return torch.where(hidden.flatten(1).any(1), ious, torch.full_like(ious, math.nan))


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


def collect_instances(
    model: nn.Module,
    dataset: Dataset,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    keep_meshes: bool = True,
) -> InstanceTable:
    """Run ``model`` (eval mode, no gradients) over ``dataset`` and tabulate every instance.

    ``dataset`` items are :class:`~a3d_core.data.shapenet.ShapeNetAmodalDataset`'s (possibly
    framed); its ``object_index``, ``view_id``, ``elevation`` and ``azimuth`` arrays give the
    metadata. ``keep_meshes`` keeps a 3D model's vertices (for novel-view IoU).
    """
    if len(dataset) == 0:
        raise InputError("no instances to evaluate")
    rows: dict[str, list] = {
        key: [] for key in ("iou", "hidden", "category", "elevation", "azimuth", "distance", "vertices")
    }
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
                batch = move_to_device(batch, device)
                out = model(batch)
                amodal, visible = batch["amodal"][:, 0], batch["visible"][:, 0]
                rows["iou"].append(mask_iou(out["amodal_mask"], amodal).cpu())
                rows["hidden"].append(hidden_part_iou(out["amodal_mask"], visible, amodal).cpu())
                rows["category"].append(batch["category"].cpu())
                if "viewpoint" in out:
                    viewpoint = out["viewpoint"]
                    rows["elevation"].append(torch.rad2deg(viewpoint.elevation).cpu())
                    rows["azimuth"].append(torch.rad2deg(viewpoint.azimuth).cpu())
                    rows["distance"].append(viewpoint.distance.cpu())
                    if keep_meshes:
                        rows["vertices"].append(out["vertices"].float().cpu())
    finally:
        model.train(was_training)

    def joined(key: str) -> np.ndarray | None:
        return torch.cat(rows[key]).numpy() if rows[key] else None

    return InstanceTable(
        iou=joined("iou").astype(np.float64),
        hidden_iou=joined("hidden").astype(np.float64),
        category=joined("category").astype(np.int64),
        object_index=_metadata(dataset, "object_index").astype(np.int64),
        view_id=_metadata(dataset, "view_id").astype(np.int64),
        elevation=_metadata(dataset, "elevation").astype(np.float64),
        azimuth=_metadata(dataset, "azimuth").astype(np.float64),
        predicted_elevation=joined("elevation"),
        predicted_azimuth=joined("azimuth"),
        predicted_distance=joined("distance"),
        vertices=joined("vertices"),
    )


def visible_mask_table(dataset: Dataset) -> InstanceTable:
    """The visible-mask baseline's table: the visible mask itself as the amodal mask."""

    class VisibleAsAmodal(nn.Module):
        def forward(self, batch):
            return {"amodal_mask": batch["visible"][:, 0]}

    return collect_instances(VisibleAsAmodal(), dataset)
