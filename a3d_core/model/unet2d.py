"""A stronger 2D baseline: a U-Net-style mask decoder with skip connections (issue 12).

The plain 2D decoder (:mod:`a3d_core.model.baseline2d`) paints the amodal mask from the
encoder's global feature vector alone. This one also sees the input at every scale: a small
U-Net (Ronneberger et al., 2015) runs on the instance input ``[I^a, M^v]`` ``(B, 4, S, S)``,
the encoder's feature vector is injected at its bottleneck, and skip connections carry the
visible mask's edges to the output. Its widths are set so that its parameter count is about
that of A3D's active parameters (the viewpoint estimator's own encoder, one category's shape
decoder), so a win of A3D is not a win of capacity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from a3d_core.model.encoder import conv_bn_relu
from a3d_core.model.mask_branch import MaskBranchOutput


@dataclass
class UNet2DSettings:
    """widths: channels at ``S``, ``S/2``, ``S/4`` and ``S/8`` (the bottleneck). The default
    gives the ``2d-unet`` model about A3D's active parameter count at S = 32 with a level-2
    template (:meth:`~a3d_core.model.asm.AmodalShapeModel.active_parameter_count`; the counts:
    docs/stage2.md)."""

    widths: tuple[int, ...] = (44, 88, 176, 352)

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if len(self.widths) != 4 or min(self.widths) < 1:
            raise ValueError(f"widths must be four positive channel counts, got {self.widths}")


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(in_channels, out_channels), conv_bn_relu(out_channels, out_channels))


class UNetMaskDecoder(nn.Module):
    """forward(features ``(B, D)``, inputs ``(B, in_channels, S, S)`` (RGB, visible mask and, with
    ``ASMSettings.occluder_input``, the occluder mask), categories ``(B,)``) -> a
    :class:`~a3d_core.model.mask_branch.MaskBranchOutput` with the coarse mask ``(B, S, S)`` only.

    Class-agnostic, like the plain 2D decoder; ``categories`` is accepted for the branch
    interface and not used.
    """

    def __init__(
        self, feature_dim: int, image_size: int, in_channels: int = 4, settings: UNet2DSettings | None = None
    ) -> None:
        super().__init__()
        if image_size % 8:
            raise ValueError(f"the U-Net mask decoder needs an image size divisible by 8, got {image_size}")
        self.settings = settings or UNet2DSettings()
        widths = self.settings.widths
        self.down = unet_down(in_channels, widths)
        self.inject = nn.Linear(feature_dim, widths[3])
        self.up = unet_up(widths)
        self.to_logits = nn.Conv2d(widths[0], 1, kernel_size=1)

    def forward(self, features: torch.Tensor, inputs: torch.Tensor, categories: torch.Tensor) -> MaskBranchOutput:
        maps = unet_maps(self.down, self.up, inputs, self.inject(features))
        return MaskBranchOutput(coarse_mask=torch.sigmoid(self.to_logits(maps).squeeze(1)))


def unet_down(in_channels: int, widths: tuple[int, ...]) -> nn.ModuleList:
    """The contracting double-conv blocks of a U-Net with ``widths`` channels per level."""
    levels = range(len(widths) - 1)
    return nn.ModuleList(
        [_double_conv(in_channels, widths[0])] + [_double_conv(widths[i], widths[i + 1]) for i in levels]
    )


def unet_up(widths: tuple[int, ...]) -> nn.ModuleList:
    """The expanding double-conv blocks, each reading the upsampled maps and the skip of its level."""
    return nn.ModuleList(_double_conv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1)))


def unet_maps(
    down: nn.ModuleList, up: nn.ModuleList, inputs: torch.Tensor, bottleneck: torch.Tensor | None = None
) -> torch.Tensor:
    """U-Net feature maps ``(B, widths[0], S, S)`` of ``inputs`` ``(B, C, S, S)``; ``bottleneck``
    ``(B, widths[-1])``, if given, is added to the deepest maps before their ReLU.

    The maps are laid out channels-last (NHWC), which oneDNN's CPU convolutions run without
    reordering each block's input; the values are those of the default layout to float rounding.
    """
    skips = []
    maps = inputs.contiguous(memory_format=torch.channels_last)  # (B, C, S, S), NHWC strides
    for level, block in enumerate(down):
        maps = block(maps if level == 0 else F.max_pool2d(maps, 2))
        skips.append(maps)
    if bottleneck is not None:
        maps = F.relu(maps + bottleneck[:, :, None, None])
    for block, skip in zip(up, reversed(skips[:-1])):
        maps = block(
            torch.cat([F.interpolate(maps, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1)
        )
    return maps
