import math

import numpy as np
import pytest
import torch
import torchvision
from torchvision.ops.misc import FrozenBatchNorm2d

from a3d_core.data.detection import AmodalDetectionDataset, stage1_targets
from a3d_core.errors import InputError
from a3d_core.model.stage1 import (
    Stage1MaskRCNN,
    Stage1Settings,
    load_backbone_weights,
    load_detector_weights,
)
from tests.data.amodal_scene import BOX_A, BOX_B, scene_masks, write_scene_dataset

PREDICTOR_KEYS = [
    "roi_heads.box_predictor.cls_score.weight",
    "roi_heads.box_predictor.cls_score.bias",
    "roi_heads.box_predictor.bbox_pred.weight",
    "roi_heads.box_predictor.bbox_pred.bias",
    "roi_heads.mask_predictor.mask_fcn_logits.weight",
    "roi_heads.mask_predictor.mask_fcn_logits.bias",
]


def tiny_settings(**changes):
    """Small enough for a CPU test: 96 x 128 images, a few dozen proposals."""
    values = dict(
        num_classes=2,
        backbone="mobilenet_v3-fpn",
        min_size=96,
        max_size=128,
        rpn_pre_nms_top_n_train=64,
        rpn_post_nms_top_n_train=32,
        rpn_pre_nms_top_n_test=64,
        rpn_post_nms_top_n_test=32,
        rpn_batch_size_per_image=64,
        box_batch_size_per_image=16,
        box_detections_per_img=5,
        box_score_thresh=0.0,
    )
    values.update(changes)
    return Stage1Settings(**values)


def tiny_model(seed=0, **changes):
    torch.manual_seed(seed)
    return Stage1MaskRCNN(tiny_settings(**changes))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    dataset = write_scene_dataset(tmp_path_factory.mktemp("stage1") / "scene")
    return AmodalDetectionDataset(dataset, "train")


def test_stage1_targets_are_amodal_boxes_and_visible_masks(scene):
    record = scene.images[0]
    annotations = scene.split.annotations
    targets = stage1_targets(annotations, record["height"], record["width"], scene.categories.label)
    masks = scene_masks()
    assert set(targets) == {"boxes", "labels", "masks"}
    assert targets["boxes"].tolist() == [list(BOX_A), list(BOX_B)]  # amodal, crowd left out
    assert targets["labels"].tolist() == [2, 1]
    assert np.array_equal(targets["masks"][0].numpy(), masks["visible_a"])  # visible, not amodal
    assert not np.array_equal(targets["masks"][0].numpy(), masks["amodal_a"])
    assert np.array_equal(targets["masks"][1].numpy(), masks["amodal_b"])  # B is not occluded


def test_train_mode_returns_finite_losses_and_three_steps_lower_them(scene):
    image, target = scene[0]
    model = tiny_model(seed=0).train()

    def losses_with_fixed_sampling():
        # The RPN and box head sample anchors and proposals at random: fix that draw so two
        # measurements differ only by the weights.
        torch.manual_seed(123)
        with torch.no_grad():
            return model([image], [target])

    before = losses_with_fixed_sampling()
    assert set(before) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    assert all(math.isfinite(value.item()) and value.item() >= 0 for value in before.values())
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)  # paper 4.2
    for _ in range(3):
        total = sum(model([image], [target]).values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    after = losses_with_fixed_sampling()
    assert sum(after.values()) < 0.75 * sum(before.values()), (before, after)
    assert after["loss_mask"] < before["loss_mask"] and after["loss_classifier"] < before["loss_classifier"]


def test_eval_mode_returns_boxes_labels_scores_and_full_image_masks(scene):
    image, _ = scene[0]
    model = tiny_model().eval()
    with torch.no_grad():
        (detections,) = model([image])
    count = len(detections["boxes"])
    assert 1 <= count <= 5
    assert detections["boxes"].shape == (count, 4) and detections["scores"].shape == (count,)
    assert detections["masks"].shape == (count, 1, 96, 128)
    assert ((detections["labels"] >= 1) & (detections["labels"] <= 2)).all()
    assert (detections["masks"] >= 0).all() and (detections["masks"] <= 1).all()
    boxes = detections["boxes"]
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 128).all() and (boxes[:, 3] <= 96).all()


def test_settings_are_validated():
    with pytest.raises(ValueError, match="backbone must be one of"):
        Stage1Settings(num_classes=2, backbone="vgg16")
    with pytest.raises(ValueError, match="trainable_layers must be in 0..5"):
        Stage1Settings(num_classes=2, backbone="resnet18-fpn", trainable_layers=6)
    with pytest.raises(ValueError, match="num_classes"):
        Stage1Settings(num_classes=0)
    with pytest.raises(ValueError, match="min_size <= max_size"):
        Stage1Settings(num_classes=1, min_size=200, max_size=100)
    with pytest.raises(ValueError, match="norm must be one of"):
        Stage1Settings(num_classes=1, norm="layer")
    with pytest.raises(ValueError, match="anchor_sizes must be 5 increasing"):
        Stage1Settings(num_classes=1, anchor_sizes=(16, 32, 32, 64, 128))


def test_anchor_sizes_set_one_size_per_fpn_level_or_every_size_on_each_mobilenet_map():
    sizes = (16, 32, 64, 128, 256)
    resnet = tiny_model(backbone="resnet18-fpn", anchor_sizes=sizes).rpn.anchor_generator
    mobilenet = tiny_model(backbone="mobilenet_v3-fpn", anchor_sizes=sizes).rpn.anchor_generator
    assert resnet.sizes == tuple((size,) for size in sizes)
    assert mobilenet.sizes == (sizes,) * 3


def test_a_scratch_backbone_can_use_group_norm_and_a_pretrained_one_keeps_frozen_batchnorm():
    scratch = tiny_model(backbone="mobilenet_v3-fpn", norm="group")
    norms = [m for m in scratch.backbone.modules() if isinstance(m, (torch.nn.GroupNorm, torch.nn.BatchNorm2d))]
    assert norms and all(isinstance(m, torch.nn.GroupNorm) for m in norms)
    assert all(m.num_channels % m.num_groups == 0 and m.num_groups <= 32 for m in norms)  # 16, 24, 40... channels fit
    assert {m.num_groups for m in norms} >= {8, 16, 32}
    pretrained = tiny_model(backbone="resnet18-fpn", norm="group", pretrained_backbone=True)
    assert isinstance(pretrained.backbone.body.bn1, FrozenBatchNorm2d)


def test_pretrained_backbones_freeze_batchnorm_and_the_lower_layers():
    model = tiny_model(backbone="resnet18-fpn", pretrained_backbone=True)
    body = model.backbone.body
    assert isinstance(body.bn1, FrozenBatchNorm2d)
    assert not body.conv1.weight.requires_grad and not body.layer1[0].conv1.weight.requires_grad
    assert body.layer2[0].conv1.weight.requires_grad and body.layer4[0].conv1.weight.requires_grad
    scratch = tiny_model(backbone="resnet18-fpn")
    assert isinstance(scratch.backbone.body.bn1, torch.nn.BatchNorm2d)
    assert all(p.requires_grad for p in scratch.backbone.parameters())


def test_detector_weights_round_trip_gives_the_same_outputs(scene, tmp_path):
    image, _ = scene[0]
    source = tiny_model(seed=0).eval()
    torch.save(source.state_dict(), tmp_path / "detector.pth")
    target = tiny_model(seed=1).eval()
    report = load_detector_weights(target, tmp_path / "detector.pth")
    assert report.loaded == len(source.state_dict()) and report.skipped == []
    with torch.no_grad():
        expected, loaded = source([image])[0], target([image])[0]
    for key in ("boxes", "labels", "scores", "masks"):
        assert torch.equal(expected[key], loaded[key]), key


def test_detector_checkpoints_with_pre_0_13_key_names_load(tmp_path):
    source = tiny_model(seed=0, backbone="resnet18-fpn")
    legacy = {}
    for key, value in source.state_dict().items():
        key = key.replace("fpn.inner_blocks.2.0.", "fpn.inner_blocks.2.").replace(
            "rpn.head.conv.0.0.", "rpn.head.conv."
        )
        legacy[key.replace("roi_heads.mask_head.3.0.", "roi_heads.mask_head.mask_fcn4.")] = value
    assert "roi_heads.mask_head.mask_fcn4.weight" in legacy and "rpn.head.conv.bias" in legacy
    torch.save(legacy, tmp_path / "legacy.pth")
    target = tiny_model(seed=1, backbone="resnet18-fpn")
    load_detector_weights(target, tmp_path / "legacy.pth")
    loaded = target.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in source.state_dict().items())


def test_detector_weights_for_another_class_count_skip_only_the_predictors(tmp_path):
    source = tiny_model(seed=0, num_classes=5)
    torch.save({"model": source.state_dict(), "epoch": torch.tensor(3)}, tmp_path / "coco.pth")
    target = tiny_model(seed=1, num_classes=2)
    report = load_detector_weights(target, tmp_path / "coco.pth")
    assert sorted(report.skipped) == sorted(PREDICTOR_KEYS)
    assert "start fresh" in report.summary()
    loaded = target.state_dict()
    for key, value in source.state_dict().items():
        if key not in PREDICTOR_KEYS:
            assert torch.equal(loaded[key], value), key
    assert loaded["roi_heads.box_predictor.cls_score.weight"].shape == (3, 1024)


def test_detector_weights_of_another_architecture_are_refused(tmp_path):
    torch.save(tiny_model(backbone="resnet18-fpn").state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(
        InputError, match=r"resnet18\.pth: does not fit a mobilenet_v3-fpn Mask R-CNN .*missing.*unexpected"
    ):
        load_detector_weights(tiny_model(), tmp_path / "resnet18.pth")


def test_files_that_are_not_checkpoints_are_refused(tmp_path):
    model = tiny_model()
    (tmp_path / "noise.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InputError, match=r"noise\.pth: not a PyTorch checkpoint"):
        load_detector_weights(model, tmp_path / "noise.pth")
    with pytest.raises(InputError, match=r"absent\.pth: file not found"):
        load_detector_weights(model, tmp_path / "absent.pth")
    torch.save({"epoch": 3, "note": "no weights"}, tmp_path / "meta.pth")
    with pytest.raises(InputError, match=r"meta\.pth: holds no state_dict of tensors \(found epoch, note\)"):
        load_backbone_weights(model, tmp_path / "meta.pth")


def test_backbone_weights_from_a_torchvision_classifier(tmp_path):
    torch.manual_seed(0)
    classifier = torchvision.models.resnet18(weights=None)
    torch.save(classifier.state_dict(), tmp_path / "resnet18-imagenet.pth")
    model = tiny_model(backbone="resnet18-fpn", pretrained_backbone=True)
    fpn_before = model.backbone.fpn.state_dict()["inner_blocks.0.0.weight"].clone()
    report = load_backbone_weights(model, tmp_path / "resnet18-imagenet.pth")
    body = model.backbone.body.state_dict()
    assert torch.equal(body["conv1.weight"], classifier.conv1.weight)
    assert torch.equal(body["layer4.1.bn2.running_var"], classifier.layer4[1].bn2.running_var)
    assert report.ignored == ["fc.weight", "fc.bias"]
    assert report.loaded == len(
        [k for k in classifier.state_dict() if not k.startswith("fc.") and "num_batches" not in k]
    )
    assert torch.equal(model.backbone.fpn.state_dict()["inner_blocks.0.0.weight"], fpn_before)

    with pytest.raises(
        InputError, match=r"does not fit the mobilenet_v3-fpn backbone .*torchvision\.models\.mobilenet_v3_large"
    ):
        load_backbone_weights(tiny_model(), tmp_path / "resnet18-imagenet.pth")

    bottleneck = dict(classifier.state_dict(), **{"layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)})
    torch.save(bottleneck, tmp_path / "reshaped.pth")
    with pytest.raises(
        InputError,
        match=r"1 shape mismatches: layer1\.0\.conv1\.weight: file \(64, 64, 1, 1\) vs model \(64, 64, 3, 3\)",
    ):
        load_backbone_weights(model, tmp_path / "reshaped.pth")


def test_mobilenet_backbone_weights_map_features_onto_the_body(tmp_path):
    torch.manual_seed(0)
    classifier = torchvision.models.mobilenet_v3_large(weights=None)
    torch.save(classifier.state_dict(), tmp_path / "mobilenet.pth")
    model = tiny_model(pretrained_backbone=True)
    report = load_backbone_weights(model, tmp_path / "mobilenet.pth")
    assert torch.equal(model.backbone.body.state_dict()["16.0.weight"], classifier.features[16][0].weight)
    assert all(key.startswith("classifier.") for key in report.ignored) and len(report.ignored) == 4
