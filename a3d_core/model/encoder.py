"""The image encoder of 3D-ASM and its classification branch (paper 3.3).

The encoder maps an instance input ``A_i = [I_i^a, M_i^v]`` (RGB crop of the amodal box and the
visible mask, ``(B, 4, S, S)``; ``(B, 5, S, S)`` with the occluder mask when
``ASMSettings.occluder_input`` is on) to a feature vector through five conv-bn-relu blocks and three
fully connected layers. The same class serves the shape network and, as a separate instance,
the viewpoint estimator (paper 3.4, after SMR).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class EncoderSettings:
    """Widths of the encoder.

    channels: output channels of the five conv-bn-relu blocks (each 3x3, stride 2, so the
        spatial size halves five times: 64 -> 2, 32 -> 1).
    fc_dims: output sizes of the three fully connected layers; the last is the feature size.
    """

    channels: tuple[int, ...] = (32, 64, 128, 256, 256)
    fc_dims: tuple[int, ...] = (1024, 1024, 512)

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.fc_dims = tuple(int(d) for d in self.fc_dims)
        if len(self.channels) != 5:
            raise ValueError(
                f"the encoder has five conv-bn-relu blocks (paper 3.3); got {len(self.channels)} channel counts"
            )
        if len(self.fc_dims) != 3:
            raise ValueError(f"the encoder has three fc layers (paper 3.3); got {len(self.fc_dims)} sizes")
        if min(self.channels + self.fc_dims) < 1:
            raise ValueError(f"encoder widths must be positive, got channels={self.channels}, fc_dims={self.fc_dims}")

    @property
    def feature_dim(self) -> int:
        return self.fc_dims[-1]


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """A 3x3 convolution (padding 1), batch norm and ReLU: ``(B, C_in, H, W) -> (B, C_out, H', W')``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _downsampled_size(size: int, times: int) -> int:
    for _ in range(times):
        size = (size + 1) // 2  # 3x3, stride 2, padding 1: ceil(size / 2)
    return size


class Encoder(nn.Module):
    """Five conv-bn-relu blocks + three fc layers (paper 3.3).

    forward(inputs ``(B, in_channels, S, S)``) -> features ``(B, settings.feature_dim)``. The first
    two fc layers are followed by ReLU; the last is linear, so the features are not clipped at 0.
    """

    def __init__(self, image_size: int, in_channels: int = 4, settings: EncoderSettings | None = None) -> None:
        super().__init__()
        if image_size < 1 or in_channels < 1:
            raise ValueError(f"image_size and in_channels must be positive, got {image_size}, {in_channels}")
        self.settings = settings or EncoderSettings()
        self.image_size = image_size
        self.in_channels = in_channels
        widths = (in_channels,) + self.settings.channels
        self.convs = nn.Sequential(*(conv_bn_relu(widths[i], widths[i + 1], stride=2) for i in range(5)))
        side = _downsampled_size(image_size, 5)
        flat = self.settings.channels[-1] * side * side
        fc1, fc2, fc3 = self.settings.fc_dims
        self.fcs = nn.Sequential(
            nn.Linear(flat, fc1),
            nn.ReLU(inplace=True),
            nn.Linear(fc1, fc2),
            nn.ReLU(inplace=True),
            nn.Linear(fc2, fc3),
        )

    @property
    def feature_dim(self) -> int:
        return self.settings.feature_dim

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if inputs.ndim != 4 or tuple(inputs.shape[1:]) != expected:
            raise ValueError(
                f"encoder expects (B, {expected[0]}, {expected[1]}, {expected[2]}), got {tuple(inputs.shape)}"
            )
        return self.fcs(self.convs(inputs).flatten(1))


class ClassificationBranch(nn.Module):
    """Predicts the instance's category from the encoder features (paper 3.3).

    forward(features ``(B, D)``) -> logits ``(B, C)``; row ``c`` belongs to ``category_names[c]``,
    which lets a fine-tune copy rows between datasets by category name (paper 3.7).
    """

    def __init__(self, feature_dim: int, category_names: list[str]) -> None:
        super().__init__()
        if not category_names:
            raise ValueError("the classification branch needs at least one category")
        self.category_names = list(category_names)
        self.linear = nn.Linear(feature_dim, len(category_names))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)

    def category_state(self, name: str) -> dict[str, torch.Tensor]:
        """The weight row and bias of category ``name`` (copies)."""
        row = self._row(name)
        return {"weight": self.linear.weight.detach()[row].clone(), "bias": self.linear.bias.detach()[row].clone()}

    def load_category_state(self, name: str, state: dict[str, torch.Tensor]) -> None:
        """Overwrite category ``name``'s row with ``state`` from :meth:`category_state`."""
        row = self._row(name)
        weight, bias = state["weight"], state["bias"]
        if weight.shape != self.linear.weight.shape[1:] or bias.shape != ():
            raise ValueError(
                f"classifier state for {name!r} has shapes {tuple(weight.shape)}, {tuple(bias.shape)}; "
                f"expected ({self.linear.weight.shape[1]},), ()"
            )
        with torch.no_grad():
            self.linear.weight[row].copy_(weight)
            self.linear.bias[row].copy_(bias)

    def _row(self, name: str) -> int:
        if name not in self.category_names:
            raise KeyError(f"unknown category {name!r} (known: {', '.join(self.category_names)})")
        return self.category_names.index(name)
