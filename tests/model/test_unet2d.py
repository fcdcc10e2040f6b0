"""The U-Net 2D baseline: the branch contract and a parameter count matched to A3D's active parameters."""

import pytest
import torch

from a3d_core.model.asm import ASMSettings, build_stage2
from a3d_core.model.unet2d import UNet2DSettings, UNetMaskDecoder


def test_unet_maps_inputs_to_a_mask_of_their_size_and_learns():
    torch.manual_seed(0)
    decoder = UNetMaskDecoder(feature_dim=8, image_size=16, settings=UNet2DSettings(widths=(4, 8, 8, 16)))
    inputs = torch.rand(3, 4, 16, 16)
    target = inputs[:, 3] > 0.5  # the visible channel itself: only skips see it at full resolution
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        mask = decoder(torch.zeros(3, 8), inputs, torch.zeros(3, dtype=torch.long)).coarse_mask
        loss = torch.nn.functional.binary_cross_entropy(mask, target.float())
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert mask.shape == (3, 16, 16) and 0 <= mask.min().item() and mask.max().item() <= 1
    assert loss.item() < 0.3 * first  # a pixel-exact copy of an input channel is learnable
    with pytest.raises(ValueError, match="divisible by 8"):
        UNetMaskDecoder(8, 20)


def test_default_unet_has_about_a3ds_active_parameter_count():
    settings = ASMSettings(image_size=32, template_level=2)
    names = [f"c{i}" for i in range(13)]
    a3d = build_stage2("a3d", names, settings).active_parameter_count()
    unet = build_stage2("2d-unet", names, settings).active_parameter_count()
    plain = build_stage2("2d", names, settings).active_parameter_count()
    assert abs(unet - a3d) < 0.1 * a3d and plain < 0.7 * a3d
