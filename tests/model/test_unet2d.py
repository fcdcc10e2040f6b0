"""The U-Net 2D baseline: the branch contract and a parameter count matched to A3D's active parameters."""

import pytest
import torch
import torch.nn.functional as F

from a3d_core.model.asm import ASMSettings, build_stage2
from a3d_core.model.unet2d import UNet2DSettings, UNetMaskDecoder, unet_down, unet_maps, unet_up


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


def test_unet_maps_in_channels_last_equal_the_default_layout():
    """unet_maps runs its blocks channels-last; the same blocks on the default (NCHW) layout, written
    out here, give the same maps and gradients to float rounding."""
    torch.manual_seed(1)
    # Evaluation mode: in training mode the batch statistics' gradients cancel so much that float32
    # itself is ~1e-3 from float64 in the first layer, whatever the layout.
    down, up = unet_down(5, (16, 32, 64, 128)).eval(), unet_up((16, 32, 64, 128)).eval()
    inputs, bottleneck = torch.rand(4, 5, 32, 32), torch.rand(4, 128)

    def default_layout(inputs: torch.Tensor, bottleneck: torch.Tensor) -> torch.Tensor:
        skips, maps = [], inputs
        for level, block in enumerate(down):
            maps = block(maps if level == 0 else F.max_pool2d(maps, 2)).contiguous()
            skips.append(maps)
        maps = F.relu(maps + bottleneck[:, :, None, None])
        for block, skip in zip(up, reversed(skips[:-1])):
            upsampled = F.interpolate(maps, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            maps = block(torch.cat([upsampled, skip], 1)).contiguous()
        return maps

    results = []
    for maps_of in (unet_maps, default_layout):
        down.zero_grad()
        up.zero_grad()
        maps = maps_of(down, up, inputs, bottleneck) if maps_of is unet_maps else maps_of(inputs, bottleneck)
        (maps * torch.linspace(-1, 1, maps.numel()).view_as(maps)).sum().backward()
        results.append((maps.detach(), down[0][0][0].weight.grad.clone()))
    (maps, gradient), (expected_maps, expected_gradient) = results
    assert maps.is_contiguous(memory_format=torch.channels_last) and expected_maps.is_contiguous()
    assert torch.allclose(maps, expected_maps, atol=1e-5 * expected_maps.abs().max().item())
    assert (gradient - expected_gradient).norm() < 1e-5 * expected_gradient.norm()
