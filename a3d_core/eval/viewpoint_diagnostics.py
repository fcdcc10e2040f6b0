"""3D diagnostics of an A3D model, evaluation only: is the camera right, and is the shape 3D?

Stored cameras are metadata, never a training signal (paper 3.7); here they only judge.

**Viewpoint error.** The network learns its own canonical frame: its azimuth 0 need not be the
data's, and a mirror-symmetric mesh seen from ``-a`` looks like its mirror image seen from ``a``.
Both the data's cameras and the network's are roll-free look-at cameras with +Y up (the
renderer's and the estimator's, :mod:`a3d_core.geometry`), so the frames share their vertical
axis and the best global rotation is a turn about it, possibly with a mirror:
``a_true = m * a_pred + offset`` with ``m`` in {+1, -1}, chosen per category to minimise the
median azimuth error (:func:`align_azimuths`). Errors are reported after that alignment, the
azimuth error also modulo 180 degrees: at low elevation a view and its front/back twin (azimuth
``180 - a``) show near-identical silhouettes (:mod:`a3d_core.data.viewpoints`), so a camera
turned front to back is an error the masks can hardly tell.

**Novel-view IoU.** The mesh reconstructed from one occluded view, rendered at another view of
the same object: the predicted camera moved by the known relative rotation (``m`` times the
azimuth step, plus the elevation step), against that view's amodal mask. Both masks are framed
alike (:func:`~a3d_core.data.framing.frame_masks`), so the comparison is of shape up to position
and scale. Beside it, the baseline that reuses the input view's amodal mask. No 2D method can
produce this number; it says whether the prior is 3D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from a3d_core.data.framing import frame_masks
from a3d_core.eval.instances import InstanceTable
from a3d_core.eval.miou import paired_mask_iou
from a3d_core.geometry import KATO_AZIMUTH_STEP_DEG, KATO_NUM_VIEWS, Viewpoint

Renderer = Callable[[torch.Tensor, Viewpoint], torch.Tensor]
"""``render(vertices (B, V, 3), viewpoint of B) -> (B, S, S)`` soft silhouettes (the model's renderer)."""


def wrap_degrees(angles: np.ndarray) -> np.ndarray:
    """Angles mapped into [-180, 180)."""
    return (np.asarray(angles, dtype=np.float64) + 180.0) % 360.0 - 180.0


@dataclass(frozen=True)
class AzimuthAlignment:
    """``a_true = mirror * a_pred + offset`` (degrees), one per category."""

    mirror: int
    offset: float

    def apply(self, predicted: np.ndarray) -> np.ndarray:
        return wrap_degrees(self.mirror * np.asarray(predicted) + self.offset)


def align_azimuths(true: np.ndarray, predicted: np.ndarray, step: float = 1.0) -> AzimuthAlignment:
    """The mirror and offset (a grid of ``step`` degrees) minimising the median azimuth error."""
    true, predicted = np.asarray(true, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    offsets = np.arange(-180.0, 180.0, step)
    best = None
    for mirror in (1, -1):
        errors = np.abs(wrap_degrees(mirror * predicted[None] + offsets[:, None] - true[None]))
        medians = np.median(errors, axis=1)
        pick = int(np.argmin(medians))
        if best is None or medians[pick] < best[0] - 1e-9:
            best = (medians[pick], AzimuthAlignment(mirror, float(offsets[pick])))
    return best[1]


def view_directions(elevation: np.ndarray, azimuth: np.ndarray) -> np.ndarray:
    """Unit camera directions ``(N, 3)`` (Kato's convention, :func:`a3d_core.geometry.eye_positions`)."""
    e, a = np.radians(elevation), np.radians(azimuth)
    return np.stack([np.cos(e) * np.sin(a), np.sin(e), -np.cos(e) * np.cos(a)], axis=-1)


@dataclass(frozen=True)
class ViewpointErrors:
    """Per instance, after alignment (degrees): ``azimuth``, ``elevation`` (absolute errors) and
    ``angle`` (between the true and the aligned view directions); ``alignments`` per category index."""

    azimuth: np.ndarray
    elevation: np.ndarray
    angle: np.ndarray
    alignments: dict[int, AzimuthAlignment]

    @property
    def azimuth_mod180(self) -> np.ndarray:
        """``(N,)`` the azimuth error up to the front/back ambiguity: ``min(e, 180 - e)``."""
        return np.minimum(self.azimuth, 180.0 - self.azimuth)

    def summary(self, within: float = 30.0) -> dict[str, float]:
        return {
            "median_azimuth_error": float(np.median(self.azimuth)),
            "median_azimuth_error_mod180": float(np.median(self.azimuth_mod180)),
            "median_elevation_error": float(np.median(self.elevation)),
            "median_angle_error": float(np.median(self.angle)),
            "share_within": float(np.mean(self.angle <= within)),
            "within_degrees": within,
        }


def viewpoint_errors(table: InstanceTable, alignments: Mapping[int, AzimuthAlignment] | None = None) -> ViewpointErrors:
    """Errors of a 3D model's chosen cameras in ``table``; ``alignments`` (category -> alignment)
    are fitted on ``table`` itself when not given (e.g. fit on val, apply to a test split)."""
    if table.predicted_azimuth is None:
        raise ValueError("the table has no predicted cameras (not a 3D model)")
    fitted = dict(alignments or {})
    aligned = np.zeros(len(table))
    for category in np.unique(table.category):
        mine = table.category == category
        if int(category) not in fitted:
            fitted[int(category)] = align_azimuths(table.azimuth[mine], table.predicted_azimuth[mine])
        aligned[mine] = fitted[int(category)].apply(table.predicted_azimuth[mine])
    true_directions = view_directions(table.elevation, table.azimuth)
    predicted_directions = view_directions(table.predicted_elevation, aligned)
    cosines = np.clip((true_directions * predicted_directions).sum(-1), -1.0, 1.0)
    return ViewpointErrors(
        azimuth=np.abs(wrap_degrees(aligned - table.azimuth)),
        elevation=np.abs(table.predicted_elevation - table.elevation),
        angle=np.degrees(np.arccos(cosines)),
        alignments=fitted,
    )


@dataclass(frozen=True)
class ViewStep:
    """A relative camera move: ``views`` Kato azimuth steps (15 degrees each) and ``elevation`` degrees."""

    views: int = 0
    elevation: float = 0.0

    @property
    def label(self) -> str:
        parts = [f"azimuth {abs(self.views * KATO_AZIMUTH_STEP_DEG):g}"] if self.views else []
        parts += [f"elevation {self.elevation:+g}"] if self.elevation else []
        return ", ".join(parts) or "same view"


DEFAULT_STEPS = (
    ViewStep(views=3),
    ViewStep(views=6),
    ViewStep(views=12),
    ViewStep(elevation=30.0),
    ViewStep(elevation=-30.0),
)
"""45, 90 and 180 degrees of azimuth, and 30 degrees up and down."""


@dataclass(frozen=True)
class NovelViewResult:
    """Pairs (input instance -> another view of its object) of one step, per pair ``(P,)``:
    the mesh's IoU, the reused input mask's IoU, the pair's category and object."""

    step: ViewStep
    mesh_iou: np.ndarray
    reuse_iou: np.ndarray
    category: np.ndarray
    object_index: np.ndarray


def novel_view_ious(
    table: InstanceTable,
    input_masks: torch.Tensor,
    targets: Mapping[tuple[int, float, int], torch.Tensor],
    render: Renderer,
    alignments: Mapping[int, AzimuthAlignment],
    framing: float | None,
    steps: Sequence[ViewStep] = DEFAULT_STEPS,
    batch_size: int = 64,
) -> list[NovelViewResult]:
    """Novel-view IoU of a 3D model's meshes in ``table`` at each of ``steps``.

    Args:
        table: a 3D model's instances (with ``vertices`` and predicted cameras).
        input_masks: ``(N, S, S)`` the amodal masks of ``table``'s instances, as the network saw them.
        targets: ``(object, elevation, view id) -> (S, S)`` amodal masks of the other views of the
            objects (framed as the inputs), from any split.
        render: the model's renderer.
        alignments: category -> :class:`AzimuthAlignment` (only its mirror is used: it says which
            way the network's azimuth turns).
        framing: the framing scale of the views (``None``: views as rendered; the mesh's
            silhouette is then compared as it falls).
    """
    if table.vertices is None:
        raise ValueError("the table has no meshes (not a 3D model, or collected without keep_meshes)")
    results = []
    for step in steps:
        pairs, target_masks = [], []
        for i in range(len(table)):
            key = (
                int(table.object_index[i]),
                float(table.elevation[i] + step.elevation),
                int(table.view_id[i] + step.views) % KATO_NUM_VIEWS,
            )
            if key in targets:
                pairs.append(i)
                target_masks.append(targets[key])
        pairs = np.asarray(pairs, dtype=np.int64)
        mesh_ious, reuse_ious = [], []
        for start in range(0, len(pairs), batch_size):
            chosen = pairs[start : start + batch_size]
            target = torch.stack(target_masks[start : start + batch_size]).float()
            mirror = np.array([alignments[int(c)].mirror for c in table.category[chosen]], dtype=np.float64)
            azimuth = table.predicted_azimuth[chosen] + mirror * step.views * KATO_AZIMUTH_STEP_DEG
            # look-at flips at the poles
            elevation = np.clip(table.predicted_elevation[chosen] + step.elevation, -85.0, 85.0)
            viewpoint = Viewpoint.from_degrees(elevation, azimuth, table.predicted_distance[chosen])
            with torch.no_grad():
                silhouettes = (render(torch.from_numpy(table.vertices[chosen]), viewpoint) >= 0.5).float()
            if framing is not None:
                silhouettes = frame_masks(silhouettes, framing)
            mesh_ious.append(paired_mask_iou(silhouettes, target).numpy())
            reuse_ious.append(paired_mask_iou(input_masks[torch.from_numpy(chosen)].float(), target).numpy())
        results.append(
            NovelViewResult(step, _join(mesh_ious), _join(reuse_ious), table.category[pairs], table.object_index[pairs])
        )
    return results


def _join(parts: list[np.ndarray]) -> np.ndarray:
    """The batches' IoUs as one float64 array (empty when no pair had a target)."""
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)
