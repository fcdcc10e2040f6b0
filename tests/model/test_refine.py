"""The refines on [coarse, RGB, visible]: the paper's edge refine (3 conv-bn-relu, kernel 3; 3.5) and the U-Net one."""

import pytest
import torch

from a3d_core.model.refine import EdgeRefine, RefineSettings, UNetRefine, build_refine


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


# ------------------------------------------------------------------------------ the U-Net refine
def test_unet_refine_reaches_across_the_mask_where_the_edge_refine_cannot():
    """The logits at the centre depend on the coarse mask 10 and more pixels away through the U-Net
    refine; the paper's refine sees 7x7 pixels (three 3x3 convolutions): no gradient from there."""
    torch.manual_seed(0)
    rgb, visible = torch.rand(1, 3, 32, 32), torch.ones(1, 1, 32, 32)
    edge = EdgeRefine(RefineSettings(hidden_channels=4)).eval()
    unet = build_refine(RefineSettings(architecture="unet", unet_widths=(4, 4, 8, 8))).eval()
    assert isinstance(unet, UNetRefine) and isinstance(build_refine(RefineSettings(architecture="edge")), EdgeRefine)
    far = []
    for refine in (edge, unet):
        coarse = torch.rand(1, 32, 32, requires_grad=True)
        logits = refine(coarse, rgb, visible)
        assert logits.shape == (1, 32, 32)
        logits[0, 14:18, 14:18].sum().backward()
        far.append(coarse.grad[0, :, 26:].abs().sum().item())
    assert far[0] == 0.0 and far[1] > 0.0


def test_unet_refine_settings_and_inputs_are_checked():
    with pytest.raises(ValueError, match="refine architecture must be one of"):
        RefineSettings(architecture="transformer")
    with pytest.raises(ValueError, match="unet_widths must be four"):
        RefineSettings(unet_widths=(4, 8))
    with pytest.raises(ValueError, match="S divisible by 8"):
        UNetRefine()(torch.rand(1, 12, 12), torch.rand(1, 3, 12, 12), torch.ones(1, 1, 12, 12))


def test_a3d_with_the_unet_refine_trains_and_rebuilds_from_its_config():
    from a3d_core.model.asm import build_stage2, build_stage2_from_config
    from tests.model.conftest import make_batch, tiny_settings

    torch.manual_seed(0)
    model = build_stage2("a3d", ["car", "chair"], tiny_settings(refine=RefineSettings(architecture="unet")))
    assert isinstance(model.refine, UNetRefine)
    losses = model.train()(make_batch(2))
    losses["edge_refine"].backward()
    assert model.refine.to_logits.weight.grad.abs().sum() > 0
    rebuilt = build_stage2_from_config(model.config())
    assert isinstance(rebuilt.refine, UNetRefine) and rebuilt.settings.refine == model.settings.refine
