"""The occluder input (``ASMSettings.occluder_input``): a fifth input channel that reaches every
part reading the instance input, only when on; the derived occluder of a scene's instances."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from a3d_core.errors import InputError
from a3d_core.model.a3d import A3DNetwork, A3DSettings, complete_instances, other_instances_masks
from a3d_core.model.asm import ASMSettings, build_stage2
from a3d_core.model.losses import LossSettings
from a3d_core.model.refine import RefineSettings
from a3d_core.model.stage1 import Stage1Settings
from a3d_core.model.unet2d import UNet2DSettings
from tests.model.conftest import CATEGORIES, SIZE, make_batch, tiny_settings

UNET = UNet2DSettings(widths=(8, 8, 16, 16))


def _occluders(batch_size: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Two different occluder masks ``(B, 1, S, S)``: the left half, and the top half."""
    left, top = torch.zeros(batch_size, 1, SIZE, SIZE), torch.zeros(batch_size, 1, SIZE, SIZE)
    left[..., : SIZE // 2] = 1.0
    top[..., : SIZE // 2, :] = 1.0
    return left, top


def _model(kind: str, occluder_input: bool, **overrides):
    torch.manual_seed(0)
    model = build_stage2(kind, CATEGORIES, tiny_settings(occluder_input=occluder_input, unet=UNET, **overrides))
    if model.needs_fitting:
        model.fit_to_masks(make_batch(4)["amodal"][:, 0], torch.tensor([0, 1, 0, 1]))
    return model.eval()


def _part_outputs(model, batch) -> dict[str, torch.Tensor]:
    """The output of every part that reads the instance input, for one evaluation pass."""
    parts = {"encoder": model.encoder, "refine": model.refine}
    if model.is_3d:
        parts["viewpoint"] = model.mask_branch.viewpoint_estimator.encoder
    elif model.kind == "2d-unet":
        parts["unet"] = model.mask_branch
    seen = {}
    hooks = [
        module.register_forward_hook(
            lambda _module, _inputs, output, name=name: seen.__setitem__(
                name, output.coarse_mask if name == "unet" else output
            )
        )
        for name, module in parts.items()
    ]
    with torch.no_grad():
        seen["amodal_mask"] = model(batch)["amodal_mask"]
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("kind", ["a3d", "2d", "2d-unet", "shapedict"])
def test_the_occluder_changes_every_part_when_on(kind):
    left, top = _occluders()
    batch = make_batch()
    model = _model(kind, occluder_input=True)
    first = _part_outputs(model, {**batch, "occluder": left})
    second = _part_outputs(model, {**batch, "occluder": top})
    expected = {"encoder", "refine", "amodal_mask"} | ({"viewpoint"} if kind == "a3d" else set())
    expected |= {"unet"} if kind == "2d-unet" else set()
    assert set(first) == expected
    for name in expected:
        assert not torch.allclose(first[name], second[name]), name


@pytest.mark.parametrize("kind", ["a3d", "2d-unet"])
def test_the_occluder_is_ignored_when_off(kind):
    left, top = _occluders()
    batch = make_batch()
    model = _model(kind, occluder_input=False)
    without = _part_outputs(model, batch)
    for occluder in (left, top):
        with_occluder = _part_outputs(model, {**batch, "occluder": occluder})
        assert all(torch.equal(without[name], with_occluder[name]) for name in without)


@pytest.mark.parametrize("kind", ["a3d", "2d-unet"])
def test_on_and_off_share_state_dict_keys_and_differ_only_in_the_first_layers(kind):
    off = _model(kind, occluder_input=False).state_dict()
    on = _model(kind, occluder_input=True).state_dict()
    assert list(on) == list(off)
    wider = sorted(key for key in off if on[key].shape != off[key].shape)
    assert wider  # the first convolution of every part that reads the input
    for key in wider:
        assert off[key].shape[1] + 1 == on[key].shape[1] and off[key].shape[1] in (4, 5)


def test_off_is_the_default_and_old_configs_load_with_it_off():
    assert ASMSettings().occluder_input is False and ASMSettings().input_channels == 4
    old = tiny_settings().to_dict()
    del old["occluder_input"]
    assert ASMSettings.from_dict(old).occluder_input is False
    assert ASMSettings.from_dict(tiny_settings(occluder_input=True).to_dict()).input_channels == 5


def test_a_batch_without_the_occluder_is_refused_in_training_and_evaluation():
    model = _model("a3d", occluder_input=True)
    with pytest.raises(InputError, match="occluder_input is on: the batch needs 'occluder'"):
        model(make_batch())
    with pytest.raises(InputError, match="occluder_input is on"):
        model.train()(make_batch())
    with pytest.raises(InputError, match=r"batch\['occluder'\] must be \(B, 1, 32, 32\)"):
        model({**make_batch(), "occluder": torch.zeros(2, 2, SIZE, SIZE)})


def test_cross_view_and_the_view_cycle_train_with_the_occluder():
    left, top = _occluders()
    batch = make_batch()
    pairs = {f"{key}_pair": value for key, value in make_batch(seed=1).items()}
    model = _model(
        "a3d",
        occluder_input=True,
        cross_view_weight=1.0,
        losses=LossSettings(view_cycle_camera=1.0, view_cycle_shape=1.0),
        refine=RefineSettings(hidden_channels=8, architecture="unet", unet_widths=(4, 4, 8, 8)),
    ).train()
    with pytest.raises(InputError, match="'occluder_pair'"):
        model({**batch, **pairs, "occluder": left})
    losses = model({**batch, **pairs, "occluder": left, "occluder_pair": top})
    assert {"cross_view", "view_cycle_camera", "view_cycle_shape"} <= set(losses)
    sum(losses.values()).backward()
    first_conv = model.encoder.convs[0][0].weight
    assert first_conv.shape[1] == 5 and first_conv.grad[:, 4].abs().sum() > 0


# ------------------------------------------------------------------------ derived at inference
def _three_instances() -> torch.Tensor:
    """Visible masks ``(3, 32, 32)`` of three instances of one image, two of them touching."""
    visible = torch.zeros(3, SIZE, SIZE)
    visible[0, 4:20, 4:14] = 1
    visible[1, 10:28, 14:24] = 1
    visible[2, 2:8, 20:30] = 1
    return visible


def test_each_instance_s_occluder_is_the_union_of_the_others_visible_masks():
    visible = _three_instances()
    occluders = other_instances_masks(visible)
    for k in range(3):
        others = [visible[j] for j in range(3) if j != k]
        assert torch.equal(occluders[k], torch.maximum(*others))
    assert torch.equal(other_instances_masks(visible[:1]), torch.zeros(1, SIZE, SIZE))


class RecordingStage2(nn.Module):
    """A stand-in stage 2 with the occluder input on: echoes the visible mask, records its batch."""

    def __init__(self) -> None:
        super().__init__()
        self.settings = tiny_settings(occluder_input=True)
        self.batches: list[dict[str, torch.Tensor]] = []

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.batches.append(batch)
        return {"amodal_mask": batch["visible"][:, 0], "category": batch["shape_category"]}


def _network(stage2: nn.Module) -> A3DNetwork:
    settings = A3DSettings(stage1=Stage1Settings(num_classes=2), stage2=tiny_settings(), crop_scale=1.0)
    return A3DNetwork(nn.Identity(), stage2, settings)


def test_complete_gives_each_instance_the_others_visible_masks_cropped_like_its_own():
    """Boxes covering the whole 32 x 32 image at crop side 32: each crop is the image itself."""
    visible = _three_instances()
    stage2 = RecordingStage2()
    boxes = torch.tensor([[0.0, 0.0, 32.0, 32.0]] * 3)
    _network(stage2).complete([torch.rand(3, SIZE, SIZE)], [boxes], [visible], [torch.tensor([1, 2, 1])])
    batch = stage2.batches[0]
    assert torch.equal(batch["visible"][:, 0], visible)
    assert torch.equal(batch["occluder"][:, 0], other_instances_masks(visible))


def test_instances_left_uncompleted_still_hide_the_completed_ones():
    """Instance 2 is kept as its visible mask (not completed): it is in the others' occluders."""
    visible = _three_instances()
    stage2 = RecordingStage2()
    settings = _network(stage2).settings
    boxes = torch.tensor([[0.0, 0.0, 32.0, 32.0]] * 2)
    image = torch.rand(3, SIZE, SIZE)
    complete_instances(stage2, settings, [image], [boxes], [visible[:2]], [torch.tensor([1, 2])], [visible[2:]])
    assert torch.equal(stage2.batches[0]["occluder"][:, 0], other_instances_masks(visible)[:2])
    complete_instances(stage2, settings, [image], [boxes], [visible[:2]], [torch.tensor([1, 2])])
    assert torch.equal(stage2.batches[1]["occluder"][:, 0], visible[[1, 0]])


def test_complete_builds_no_occluder_for_a_network_that_does_not_read_it():
    stage2 = RecordingStage2()
    stage2.settings = tiny_settings()
    boxes = torch.tensor([[0.0, 0.0, 32.0, 32.0]] * 3)
    _network(stage2).complete([torch.rand(3, SIZE, SIZE)], [boxes], [_three_instances()], [torch.tensor([1, 2, 1])])
    assert "occluder" not in stage2.batches[0]


def test_two_stage_training_crops_carry_the_other_ground_truth_instances_visible_masks():
    visible = _three_instances()
    stage2 = RecordingStage2()
    network = _network(stage2)
    network.settings.jitter = 0.0
    target = {
        "boxes": torch.tensor([[0.0, 0.0, 32.0, 32.0]] * 3),
        "labels": torch.tensor([1, 2, 1]),
        "masks": visible.to(torch.uint8),
        "amodal_masks": visible.to(torch.uint8),
    }
    crops = network._ground_truth_instances([torch.rand(3, SIZE, SIZE)], [target])[0]
    order = [int(torch.nonzero((crops["visible"][i, 0] == visible).all(-1).all(-1))[0]) for i in range(3)]
    assert torch.equal(crops["occluder"][:, 0], other_instances_masks(visible)[order])
