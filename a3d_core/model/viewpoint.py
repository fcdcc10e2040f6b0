"""The viewpoint estimator: instance input -> camera elevation, distance and azimuth (paper 3.4).

Following SMR, it has its own encoder (five conv-bn-relu blocks + three fc layers) and predicts
``[e, d, (a_x, a_y)]`` with azimuth ``a = atan2(a_x, a_y)``. Every output is bounded:
elevation and distance by a scaled sigmoid into their ranges, ``(a_x, a_y)`` by ``tanh`` (the
azimuth itself covers the whole circle). It is never supervised with viewpoints; only the
rendered silhouettes' losses train it. The initial prediction is Kato's ShapeNet camera
(elevation 30 degrees, distance 2.732): the head's bias is set to reach it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from a3d_core.geometry import KATO_DISTANCE, KATO_ELEVATION_DEG, Viewpoint
from a3d_core.model.encoder import Encoder, EncoderSettings


@dataclass
class ViewpointSettings:
    """elevation_range_deg, distance_range: ``(low, high)`` bounds of the predictions.
    initial_elevation_deg, initial_distance: what the untrained estimator predicts (inside the ranges).
    head_init_std: std of the initial head weights (small: early predictions stay near the initial view).
    encoder: widths of the estimator's own encoder.
    """

    elevation_range_deg: tuple[float, float] = (-30.0, 75.0)
    distance_range: tuple[float, float] = (2.0, 3.5)
    initial_elevation_deg: float = KATO_ELEVATION_DEG
    initial_distance: float = KATO_DISTANCE
    head_init_std: float = 1e-3
    encoder: EncoderSettings = field(default_factory=EncoderSettings)

    def __post_init__(self) -> None:
        self.elevation_range_deg = tuple(float(x) for x in self.elevation_range_deg)
        self.distance_range = tuple(float(x) for x in self.distance_range)
        if isinstance(self.encoder, dict):
            self.encoder = EncoderSettings(**self.encoder)
        low, high = self.elevation_range_deg
        if not -90.0 < low < high < 90.0:
            raise ValueError(f"elevation_range_deg must satisfy -90 < low < high < 90 (look-at cameras flip at the poles), got {self.elevation_range_deg}")
        if not low < self.initial_elevation_deg < high:
            raise ValueError(f"initial_elevation_deg {self.initial_elevation_deg} is outside elevation_range_deg {self.elevation_range_deg}")
        low, high = self.distance_range
        if not 0.0 < low < high:
            raise ValueError(f"distance_range must satisfy 0 < low < high, got {self.distance_range}")
        if not low < self.initial_distance < high:
            raise ValueError(f"initial_distance {self.initial_distance} is outside distance_range {self.distance_range}")
        if self.head_init_std < 0:
            raise ValueError(f"head_init_std must be non-negative, got {self.head_init_std}")


def _inverse_sigmoid_fraction(value: float, low: float, high: float) -> float:
    fraction = (value - low) / (high - low)
    return math.log(fraction / (1.0 - fraction))


class ViewpointEstimator(nn.Module):
    """forward(inputs ``(B, 4, S, S)``) -> :class:`~a3d_core.geometry.Viewpoint` of B (radians)."""

    def __init__(self, image_size: int, in_channels: int = 4, settings: ViewpointSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or ViewpointSettings()
        self.encoder = Encoder(image_size, in_channels, self.settings.encoder)
        self.head = nn.Linear(self.encoder.feature_dim, 4)  # elevation, distance, a_x, a_y
        nn.init.normal_(self.head.weight, std=self.settings.head_init_std)
        with torch.no_grad():
            self.head.bias.copy_(torch.tensor([
                _inverse_sigmoid_fraction(self.settings.initial_elevation_deg, *self.settings.elevation_range_deg),
                _inverse_sigmoid_fraction(self.settings.initial_distance, *self.settings.distance_range),
                0.0,
                1.0,  # (a_x, a_y) = (0, tanh 1): azimuth 0 with a well-conditioned atan2
            ]))

    def forward(self, inputs: torch.Tensor) -> Viewpoint:
        raw = self.head(self.encoder(inputs))
        elevation_low, elevation_high = (math.radians(x) for x in self.settings.elevation_range_deg)
        distance_low, distance_high = self.settings.distance_range
        elevation = elevation_low + (elevation_high - elevation_low) * torch.sigmoid(raw[:, 0])
        distance = distance_low + (distance_high - distance_low) * torch.sigmoid(raw[:, 1])
        azimuth_xy = torch.tanh(raw[:, 2:4])
        azimuth = torch.atan2(azimuth_xy[:, 0], azimuth_xy[:, 1])
        return Viewpoint(elevation=elevation, azimuth=azimuth, distance=distance)
