"""Stage 1: amodal box detection and visible instance segmentation (paper 3.2).

A torchvision Mask R-CNN whose box head learns AMODAL boxes and classes and whose mask head
learns VISIBLE masks. Nothing in the architecture changes: the supervision does. The targets
handed to it carry amodal boxes under ``"boxes"`` and visible masks under ``"masks"``
(:func:`a3d_core.data.detection.stage1_targets`, or :class:`~a3d_core.data.detection.AmodalDetectionDataset`),
so the RPN and box head regress amodal boxes, and the mask head learns the visible mask in the
region of each (amodal) proposal, exactly the ``M_i^v`` "in the region of amodal bounding box"
that stage 2 consumes.

The contract is torchvision's: ``model(images, targets)`` in training mode returns the loss
dict (``loss_classifier``, ``loss_box_reg``, ``loss_mask``, ``loss_objectness``,
``loss_rpn_box_reg``); ``model(images)`` in eval mode returns one dict per image with
``boxes`` ``(K, 4)`` amodal xyxy, ``labels`` ``(K,)``, ``scores`` ``(K,)`` and ``masks``
``(K, 1, H, W)`` visible-mask probabilities pasted into the full image.

Weights only ever come from local files (:func:`load_backbone_weights`,
:func:`load_detector_weights`); every builder is called with ``weights=None``, so no code path
downloads.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torchvision.models import resnet50
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor, mobilenet_backbone, resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops.misc import FrozenBatchNorm2d

from a3d_core.errors import InputError

BACKBONES = ("resnet50-fpn", "resnet50-fpn-v2", "resnet18-fpn", "mobilenet_v3-fpn")
NORMS = ("batch", "group")
"""Normalisation of a backbone trained from scratch (see :class:`Stage1Settings`)."""
_MAX_GROUPS = 32
"""Stage-1 backbones: ResNet-50-FPN is the paper's; ``resnet50-fpn-v2`` is torchvision's improved
Mask R-CNN (``maskrcnn_resnet50_fpn_v2``: BatchNorm in the FPN and heads, a 2-conv RPN head, a
4-conv box head); the two others are for CPUs and small GPUs."""

_BACKBONE_LAYERS = {"resnet50-fpn": 5, "resnet50-fpn-v2": 5, "resnet18-fpn": 5, "mobilenet_v3-fpn": 6}
_CLASSIFIER_PREFIXES = {
    "resnet50-fpn": "fc.",
    "resnet50-fpn-v2": "fc.",
    "resnet18-fpn": "fc.",
    "mobilenet_v3-fpn": "classifier.",
}
_TORCHVISION_NAMES = {
    "resnet50-fpn": "resnet50",
    "resnet50-fpn-v2": "resnet50",
    "resnet18-fpn": "resnet18",
    "mobilenet_v3-fpn": "mobilenet_v3_large",
}
_V2 = "resnet50-fpn-v2"
_V2_HEAD_LAYERS = (256, 256, 256, 256)
MOBILENET_BATCHNORM_EPS = 1e-3
"""``torchvision.models.mobilenet_v3_large``'s BatchNorm eps (FrozenBatchNorm2d's default is 1e-5):
a pretrained MobileNetV3 backbone freezes its statistics with it, so that its features are the
ImageNet classifier's."""
_PREDICTOR_PREFIXES = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits.")
_LEGACY_KEY_RENAMES = (
    # torchvision < 0.13 named these convolutions without their Conv2dNormActivation wrapper;
    # torchvision renames them the same way when it loads such a checkpoint.
    (re.compile(r"^(backbone\.fpn\.(?:inner|layer)_blocks\.\d+)\.(weight|bias)$"), r"\1.0.\2"),
    (re.compile(r"^(rpn\.head\.conv)\.(weight|bias)$"), r"\1.0.0.\2"),
    (
        re.compile(r"^(roi_heads\.mask_head)\.mask_fcn(\d+)\.(weight|bias)$"),
        lambda match: f"{match[1]}.{int(match[2]) - 1}.0.{match[3]}",
    ),
)
_PRETRAINED_TRAINABLE_LAYERS = 3
DEFAULT_ANCHOR_SIZES = (32, 64, 128, 256, 512)
"""Mask R-CNN's anchor sides in pixels of the resized image (one per FPN level for ResNets)."""
SMALL_ANCHOR_SIZES = (16, 32, 64, 128, 256)
"""Anchor sides for images of about 100 to 300 pixels."""
_LISTED = 5


@dataclass
class Stage1Settings:
    """How stage 1 is built. Sizes and counts default to torchvision's (= the paper's) values.

    Attributes:
        num_classes: number of object categories ``C``, background NOT counted; the model
            predicts labels ``1..C`` (0 is the background), like
            :class:`~a3d_core.data.detection.CategoryMapping`.
        backbone: one of :data:`BACKBONES`.
        pretrained_backbone: the backbone will receive pretrained weights (a backbone or a
            detector checkpoint). As in torchvision, pretrained backbones use
            ``FrozenBatchNorm2d`` and train only their top ``trainable_layers``; a backbone
            trained from scratch uses ``BatchNorm2d`` and trains every layer.
        trainable_layers: backbone stages to train, counted from the top (ResNet 0..5,
            MobileNetV3 0..6). ``None``: 3 when pretrained, all otherwise.
        norm: the backbone's normalisation when it trains from scratch: ``batch``
            (torchvision's) or ``group`` (GroupNorm, up to 32 groups), which does not depend on
            the few images of a CPU batch; on the demo's scenes it detected about 3x better
            after 300 steps. A pretrained backbone always uses ``FrozenBatchNorm2d``.
        min_size, max_size: images are resized so that the short side is ``min_size`` unless
            the long side would exceed ``max_size`` (800 / 1333 in the paper; use about 128-320
            on a CPU).
        rpn_pre_nms_top_n_train, rpn_pre_nms_top_n_test, rpn_post_nms_top_n_train,
        rpn_post_nms_top_n_test: proposals kept per feature level before NMS / per image after.
        rpn_batch_size_per_image, box_batch_size_per_image: anchors / proposals sampled per
            image for the RPN and box-head losses.
        box_score_thresh: detections below this score are dropped in eval mode.
        box_detections_per_img: at most this many detections per image.
        anchor_sizes: five increasing anchor sides in pixels of the resized image; ResNets put
            one on each FPN level (finest first), MobileNetV3 all of them on each of its maps.
            Torchvision's 32..512 suit 800-pixel images; smaller images need smaller anchors.
    """

    num_classes: int
    backbone: str = "resnet50-fpn"
    pretrained_backbone: bool = False
    trainable_layers: int | None = None
    norm: str = "batch"
    min_size: int = 800
    max_size: int = 1333
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_test: int = 1000
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    box_score_thresh: float = 0.05
    box_detections_per_img: int = 100
    anchor_sizes: tuple[int, ...] = DEFAULT_ANCHOR_SIZES
    image_mean: tuple[float, float, float] = field(default=(0.485, 0.456, 0.406))
    image_std: tuple[float, float, float] = field(default=(0.229, 0.224, 0.225))

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {self.num_classes}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        most = _BACKBONE_LAYERS[self.backbone]
        if self.trainable_layers is not None and not 0 <= self.trainable_layers <= most:
            raise ValueError(f"trainable_layers must be in 0..{most} for {self.backbone}, got {self.trainable_layers}")
        if not 0 < self.min_size <= self.max_size:
            raise ValueError(f"need 0 < min_size <= max_size, got {self.min_size} and {self.max_size}")
        for name in (
            "rpn_pre_nms_top_n_train",
            "rpn_pre_nms_top_n_test",
            "rpn_post_nms_top_n_train",
            "rpn_post_nms_top_n_test",
            "rpn_batch_size_per_image",
            "box_batch_size_per_image",
            "box_detections_per_img",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.box_score_thresh < 1.0:
            raise ValueError(f"box_score_thresh must be in [0, 1), got {self.box_score_thresh}")
        sizes = tuple(self.anchor_sizes)
        if len(sizes) != len(DEFAULT_ANCHOR_SIZES) or min(sizes) < 1 or list(sizes) != sorted(set(sizes)):
            raise ValueError(
                f"anchor_sizes must be {len(DEFAULT_ANCHOR_SIZES)} increasing positive sides, got {self.anchor_sizes}"
            )
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ValueError("image_mean and image_std need 3 values each, std positive")

    @property
    def resolved_trainable_layers(self) -> int:
        """``trainable_layers`` with ``None`` resolved (3 when pretrained, all otherwise)."""
        if self.trainable_layers is not None:
            return self.trainable_layers
        return _PRETRAINED_TRAINABLE_LAYERS if self.pretrained_backbone else _BACKBONE_LAYERS[self.backbone]


def build_backbone(settings: Stage1Settings) -> nn.Module:
    """The FPN backbone of ``settings.backbone``, randomly initialised (``weights=None``).

    ResNets give 5 feature maps (``"0"``..``"3"``, ``"pool"``), MobileNetV3-Large gives 3
    (``"0"``, ``"1"``, ``"pool"``), all with 256 channels.
    """
    if settings.pretrained_backbone:
        norm_layer: Callable[[int], nn.Module] = FrozenBatchNorm2d
    else:
        norm_layer = group_norm if settings.norm == "group" else nn.BatchNorm2d
    trainable = settings.resolved_trainable_layers
    if settings.backbone == "mobilenet_v3-fpn":
        if settings.pretrained_backbone:  # MobileNetV3's ImageNet weights were trained with BatchNorm eps 1e-3
            norm_layer = functools.partial(FrozenBatchNorm2d, eps=MOBILENET_BATCHNORM_EPS)
        return mobilenet_backbone(
            backbone_name="mobilenet_v3_large",
            weights=None,
            fpn=True,
            norm_layer=norm_layer,
            trainable_layers=trainable,
        )
    if settings.backbone == _V2:  # as torchvision's maskrcnn_resnet50_fpn_v2 builds it, with BatchNorm in the FPN
        return _resnet_fpn_extractor(
            resnet50(weights=None, norm_layer=norm_layer), trainable, norm_layer=nn.BatchNorm2d
        )
    name = settings.backbone.removesuffix("-fpn")
    return resnet_fpn_backbone(backbone_name=name, weights=None, norm_layer=norm_layer, trainable_layers=trainable)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm over ``channels`` with as many groups, up to 32, as divide them evenly."""
    return nn.GroupNorm(math.gcd(_MAX_GROUPS, channels), channels)


def _anchor_generator(settings: Stage1Settings) -> AnchorGenerator:
    """Anchors of ``settings.anchor_sizes`` at aspect ratios 0.5, 1 and 2: one size per FPN level
    for ResNets (Mask R-CNN's layout), every size on each of MobileNet's 3 maps (torchvision's
    MobileNet recipe). Either way the RPN head's shape does not depend on the sizes chosen."""
    sizes = tuple(int(size) for size in settings.anchor_sizes)
    per_map = (sizes,) * 3 if settings.backbone == "mobilenet_v3-fpn" else tuple((size,) for size in sizes)
    return AnchorGenerator(per_map, ((0.5, 1.0, 2.0),) * len(per_map))


class Stage1MaskRCNN(MaskRCNN):
    """Mask R-CNN trained on amodal boxes + visible masks (paper 3.2), built from settings.

    The forward pass and its inputs/outputs are torchvision's ``MaskRCNN`` (see the module
    docstring); ``images`` is a list of float ``(3, H, W)`` tensors in ``[0, 1]``.
    """

    def __init__(self, settings: Stage1Settings) -> None:
        backbone = build_backbone(settings)
        anchors = _anchor_generator(settings)
        heads = {}
        if settings.backbone == _V2:
            channels = backbone.out_channels
            heads = {
                "rpn_head": RPNHead(channels, anchors.num_anchors_per_location()[0], conv_depth=2),
                "box_head": FastRCNNConvFCHead(
                    (channels, 7, 7), list(_V2_HEAD_LAYERS), [1024], norm_layer=nn.BatchNorm2d
                ),
                "mask_head": MaskRCNNHeads(channels, list(_V2_HEAD_LAYERS), 1, norm_layer=nn.BatchNorm2d),
            }
        super().__init__(
            backbone,
            num_classes=settings.num_classes + 1,
            min_size=settings.min_size,
            max_size=settings.max_size,
            image_mean=list(settings.image_mean),
            image_std=list(settings.image_std),
            rpn_anchor_generator=anchors,
            rpn_pre_nms_top_n_train=settings.rpn_pre_nms_top_n_train,
            rpn_pre_nms_top_n_test=settings.rpn_pre_nms_top_n_test,
            rpn_post_nms_top_n_train=settings.rpn_post_nms_top_n_train,
            rpn_post_nms_top_n_test=settings.rpn_post_nms_top_n_test,
            rpn_batch_size_per_image=settings.rpn_batch_size_per_image,
            box_batch_size_per_image=settings.box_batch_size_per_image,
            box_score_thresh=settings.box_score_thresh,
            box_detections_per_img=settings.box_detections_per_img,
            **heads,
        )
        self.settings = settings


# ------------------------------------------------------------------------------ weight files
@dataclass
class WeightsReport:
    """What loading a weights file did.

    Attributes:
        file: the file read.
        loaded: number of tensors copied into the model.
        skipped: model tensors left as they were because the file's predictor was trained for
            another number of classes (they are then trained from their initial values).
        ignored: file tensors with no place in a detector (an ImageNet classifier's last layer).
    """

    file: Path
    loaded: int
    skipped: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the user."""
        text = f"{self.file}: loaded {self.loaded} tensors"
        if self.skipped:
            text += (
                "; the class-specific predictor layers were trained for another number of classes"
                f" and start fresh ({', '.join(self.skipped)})"
            )
        if self.ignored:
            text += f"; ignored {len(self.ignored)} classifier tensors ({', '.join(self.ignored[:_LISTED])})"
        return text


def load_backbone_weights(model: Stage1MaskRCNN, file: str | os.PathLike) -> WeightsReport:
    """Load a torchvision ImageNet classification checkpoint into the backbone of ``model``.

    ``file`` is the ``state_dict`` of ``torchvision.models.resnet50`` / ``resnet18`` /
    ``mobilenet_v3_large`` (as torchvision publishes them, e.g. ``resnet50-0676ba61.pth``), or
    a dict holding one under ``"model"`` or ``"state_dict"``. Its classifier (``fc.*`` /
    ``classifier.*``) is ignored; every other tensor must fit the backbone body. The FPN is not
    part of such a checkpoint and keeps its initial values.

    Raises:
        InputError: the file is missing, not a checkpoint, or does not fit (the message lists
            missing and unexpected keys and shape mismatches).
    """
    file = Path(file)
    state = _read_state_dict(file)
    backbone = model.settings.backbone
    body = model.backbone.body
    classifier_prefix = _CLASSIFIER_PREFIXES[backbone]
    ignored = [key for key in state if key.startswith(classifier_prefix)]
    features_prefix = "features." if backbone == "mobilenet_v3-fpn" else ""
    body_state = {}
    unexpected = []
    for key, value in state.items():
        if key.startswith(classifier_prefix):
            continue
        if key.startswith(features_prefix):
            body_state[key.removeprefix(features_prefix)] = value
        else:
            unexpected.append(key)
    expected = body.state_dict()
    unexpected += [features_prefix + k for k in body_state if k not in expected]
    problems = _fit_problems(expected, body_state, unexpected, name_prefix=features_prefix)
    if problems:
        raise InputError(
            f"{file}: does not fit the {backbone} backbone ({problems}); expected the state_dict of "
            f"torchvision.models.{_TORCHVISION_NAMES[backbone]}"
        )
    body.load_state_dict({k: v for k, v in body_state.items() if k in expected}, strict=False)
    return WeightsReport(file, loaded=sum(1 for k in body_state if k in expected), ignored=ignored)


def load_detector_weights(model: Stage1MaskRCNN, file: str | os.PathLike) -> WeightsReport:
    """Load a whole torchvision Mask R-CNN checkpoint (backbone, RPN, heads) into ``model``.

    ``file`` is the ``state_dict`` of a torchvision ``MaskRCNN`` of the same backbone (e.g.
    ``maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth`` for ``resnet50-fpn``, or a stage-1 model saved
    by a3d), or a dict holding one under ``"model"`` or ``"state_dict"``; the key names of
    checkpoints saved before torchvision 0.13 are renamed as torchvision does. The class-specific
    predictor layers (``roi_heads.box_predictor.*``, ``roi_heads.mask_predictor.mask_fcn_logits.*``)
    are skipped when the file was trained for another number of classes (the report says so);
    everything else must fit.

    Raises:
        InputError: the file is missing, not a checkpoint, or does not fit.
    """
    file = Path(file)
    expected = model.state_dict()
    state = _rename_legacy_keys(_read_state_dict(file), expected)
    skipped = [
        key
        for key, value in state.items()
        if key.startswith(_PREDICTOR_PREFIXES) and key in expected and expected[key].shape != value.shape
    ]
    state = {k: v for k, v in state.items() if k not in skipped}
    unexpected = [k for k in state if k not in expected]
    problems = _fit_problems({k: v for k, v in expected.items() if k not in skipped}, state, unexpected)
    if problems:
        raise InputError(
            f"{file}: does not fit a {model.settings.backbone} Mask R-CNN ({problems}); expected the state_dict "
            "of a torchvision MaskRCNN with the same backbone"
        )
    model.load_state_dict(state, strict=False)
    return WeightsReport(file, loaded=len(state), skipped=skipped)


def _rename_legacy_keys(state: dict[str, torch.Tensor], expected: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Old torchvision key names -> current ones, where the model has the new name only."""
    renamed = {}
    for key, value in state.items():
        if key not in expected:
            for pattern, replacement in _LEGACY_KEY_RENAMES:
                new_key = pattern.sub(replacement, key)
                if new_key != key and new_key in expected:
                    key = new_key
                    break
        renamed[key] = value
    return renamed


def _read_state_dict(file: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint safely (``weights_only=True``) and return its ``state_dict``."""
    if not file.is_file():
        raise InputError(f"{file}: {'is a folder, not a weights file' if file.is_dir() else 'file not found'}")
    try:
        content = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{file}: not a PyTorch checkpoint that can be loaded safely ({reason})") from None
    if isinstance(content, Mapping) and not _is_state_dict(content):
        for key in ("model", "state_dict"):
            if _is_state_dict(content.get(key)):
                content = content[key]
                break
    if not _is_state_dict(content):
        keys = ", ".join(list(map(str, content))[:_LISTED]) if isinstance(content, Mapping) else type(content).__name__
        raise InputError(f"{file}: holds no state_dict of tensors (found {keys})")
    return dict(content)


def _is_state_dict(content: Any) -> bool:
    return (
        isinstance(content, Mapping)
        and len(content) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in content.items())
    )


def _fit_problems(
    expected: Mapping[str, torch.Tensor],
    provided: Mapping[str, torch.Tensor],
    unexpected: list[str],
    name_prefix: str = "",
) -> str:
    """Describe how ``provided`` fails to fit ``expected`` ('' when it fits).

    BatchNorm's ``num_batches_tracked`` counters are neither required nor reported: torchvision's
    frozen-BatchNorm checkpoints do not have them.
    """

    def counted(key: str) -> bool:
        return not key.endswith("num_batches_tracked")

    missing = [name_prefix + k for k in expected if k not in provided and counted(k)]
    unexpected = [k for k in unexpected if counted(k)]
    mismatched = [
        f"{name_prefix}{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in provided.items()
        if k in expected and counted(k) and v.shape != expected[k].shape
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatches", mismatched)):
        if items:
            more = f", ... {len(items) - _LISTED} more" if len(items) > _LISTED else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:_LISTED])}{more}")
    return "; ".join(parts)
