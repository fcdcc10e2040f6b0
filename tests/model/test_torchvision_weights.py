"""Stage-1 weights as torchvision writes them: files named as the torch hub cache names them, loaded
through the functions behind --detector-weights / --backbone-weights, give torchvision's outputs.

The models are torchvision's own (random init, ``weights=None``: nothing is downloaded), with their
BatchNorm statistics perturbed so that a buffer left behind would show. Inputs are tiny.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models import MobileNet_V3_Large_Weights, ResNet18_Weights, ResNet50_Weights
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights, MaskRCNN_ResNet50_FPN_Weights

from a3d_core.model.stage1 import Stage1MaskRCNN, Stage1Settings, load_backbone_weights, load_detector_weights
from a3d_core.train.finetune import FinetuneSettings, build_finetune_model, small_stage1_settings
from tests.model.tiny_scenes import tiny_stage2_settings

SMALL = dict(
    min_size=64,
    max_size=64,
    rpn_pre_nms_top_n_test=50,
    rpn_post_nms_top_n_test=20,
    box_detections_per_img=5,
    box_score_thresh=0.0,
)
"""A few proposals and detections at 64 pixels, the same on both sides."""

LEGACY_NAMES = (  # the published maskrcnn_resnet50_fpn_coco file predates torchvision 0.13's names
    (re.compile(r"^(backbone\.fpn\.(?:inner|layer)_blocks\.\d+)\.0\.(weight|bias)$"), r"\1.\2"),
    (re.compile(r"^(rpn\.head\.conv)\.0\.0\.(weight|bias)$"), r"\1.\2"),
    (
        re.compile(r"^(roi_heads\.mask_head)\.(\d+)\.0\.(weight|bias)$"),
        lambda m: f"{m[1]}.mask_fcn{int(m[2]) + 1}.{m[3]}",
    ),
)


def hub_file_name(weights) -> str:
    """The file torch.hub writes into ~/.cache/torch/hub/checkpoints: the last part of the URL."""
    return weights.url.rsplit("/", 1)[-1]


def test_hub_cache_names_are_the_ones_the_readme_gives() -> None:
    assert [
        hub_file_name(w)
        for w in (
            MaskRCNN_ResNet50_FPN_Weights.COCO_V1,
            MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
            ResNet50_Weights.IMAGENET1K_V1,
            ResNet18_Weights.IMAGENET1K_V1,
            MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        )
    ] == [
        "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
        "maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth",
        "resnet50-0676ba61.pth",
        "resnet18-f37072fd.pth",
        "mobilenet_v3_large-8738ca79.pth",
    ]


def _perturb_batchnorm(model: torch.nn.Module, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=generator))
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)


def _legacy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        for pattern, replacement in LEGACY_NAMES:
            key = pattern.sub(replacement, key)
        renamed[key] = value
    return renamed


@pytest.mark.parametrize(
    "builder, backbone, weights, legacy",
    [
        (
            torchvision.models.detection.maskrcnn_resnet50_fpn,
            "resnet50-fpn",
            MaskRCNN_ResNet50_FPN_Weights.COCO_V1,
            True,
        ),
        (
            torchvision.models.detection.maskrcnn_resnet50_fpn_v2,
            "resnet50-fpn-v2",
            MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
            False,
        ),
    ],
)
def test_torchvision_mask_rcnn_files_give_torchvision_detections(
    tmp_path: Path, builder, backbone, weights, legacy
) -> None:
    torch.manual_seed(0)
    reference = builder(weights=None, weights_backbone=None, num_classes=91, **SMALL).eval()
    _perturb_batchnorm(reference)
    state = reference.state_dict()
    file = tmp_path / hub_file_name(weights)
    torch.save(_legacy(state) if legacy else state, file)
    assert legacy == (set(torch.load(file, weights_only=True)) != set(state))

    ours = Stage1MaskRCNN(Stage1Settings(num_classes=90, backbone=backbone, pretrained_backbone=True, **SMALL)).eval()
    report = load_detector_weights(ours, file)
    assert report.skipped == [] and report.loaded == len(state)
    image = torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = reference([image])[0], ours([image])[0]
    assert len(expected["boxes"]) == 5 and torch.equal(got["labels"], expected["labels"])
    # the same up to float rounding (the file's BatchNorm runs as FrozenBatchNorm2d here), which
    # moves box sides by thousandths of a pixel and so the pasted masks' edge pixels a little
    assert (got["boxes"] - expected["boxes"]).abs().max() < 1e-2 and (
        got["scores"] - expected["scores"]
    ).abs().max() < 1e-3
    assert (got["masks"] - expected["masks"]).abs().mean() < 1e-4 and (
        got["masks"] - expected["masks"]
    ).abs().max() < 0.1


def test_a_coco_detector_file_through_finetune_keeps_all_but_the_class_predictors(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.detection.maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None).eval()
    file = tmp_path / hub_file_name(MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1)
    torch.save(reference.state_dict(), file)
    settings = FinetuneSettings(
        dataset=tmp_path,
        out=tmp_path / "run",
        detector_weights=file,
        stage2=tiny_stage2_settings(),
        stage1=small_stage1_settings("resnet50-fpn-v2"),
    )
    network, _, reports = build_finetune_model(settings, ["car", "chair"])
    assert len(reports) == 1 and "predictor layers were trained for another number of classes" in reports[0]
    features = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        network.stage1.backbone.eval()
        assert all(
            torch.allclose(a, b, atol=1e-5)
            for a, b in zip(network.stage1.backbone(features).values(), reference.backbone(features).values())
        )


def _resnet_top(classifier: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    x = classifier.maxpool(classifier.relu(classifier.bn1(classifier.conv1(image))))
    return classifier.layer4(classifier.layer3(classifier.layer2(classifier.layer1(x))))


@pytest.mark.parametrize(
    "builder, backbone, weights, top",
    [
        (torchvision.models.resnet50, "resnet50-fpn", ResNet50_Weights.IMAGENET1K_V1, _resnet_top),
        (torchvision.models.resnet18, "resnet18-fpn", ResNet18_Weights.IMAGENET1K_V1, _resnet_top),
        (
            torchvision.models.mobilenet_v3_large,
            "mobilenet_v3-fpn",
            MobileNet_V3_Large_Weights.IMAGENET1K_V1,
            lambda classifier, image: classifier.features(image),
        ),
    ],
)
def test_torchvision_imagenet_files_give_the_classifiers_features(
    tmp_path: Path, builder, backbone, weights, top
) -> None:
    torch.manual_seed(0)
    classifier = builder(weights=None).eval()
    _perturb_batchnorm(classifier)
    file = tmp_path / hub_file_name(weights)
    torch.save(classifier.state_dict(), file)
    ours = Stage1MaskRCNN(
        Stage1Settings(num_classes=2, backbone=backbone, pretrained_backbone=True, min_size=64, max_size=64)
    ).eval()
    report = load_backbone_weights(ours, file)
    assert report.ignored and all(key.startswith(("fc.", "classifier.")) for key in report.ignored)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got, expected = list(ours.backbone.body(image).values())[-1], top(classifier, image)
    assert (got - expected).abs().max() < 1e-4 * expected.abs().max()  # float rounding: FrozenBatchNorm2d here
