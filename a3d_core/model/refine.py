"""Region-specific edge refine: coarse amodal mask + RGB crop + visible mask -> final mask (paper 3.5).

Three conv-bn-relu layers (kernel 3) read the concatenation ``[M~^a, I^a, M^v]`` (5 channels)
and a 1x1 convolution turns their features into per-pixel logits of the refined amodal mask
(the ReLU of the last block would otherwise clip the logits at 0). Its loss (``losses.py``, L_E)
weighs pixels inside the visible region more, where the image shows the true edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from a3d_core.model.encoder import conv_bn_relu


@dataclass
class RefineSettings:
    """hidden_channels: width of the three conv-bn-relu layers."""

    hidden_channels: int = 32

    def __post_init__(self) -> None:
        if self.hidden_channels < 1:
            raise ValueError(f"hidden_channels must be positive, got {self.hidden_channels}")


class EdgeRefine(nn.Module):
    """forward(coarse ``(B, S, S)`` in [0, 1], rgb ``(B, 3, S, S)``, visible ``(B, 1, S, S)``)
    -> logits ``(B, S, S)``.
    """

    def __init__(self, settings: RefineSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or RefineSettings()
        width = self.settings.hidden_channels
        self.layers = nn.Sequential(conv_bn_relu(5, width), conv_bn_relu(width, width), conv_bn_relu(width, width))
        self.to_logits = nn.Conv2d(width, 1, kernel_size=1)

    def forward(self, coarse: torch.Tensor, rgb: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        if coarse.ndim != 3 or rgb.shape[1:2] != (3,) or visible.shape[1:2] != (1,):
            raise ValueError(
                f"edge refine expects coarse (B, S, S), rgb (B, 3, S, S), visible (B, 1, S, S); "
                f"got {tuple(coarse.shape)}, {tuple(rgb.shape)}, {tuple(visible.shape)}"
            )
        stacked = torch.cat([coarse.unsqueeze(1), rgb, visible], dim=1)
        return self.to_logits(self.layers(stacked)).squeeze(1)
