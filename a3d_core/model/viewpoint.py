"""The viewpoint estimator: instance input -> camera elevation, distance and azimuth (paper 3.4).

Following SMR, it has its own encoder (five conv-bn-relu blocks + three fc layers) and predicts
``[e, d, (a_x, a_y)]`` with azimuth ``a = atan2(a_x, a_y)``. Every output is bounded:
elevation and distance by a scaled sigmoid into their ranges, ``(a_x, a_y)`` by ``tanh`` (the
azimuth itself covers the whole circle). As in the paper it is never supervised with
viewpoints (the ``"learned"`` camera source, below); only the rendered silhouettes' losses train
it. The initial prediction is Kato's ShapeNet camera (elevation 30 degrees, distance 2.732): the
head's bias is set to reach it.

Azimuth hypotheses (``azimuth_hypotheses`` K > 1, after the camera multiplex of Goel et al.,
ECCV 2020, and Unicorn, Monnier et al., 2022; not in the A3D paper). Trained from a sphere, whose
silhouette does not change when it turns, a single azimuth gets no gradient: the estimator keeps
predicting one azimuth for every view, the shape decoder explains each view by a view-specific
shape, and cross-view consistency averages those into a blob that looks alike from everywhere.
With K hypotheses ``a + 2 pi k / K`` the shape is rendered at all K; which one is used is decided
by the caller (:class:`~a3d_core.model.asm.MeshMaskBranch`). With ``hypothesis_selection =
"scores"`` the estimator also scores its K hypotheses (K more outputs of its head), trained by
cross-entropy towards the one whose silhouette fits the amodal mask best (the camera multiplex's
and Unicorn's selection), so that inference renders only the best-scored one: the cost of a
single camera.

Camera sources (``camera``; not in the A3D paper, whose cameras are never supervised):
``"learned"`` is the paper's estimator above. ``"supervised"`` (camera-supervised pretraining, what
SoftRas and NMR do on ShapeNet renders) also trains the estimator towards the true elevation and
azimuth of each training view (``LossSettings.camera_supervision``); at test time the predicted
camera is used, and no true camera is needed. ``"oracle"`` is an UPPER BOUND, not a method: the
mesh is rendered at the true elevation and azimuth of the view, in training and in evaluation, and
only the distance (the object's scale in a framed view) stays predicted. The true camera reaches
the model as batch entries ``"elevation"`` and ``"azimuth"`` (:class:`CameraAngles`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from a3d_core.geometry import ELEVATION_RANGE_DEG, KATO_DISTANCE, KATO_ELEVATION_DEG, Viewpoint
from a3d_core.model.encoder import Encoder, EncoderSettings

HYPOTHESIS_SELECTIONS = ("render", "scores")
CAMERAS = ("learned", "supervised", "oracle")


@dataclass
class ViewpointSettings:
    """elevation_range_deg, distance_range: ``(low, high)`` bounds of the predictions.
    initial_elevation_deg, initial_distance: what the untrained estimator predicts (inside the ranges).
    head_init_std: std of the initial head weights (small: early predictions stay near the initial view).
    encoder: widths of the estimator's own encoder.
    azimuth_hypotheses: K, the number of azimuth hypotheses, evenly spaced around the circle (1: a single azimuth).
    hypothesis_selection: with K > 1, how evaluation picks one: ``"render"`` renders all K and takes
        the silhouette that agrees best with the visible mask; ``"scores"`` takes the hypothesis the
        estimator scores highest and renders only that one.
    camera: where the camera comes from (``CAMERAS``, module docstring): ``"learned"`` (the paper's),
        ``"supervised"`` (trained towards the true camera, predicted at test) or ``"oracle"`` (the true
        elevation and azimuth, in training and evaluation: an upper bound; it takes one azimuth
        hypothesis, which :func:`~a3d_core.model.asm.build_stage2` checks, so that the two settings can
        be changed one after the other).
    """

    elevation_range_deg: tuple[float, float] = ELEVATION_RANGE_DEG
    distance_range: tuple[float, float] = (2.0, 3.5)
    initial_elevation_deg: float = KATO_ELEVATION_DEG
    initial_distance: float = KATO_DISTANCE
    head_init_std: float = 1e-3
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    azimuth_hypotheses: int = 1
    hypothesis_selection: str = "render"
    camera: str = "learned"

    def __post_init__(self) -> None:
        self.elevation_range_deg = tuple(float(x) for x in self.elevation_range_deg)
        self.distance_range = tuple(float(x) for x in self.distance_range)
        if isinstance(self.encoder, dict):
            self.encoder = EncoderSettings(**self.encoder)
        low, high = self.elevation_range_deg
        if not -90.0 < low < high < 90.0:
            raise ValueError(
                "elevation_range_deg must satisfy -90 < low < high < 90 (look-at cameras flip at the poles), got "
                f"{self.elevation_range_deg}"
            )
        if not low < self.initial_elevation_deg < high:
            raise ValueError(
                f"initial_elevation_deg {self.initial_elevation_deg} is outside elevation_range_deg "
                f"{self.elevation_range_deg}"
            )
        low, high = self.distance_range
        if not 0.0 < low < high:
            raise ValueError(f"distance_range must satisfy 0 < low < high, got {self.distance_range}")
        if not low < self.initial_distance < high:
            raise ValueError(
                f"initial_distance {self.initial_distance} is outside distance_range {self.distance_range}"
            )
        if self.head_init_std < 0:
            raise ValueError(f"head_init_std must be non-negative, got {self.head_init_std}")
        if self.azimuth_hypotheses < 1:
            raise ValueError(f"azimuth_hypotheses must be at least 1, got {self.azimuth_hypotheses}")
        if self.hypothesis_selection not in HYPOTHESIS_SELECTIONS:
            raise ValueError(
                f"hypothesis_selection must be one of {HYPOTHESIS_SELECTIONS}, got {self.hypothesis_selection!r}"
            )
        if self.camera not in CAMERAS:
            raise ValueError(f"camera must be one of {CAMERAS}, got {self.camera!r}")

    @property
    def scores_hypotheses(self) -> bool:
        """Whether the estimator scores its hypotheses (K > 1 and selection by scores)."""
        return self.azimuth_hypotheses > 1 and self.hypothesis_selection == "scores"


class CameraAngles(NamedTuple):
    """The true elevation and azimuth of each view: ``(B,)`` each, radians, Kato's convention
    (:func:`a3d_core.geometry.eye_positions`, azimuth ``-15`` degrees times the view id)."""

    elevation: torch.Tensor
    azimuth: torch.Tensor

    @classmethod
    def from_degrees(cls, elevation: torch.Tensor, azimuth: torch.Tensor) -> "CameraAngles":
        """From ``(B,)`` degrees (the datasets' ``elevation`` and ``azimuth`` entries)."""
        return cls(torch.deg2rad(elevation.float()), torch.deg2rad(azimuth.float()))

    def at_distance(self, distance: torch.Tensor) -> Viewpoint:
        """The viewpoint at these angles and ``distance`` ``(B,)``, on its device; the angles keep
        their float32 precision (under mixed precision the distance may be half)."""
        return Viewpoint(self.elevation.to(distance.device), self.azimuth.to(distance.device), distance)


def pick_hypotheses(hypotheses: Viewpoint, choice: torch.Tensor) -> Viewpoint:
    """One hypothesis per instance: ``hypotheses`` is a :class:`ViewpointEstimator` output of
    ``B * K`` (instance-major), ``choice`` ``(B,)`` long in ``[0, K)``; returns a Viewpoint of B."""
    count = len(hypotheses) // len(choice)
    return hypotheses.index(torch.arange(len(choice), device=choice.device) * count + choice)


def _inverse_sigmoid_fraction(value: float, low: float, high: float) -> float:
    fraction = (value - low) / (high - low)
    return math.log(fraction / (1.0 - fraction))


class ViewpointEstimator(nn.Module):
    """forward(inputs ``(B, in_channels, S, S)``: RGB, visible mask and, with
    ``ASMSettings.occluder_input``, the occluder mask) -> :class:`~a3d_core.geometry.Viewpoint` of ``B * K``
    (radians), instance-major: entry ``b * K + k`` is hypothesis k of instance b, whose azimuth
    is ``a_b + 2 pi k / K``; elevation and distance are shared by an instance's hypotheses.
    With K = 1 (the paper's single camera) that is one viewpoint per instance. :meth:`hypotheses`
    also returns the hypotheses' scores ``(B, K)`` when the settings ask for them."""

    def __init__(self, image_size: int, in_channels: int = 4, settings: ViewpointSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or ViewpointSettings()
        self.encoder = Encoder(image_size, in_channels, self.settings.encoder)
        self.num_hypotheses = self.settings.azimuth_hypotheses
        scores = self.num_hypotheses if self.settings.scores_hypotheses else 0
        self.head = nn.Linear(self.encoder.feature_dim, 4 + scores)  # elevation, distance, a_x, a_y[, K scores]
        nn.init.normal_(self.head.weight, std=self.settings.head_init_std)
        with torch.no_grad():
            self.head.bias.copy_(
                torch.tensor(
                    [
                        _inverse_sigmoid_fraction(
                            self.settings.initial_elevation_deg, *self.settings.elevation_range_deg
                        ),
                        _inverse_sigmoid_fraction(self.settings.initial_distance, *self.settings.distance_range),
                        0.0,
                        1.0,  # (a_x, a_y) = (0, tanh 1): azimuth 0 with a well-conditioned atan2
                    ]
                    + [0.0] * scores  # equal scores at first
                )
            )

    def forward(self, inputs: torch.Tensor) -> Viewpoint:
        return self.hypotheses(inputs)[0]

    def hypotheses(self, inputs: torch.Tensor) -> tuple[Viewpoint, torch.Tensor | None]:
        """``(viewpoints of B * K, scores (B, K) or None)``; see the class docstring."""
        raw = self.head(self.encoder(inputs))
        viewpoint = self._bounded(raw[:, :4])
        scores = raw[:, 4:] if self.settings.scores_hypotheses else None
        count = self.num_hypotheses
        if count == 1:
            return viewpoint, None
        turns = torch.arange(count, device=inputs.device, dtype=viewpoint.azimuth.dtype) * (2 * math.pi / count)
        azimuth = torch.remainder(viewpoint.azimuth[:, None] + turns + math.pi, 2 * math.pi) - math.pi
        return Viewpoint(
            viewpoint.elevation.repeat_interleave(count),
            azimuth.reshape(-1),
            viewpoint.distance.repeat_interleave(count),
        ), scores

    def _bounded(self, raw: torch.Tensor) -> Viewpoint:
        """Raw head outputs ``(B, 4)`` -> the viewpoint in its ranges."""
        elevation_low, elevation_high = (math.radians(x) for x in self.settings.elevation_range_deg)
        distance_low, distance_high = self.settings.distance_range
        elevation = elevation_low + (elevation_high - elevation_low) * torch.sigmoid(raw[:, 0])
        distance = distance_low + (distance_high - distance_low) * torch.sigmoid(raw[:, 1])
        azimuth_xy = torch.tanh(raw[:, 2:4])
        azimuth = torch.atan2(azimuth_xy[:, 0], azimuth_xy[:, 1])
        return Viewpoint(elevation=elevation, azimuth=azimuth, distance=distance)
