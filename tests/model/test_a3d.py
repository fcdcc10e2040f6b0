"""The two-stage network: crops and paste-back, losses of both stages, eval outputs, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from a3d_core.boxes import square_boxes
from a3d_core.errors import InputError
from a3d_core.model.a3d import A3DNetwork, A3DSettings, build_a3d, load_a3d_from_checkpoint
from a3d_core.model.stage1 import Stage1Settings
from tests.model.tiny_scenes import (
    HEIGHT,
    WIDTH,
    tiny_stage1_settings,
    tiny_stage2_settings,
    write_pretrain_checkpoint,
    write_two_stage_checkpoint,
)


class EchoStage2(nn.Module):
    """A stand-in stage 2 whose amodal crop is its visible-mask input (or all ones); records its batch."""

    is_3d = False

    def __init__(self, image_size: int, ones: bool = False) -> None:
        super().__init__()
        self.category_names = ["a", "b"]
        self.settings = tiny_stage2_settings()
        self.image_size = image_size
        self.ones = ones
        self.batches: list[dict[str, torch.Tensor]] = []

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.batches.append(batch)
        visible = batch["visible"][:, 0]
        amodal = torch.ones_like(visible) if self.ones else visible
        return {"amodal_mask": amodal, "category": batch["shape_category"]}


def _network(stage2: nn.Module, crop_scale: float = 1.0, keep_visible: bool = False) -> A3DNetwork:
    """Pasting alone by default (``keep_visible`` off), so the tests see exactly what stage 2 put back."""
    settings = A3DSettings(
        stage1=Stage1Settings(num_classes=2),
        stage2=tiny_stage2_settings(),
        crop_scale=crop_scale,
        keep_visible=keep_visible,
    )
    return A3DNetwork(nn.Identity(), stage2, settings)


def test_square_boxes_keep_the_centre_and_take_the_longer_side() -> None:
    boxes = torch.tensor([[10.0, 8.0, 40.0, 18.0], [0.0, 0.0, 4.0, 8.0]])
    expected = torch.tensor([[10.0, -2.0, 40.0, 28.0], [-2.0, 0.0, 6.0, 8.0]])
    assert torch.equal(square_boxes(boxes), expected)
    assert torch.equal(square_boxes(boxes[:1], 2.0), torch.tensor([[-5.0, -17.0, 55.0, 43.0]]))


def test_an_all_ones_crop_pastes_back_exactly_into_its_square_clipped_to_the_image() -> None:
    stage2 = EchoStage2(32, ones=True)
    network = _network(stage2)
    image = torch.rand(3, HEIGHT, WIDTH)
    boxes = torch.tensor([[10.0, 8.0, 40.0, 18.0], [50.0, 30.0, 60.0, 40.0]])  # a wide box and a square one
    visible = torch.zeros(2, HEIGHT, WIDTH)
    completed = network.complete([image], [boxes], [visible], [torch.tensor([2, 1])])[0]["amodal_masks"]

    expected = torch.zeros(2, HEIGHT, WIDTH)
    expected[0, 0:28, 10:40] = 1  # square (10, -2, 40, 28): rows -2..27 clipped to 0..27
    expected[1, 30:40, 50:60] = 1
    assert torch.equal(completed > 0, expected > 0)  # exactly the pixels whose centres are inside
    torch.testing.assert_close(completed, expected, atol=1e-6, rtol=0)  # bilinear weights sum to 1 up to rounding
    assert torch.equal(stage2.batches[0]["shape_category"], torch.tensor([1, 0]))  # labels 1..C -> indices 0..C-1


def test_a_crop_of_side_s_round_trips_through_stage2_exactly() -> None:
    """Square integer box of side S = 32: cropping the visible mask and pasting it back is the identity."""
    stage2 = EchoStage2(32)
    network = _network(stage2)
    visible = torch.zeros(1, HEIGHT, WIDTH)
    visible[0, 10:30, 20:35] = 1
    visible[0, 12, 40] = 1  # one isolated pixel, still inside the box
    visible[0, 5, 5] = 1  # outside the box: must not come back
    box = torch.tensor([[16.0, 6.0, 48.0, 38.0]])
    completed = network.complete([torch.rand(3, HEIGHT, WIDTH)], [box], [visible], [torch.tensor([1])])[0][
        "amodal_masks"
    ]

    expected = visible.clone()
    expected[0, 5, 5] = 0
    expected[0, :, :16] = 0
    assert torch.equal(completed > 0, expected > 0)
    torch.testing.assert_close(completed, expected, atol=1e-6, rtol=0)
    assert torch.equal(stage2.batches[0]["visible"][0, 0], visible[0, 6:38, 16:48])


def test_keep_visible_adds_every_visible_pixel_to_the_pasted_mask() -> None:
    network = _network(EchoStage2(32), keep_visible=True)  # stage 2 echoes the cropped visible mask
    visible = torch.zeros(1, HEIGHT, WIDTH)
    visible[0, 10:30, 20:35] = 0.8
    visible[0, 5, 5] = 1  # outside the box: stage 2 cannot see it, the visible mask keeps it
    box = torch.tensor([[16.0, 6.0, 48.0, 38.0]])
    completed = network.complete([torch.rand(3, HEIGHT, WIDTH)], [box], [visible], [torch.tensor([1])])[0][
        "amodal_masks"
    ]
    pasted_only = _network(EchoStage2(32)).complete(
        [torch.rand(3, HEIGHT, WIDTH)], [box], [visible], [torch.tensor([1])]
    )[0]["amodal_masks"]

    assert torch.equal(completed, torch.maximum(pasted_only, visible))
    assert completed[0, 5, 5] == 1 and pasted_only[0, 5, 5] == 0


def test_no_detection_gives_empty_masks_of_the_image_size() -> None:
    network = _network(EchoStage2(32))
    empty = network.complete(
        [torch.rand(3, 20, 30)], [torch.zeros(0, 4)], [torch.zeros(0, 20, 30)], [torch.zeros(0, dtype=torch.long)]
    )
    assert empty[0]["amodal_masks"].shape == (0, 20, 30)


def _targets() -> dict[str, torch.Tensor]:
    visible = torch.zeros(2, HEIGHT, WIDTH, dtype=torch.uint8)
    amodal = torch.zeros(2, HEIGHT, WIDTH, dtype=torch.uint8)
    amodal[0, 10:30, 8:32] = 1
    visible[0, 10:30, 8:20] = 1
    amodal[1, 15:40, 18:50] = 1
    visible[1] = amodal[1]
    return {
        "boxes": torch.tensor([[8.0, 10.0, 32.0, 30.0], [18.0, 15.0, 50.0, 40.0]]),
        "labels": torch.tensor([1, 2]),
        "masks": visible,
        "amodal_masks": amodal,
    }


@pytest.fixture(scope="module")
def network() -> A3DNetwork:
    torch.manual_seed(0)
    return build_a3d(["car", "chair"], A3DSettings(stage1=tiny_stage1_settings(), stage2=tiny_stage2_settings()))


def test_training_returns_both_stages_losses_and_trains_both(network: A3DNetwork) -> None:
    network.train()
    image = torch.rand(3, HEIGHT, WIDTH)
    torch.manual_seed(3)
    losses = network(([image, image], [_targets(), _targets()]))  # the training loop's batch form
    stage1_terms = {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    assert stage1_terms <= set(losses)
    assert {"stage2_reconstruction", "stage2_edge_refine", "stage2_classification"} <= set(losses)
    assert all(bool(torch.isfinite(value)) and value.ndim == 0 for value in losses.values())
    # reconstruction = mean(1 - soft IoU) lies in [0, 1]
    assert 0.0 <= float(losses["stage2_reconstruction"].detach()) <= 1.0
    network.zero_grad()
    sum(losses.values()).backward()
    assert network.stage1.roi_heads.mask_predictor.mask_fcn_logits.weight.grad.abs().sum() > 0
    assert network.stage2.encoder.parameters().__next__().grad.abs().sum() > 0

    torch.manual_seed(3)
    again = network(([image, image], [_targets(), _targets()]))
    assert all(torch.equal(losses[name], again[name]) for name in losses)  # the seeded jitter repeats


def test_training_needs_amodal_masks(network: A3DNetwork) -> None:
    network.train()
    target = {key: value for key, value in _targets().items() if key != "amodal_masks"}
    with pytest.raises(InputError, match="amodal_masks"):
        network([torch.rand(3, HEIGHT, WIDTH)], [target])


def test_eval_outputs_per_image(network: A3DNetwork) -> None:
    network.eval()
    with torch.no_grad():
        outputs = network([torch.rand(3, HEIGHT, WIDTH), torch.rand(3, 40, 40)])
    for output, size in zip(outputs, [(HEIGHT, WIDTH), (40, 40)]):
        count = len(output["boxes"])
        assert output["labels"].shape == output["scores"].shape == (count,)
        assert output["visible_masks"].shape == output["amodal_masks"].shape == (count, *size)
        assert output["vertices"].shape == (count, 42, 3) and output["faces"].shape == (80, 3)
        assert count > 0  # an untrained head scores every class near 1 / 3, above the 0.05 threshold
        assert bool(((output["amodal_masks"] >= 0) & (output["amodal_masks"] <= 1)).all())
        assert set(output["labels"].tolist()) <= {1, 2}


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    path = write_two_stage_checkpoint(tmp_path / "model.pt", ["car", "chair"], seed=1)
    loaded = load_a3d_from_checkpoint(path).eval()
    saved = torch.load(path, weights_only=True)
    assert loaded.category_names == ["car", "chair"]
    assert loaded.config() == saved["model_config"]
    assert all(torch.equal(value, saved["model"][key]) for key, value in loaded.state_dict().items())
    rebuilt = load_a3d_from_checkpoint(path).eval()
    image = torch.rand(3, HEIGHT, WIDTH)
    with torch.no_grad():
        first, second = loaded([image])[0], rebuilt([image])[0]
    assert torch.equal(first["boxes"], second["boxes"]) and torch.equal(first["amodal_masks"], second["amodal_masks"])


def test_bad_checkpoints_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_a3d_from_checkpoint(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(InputError, match="corrupt.pt: not a readable checkpoint"):
        load_a3d_from_checkpoint(corrupt)
    pretrained = write_pretrain_checkpoint(tmp_path / "pretrain.pt", ["car"])
    with pytest.raises(InputError, match="stage-2 .*a3d pretrain.*not a fine-tuned two-stage model"):
        load_a3d_from_checkpoint(pretrained)
    path = write_two_stage_checkpoint(tmp_path / "model.pt", ["car", "chair"])
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model"].pop(next(iter(checkpoint["model"])))
    torch.save(checkpoint, tmp_path / "truncated.pt")
    with pytest.raises(InputError, match="weights of another architecture.*1 missing"):
        load_a3d_from_checkpoint(tmp_path / "truncated.pt")
