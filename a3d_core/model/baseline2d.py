"""The 2D baseline's coarse-mask branch: encoder features -> a 2D amodal mask, no mesh, no renderer.

It replaces 3D-ASM's shape decoder + viewpoint estimator + renderer (``asm.MeshMaskBranch``) and
keeps everything else (the same encoder, classification branch, edge refine, losses where they
apply), so comparing the two measures the value of the 3D shape prior (issue 4, item 4). The
decoder is class-agnostic: a fully connected layer to a ``S/8 x S/8`` feature map, then three
upsampling conv-bn-relu stages to ``S x S`` and a 1x1 convolution to mask logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from a3d_core.model.encoder import conv_bn_relu
from a3d_core.model.mask_branch import MaskBranchOutput


@dataclass
class MaskDecoder2DSettings:
    """channels: widths at ``S/8``, ``S/4``, ``S/2`` and ``S`` (the first is the fc layer's map)."""

    channels: tuple[int, ...] = (128, 64, 32, 32)

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if len(self.channels) != 4 or min(self.channels) < 1:
            raise ValueError(f"channels must be four positive widths, got {self.channels}")


class MaskDecoder2D(nn.Module):
    """forward(features ``(B, D)``, inputs ``(B, 4, S, S)``, categories ``(B,)``) -> a
    :class:`~a3d_core.model.mask_branch.MaskBranchOutput` with the coarse mask ``(B, S, S)`` only.

    ``inputs`` and ``categories`` are accepted for the branch interface and not used.
    """

    def __init__(self, feature_dim: int, image_size: int, settings: MaskDecoder2DSettings | None = None) -> None:
        super().__init__()
        if image_size % 8:
            raise ValueError(f"the 2D mask decoder needs an image size divisible by 8, got {image_size}")
        self.settings = settings or MaskDecoder2DSettings()
        widths = self.settings.channels
        self.start_size = image_size // 8
        self.to_map = nn.Sequential(nn.Linear(feature_dim, widths[0] * self.start_size**2), nn.ReLU(inplace=True))
        self.stages = nn.ModuleList(conv_bn_relu(widths[i], widths[i + 1]) for i in range(3))
        self.to_logits = nn.Conv2d(widths[-1], 1, kernel_size=1)

    def forward(self, features: torch.Tensor, inputs: torch.Tensor, categories: torch.Tensor) -> MaskBranchOutput:
        maps = self.to_map(features).view(
            features.shape[0], self.settings.channels[0], self.start_size, self.start_size
        )
        for stage in self.stages:
            maps = stage(F.interpolate(maps, scale_factor=2.0, mode="bilinear", align_corners=False))
        return MaskBranchOutput(coarse_mask=torch.sigmoid(self.to_logits(maps).squeeze(1)))
