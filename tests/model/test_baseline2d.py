"""The 2D baseline's mask decoder: features -> an S x S mask, no mesh and no renderer."""

import pytest
import torch

from a3d_core.model.baseline2d import MaskDecoder2D, MaskDecoder2DSettings
from a3d_core.model.mask_branch import MaskBranchOutput


def test_mask_decoder_outputs_probability_masks_and_passes_gradients():
    torch.manual_seed(0)
    decoder = MaskDecoder2D(16, 32, MaskDecoder2DSettings(channels=(8, 8, 4, 4)))
    features = torch.randn(3, 16, requires_grad=True)
    out = decoder(features, torch.rand(3, 4, 32, 32), torch.zeros(3, dtype=torch.long))
    mask = out.coarse_mask
    assert isinstance(out, MaskBranchOutput) and all(value is None for value in out[1:])  # no mesh, no camera
    assert mask.shape == (3, 32, 32) and mask.dtype == torch.float32
    assert 0.0 < mask.min() and mask.max() < 1.0
    mask.sum().backward()
    assert features.grad.abs().sum() > 0


def test_mask_decoder_settings_are_validated():
    with pytest.raises(ValueError, match="divisible by 8"):
        MaskDecoder2D(16, 36)
    with pytest.raises(ValueError, match="four positive widths"):
        MaskDecoder2DSettings(channels=(8, 8))
