"""View cycle: the mesh rendered at a random camera, re-encoded, must give back that camera and that mesh.

Not in the A3D paper; after SMR's interpolated consistency (Hu et al., CVPR 2021, the
viewpoint estimator A3D follows in 3.4), which renders the predicted 3D attributes and asks the
encoders to regress them back. Without it nothing tells the viewpoint estimator what a turn of
the object looks like: the silhouette losses are as happy with a shape turned inside the shape
decoder as with a turned camera, and on the built-in data the estimator stays near one azimuth
whatever the view (docs/stage2.md). Here every training instance's mesh ``(V, 3)`` (detached) is
rendered at a camera drawn at random (azimuth over the whole circle, elevation over the
estimator's range, the instance's predicted distance); that silhouette, filled with the
instance's mean visible colour over its mean background colour, is an input whose viewpoint and
shape are known by construction. Two terms, neither using a ground-truth viewpoint or 3D model
(paper 3.7):

- camera: the estimator must predict the drawn camera, ``1 - cos`` of the azimuth error of its
  nearest hypothesis plus the absolute elevation error (radians); with scored hypotheses the
  scores are also trained, by cross-entropy, towards that nearest one;
- shape: the shape decoder, fed the encoding of the rendering, must give back the mesh: the mean
  distance between corresponding vertices.

The renderings go through the batch-norm layers in training mode with their own batch
statistics, but leave the running statistics (what evaluation normalises real inputs with) as
the real inputs made them (:func:`running_statistics_frozen`).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from a3d_core.geometry import Viewpoint


def random_viewpoints(like: Viewpoint, elevation_range_deg: tuple[float, float]) -> Viewpoint:
    """One random camera per entry of ``like`` (B): azimuth uniform on the circle, elevation
    uniform in ``elevation_range_deg``, ``like``'s distance (detached). Radians, ``(B,)`` each."""
    count, device = len(like), like.distance.device
    low, high = (math.radians(x) for x in elevation_range_deg)
    elevation = low + (high - low) * torch.rand(count, device=device)
    azimuth = (2 * torch.rand(count, device=device) - 1) * math.pi
    return Viewpoint(elevation, azimuth, like.distance.detach().float())


def cycle_inputs(silhouettes: torch.Tensor, rgb: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Network inputs ``(B, 4, S, S)`` for rendered silhouettes ``(B, S, S)``: the binarised
    silhouette as the visible mask, and as RGB the instance's mean colour inside its visible
    mask (``rgb`` ``(B, 3, S, S)``, ``visible`` ``(B, 1, S, S)``) painted over its mean colour outside."""
    mask = (silhouettes > 0.5).float().unsqueeze(1)
    inside = (rgb * visible).sum(dim=(2, 3)) / visible.sum(dim=(2, 3)).clamp(min=1.0)
    outside = (rgb * (1 - visible)).sum(dim=(2, 3)) / (1 - visible).sum(dim=(2, 3)).clamp(min=1.0)
    painted = mask * inside[:, :, None, None] + (1 - mask) * outside[:, :, None, None]
    return torch.cat([painted, mask], dim=1)


def camera_cycle_loss(predicted: Viewpoint, scores: torch.Tensor | None, target: Viewpoint) -> torch.Tensor:
    """How far the estimator's prediction for a rendering is from the camera it was rendered at.

    predicted: the estimator's hypotheses, a Viewpoint of ``B * K`` (instance-major); scores:
    their scores ``(B, K)`` or ``None``; target: the drawn cameras (B). Returns the mean over
    instances of ``min_k (1 - cos(azimuth_k - azimuth)) + |elevation - elevation*|``, plus the
    cross-entropy of the scores towards that nearest hypothesis when there are scores. A scalar.
    """
    count = len(predicted) // len(target)
    azimuth_error = 1.0 - torch.cos(predicted.azimuth.view(-1, count) - target.azimuth[:, None])
    nearest = azimuth_error.detach().argmin(dim=1)
    azimuth_term = azimuth_error.gather(1, nearest[:, None]).squeeze(1)
    elevation_term = (predicted.elevation.view(-1, count)[:, 0] - target.elevation).abs()
    loss = (azimuth_term + elevation_term).mean()
    if scores is not None:
        loss = loss + F.cross_entropy(scores, nearest)
    return loss


def shape_cycle_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean distance between corresponding vertices of ``(B, V, 3)`` meshes; a scalar."""
    return (predicted - target).norm(dim=2).mean()


@contextmanager
def running_statistics_frozen(module: nn.Module) -> Iterator[None]:
    """Within the block, ``module``'s batch-norm layers normalise by the batch but leave their
    running mean, variance and batch count as they were (momentum 0, the count put back)."""
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    kept = [
        (layer.momentum, None if layer.num_batches_tracked is None else layer.num_batches_tracked.clone())
        for layer in layers
    ]
    for layer in layers:
        layer.momentum = 0.0
    try:
        yield
    finally:
        for layer, (momentum, count) in zip(layers, kept):
            layer.momentum = momentum
            if count is not None:
                layer.num_batches_tracked.copy_(count)
