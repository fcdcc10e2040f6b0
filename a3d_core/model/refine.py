"""Region-specific edge refine: coarse amodal mask + RGB crop + visible mask -> final mask (paper 3.5).

Three conv-bn-relu layers (kernel 3) read the concatenation ``[M~^a, I^a, M^v]`` (5 channels;
6 with ``[..., M^o]``, the occluder mask, when the network takes it: ``ASMSettings.occluder_input``)
and a 1x1 convolution turns their features into per-pixel logits of the refined amodal mask
(the ReLU of the last block would otherwise clip the logits at 0). Its loss (``losses.py``, L_E)
weighs pixels inside the visible region more, where the image shows the true edge.

:class:`UNetRefine` (``RefineSettings.architecture = "unet"``, the default; not in the paper) reads the same
five channels with a small U-Net (:mod:`a3d_core.model.unet2d`): the paper's refine sees 7x7
pixels around each output, too little to mend a coarse mask that is wrong by more than an edge.
It asks whether a 3D coarse mask helps a strong 2D decoder; its default widths keep A3D's active
parameters about those of the ``2d-unet`` baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from a3d_core.model.encoder import conv_bn_relu
from a3d_core.model.unet2d import unet_down, unet_maps, unet_up

REFINE_ARCHITECTURES = ("edge", "unet")


@dataclass
class RefineSettings:
    """architecture: ``"edge"`` (the paper's three conv-bn-relu layers) or ``"unet"`` (:class:`UNetRefine`).
    hidden_channels: width of the edge refine's three layers.
    unet_widths: the U-Net refine's channels at ``S``, ``S/2``, ``S/4`` and ``S/8``."""

    hidden_channels: int = 32
    architecture: str = "unet"
    unet_widths: tuple[int, ...] = (16, 32, 64, 128)

    def __post_init__(self) -> None:
        self.unet_widths = tuple(int(w) for w in self.unet_widths)
        if self.hidden_channels < 1:
            raise ValueError(f"hidden_channels must be positive, got {self.hidden_channels}")
        if self.architecture not in REFINE_ARCHITECTURES:
            raise ValueError(f"refine architecture must be one of {REFINE_ARCHITECTURES}, got {self.architecture!r}")
        if len(self.unet_widths) != 4 or min(self.unet_widths) < 1:
            raise ValueError(f"unet_widths must be four positive channel counts, got {self.unet_widths}")


def _stacked_inputs(
    name: str,
    coarse: torch.Tensor,
    rgb: torch.Tensor,
    visible: torch.Tensor,
    occluder: torch.Tensor | None,
    reads_occluder: bool,
) -> torch.Tensor:
    """``[coarse, rgb, visible(, occluder)]`` ``(B, 5 or 6, S, S)`` of coarse ``(B, S, S)``, rgb
    ``(B, 3, S, S)``, visible and occluder ``(B, 1, S, S)``; the occluder is given exactly when the
    refine (``name``, for errors) reads it."""
    if coarse.ndim != 3 or rgb.shape[1:2] != (3,) or visible.shape[1:2] != (1,):
        raise ValueError(
            f"{name} expects coarse (B, S, S), rgb (B, 3, S, S), visible (B, 1, S, S); "
            f"got {tuple(coarse.shape)}, {tuple(rgb.shape)}, {tuple(visible.shape)}"
        )
    if (occluder is not None) != reads_occluder:
        raise ValueError(f"{name} {'reads' if reads_occluder else 'does not read'} an occluder mask")
    if occluder is not None and occluder.shape != visible.shape:
        raise ValueError(f"the occluder mask must be shaped as the visible one, got {tuple(occluder.shape)}")
    guides = [visible] if occluder is None else [visible, occluder]
    return torch.cat([coarse.unsqueeze(1), rgb, *guides], dim=1)


class EdgeRefine(nn.Module):
    """forward(coarse ``(B, S, S)`` in [0, 1], rgb ``(B, 3, S, S)``, visible ``(B, 1, S, S)``,
    occluder ``(B, 1, S, S)`` when built with ``occluder_input``, else ``None``) -> logits ``(B, S, S)``.
    """

    def __init__(self, settings: RefineSettings | None = None, occluder_input: bool = False) -> None:
        super().__init__()
        self.settings = settings or RefineSettings()
        self.occluder_input = occluder_input
        width = self.settings.hidden_channels
        channels = 6 if occluder_input else 5
        self.layers = nn.Sequential(
            conv_bn_relu(channels, width), conv_bn_relu(width, width), conv_bn_relu(width, width)
        )
        self.to_logits = nn.Conv2d(width, 1, kernel_size=1)

    def forward(
        self, coarse: torch.Tensor, rgb: torch.Tensor, visible: torch.Tensor, occluder: torch.Tensor | None = None
    ) -> torch.Tensor:
        stacked = _stacked_inputs("edge refine", coarse, rgb, visible, occluder, self.occluder_input)
        return self.to_logits(self.layers(stacked)).squeeze(1)


class UNetRefine(nn.Module):
    """forward(coarse ``(B, S, S)`` in [0, 1], rgb ``(B, 3, S, S)``, visible ``(B, 1, S, S)``,
    occluder ``(B, 1, S, S)`` or ``None``) -> logits ``(B, S, S)``, as :class:`EdgeRefine`, through a
    U-Net (S divisible by 8)."""

    def __init__(self, settings: RefineSettings | None = None, occluder_input: bool = False) -> None:
        super().__init__()
        self.settings = settings or RefineSettings(architecture="unet")
        self.occluder_input = occluder_input
        self.down = unet_down(6 if occluder_input else 5, self.settings.unet_widths)
        self.up = unet_up(self.settings.unet_widths)
        self.to_logits = nn.Conv2d(self.settings.unet_widths[0], 1, kernel_size=1)

    def forward(
        self, coarse: torch.Tensor, rgb: torch.Tensor, visible: torch.Tensor, occluder: torch.Tensor | None = None
    ) -> torch.Tensor:
        if coarse.shape[-1] % 8:
            raise ValueError(f"the U-Net refine needs S divisible by 8, got coarse {tuple(coarse.shape)}")
        stacked = _stacked_inputs("the U-Net refine", coarse, rgb, visible, occluder, self.occluder_input)
        return self.to_logits(unet_maps(self.down, self.up, stacked)).squeeze(1)


def build_refine(settings: RefineSettings, occluder_input: bool = False) -> EdgeRefine | UNetRefine:
    """The refine ``settings.architecture`` names; with ``occluder_input`` it also reads the occluder mask."""
    refine_class = UNetRefine if settings.architecture == "unet" else EdgeRefine
    return refine_class(settings, occluder_input)
