"""Region-specific edge refine: 3 conv-bn-relu (kernel 3) on [coarse, RGB, visible] (paper 3.5)."""

import pytest
import torch

from a3d_core.model.refine import EdgeRefine, RefineSettings


def test_refine_returns_logits_and_passes_gradients_to_the_coarse_mask():
    torch.manual_seed(0)
    refine = EdgeRefine(RefineSettings(hidden_channels=4))
    coarse = torch.rand(2, 16, 16, requires_grad=True)
    logits = refine(coarse, torch.rand(2, 3, 16, 16), torch.ones(2, 1, 16, 16))
    assert logits.shape == (2, 16, 16) and logits.dtype == torch.float32
    assert (logits < 0).any()  # logits, not ReLU outputs
    logits.sum().backward()
    assert coarse.grad.abs().sum() > 0
    convs = [m for m in refine.layers.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3 and all(c.kernel_size == (3, 3) for c in convs)


def test_refine_rejects_misshaped_inputs():
    with pytest.raises(ValueError, match="edge refine expects"):
        EdgeRefine()(torch.rand(2, 1, 16, 16), torch.rand(2, 3, 16, 16), torch.ones(2, 1, 16, 16))
