"""A3D, the two-stage network (paper 3.1): stage 1 finds instances, stage 2 completes each one.

1. Stage 1 (:class:`~a3d_core.model.stage1.Stage1MaskRCNN`, paper 3.2) predicts AMODAL boxes
   ``B_i^a``, classes and VISIBLE masks ``M_i^v`` on the whole image.
2. Each instance is cropped with RoIAlign at the square around its amodal box (the box's longer
   side, times ``crop_scale``, so the object keeps its aspect ratio as in the single-object
   pretraining views): ``A_i = [I_i^a, M_i^v]``, ``4 x S x S``
   (:func:`~a3d_core.boxes.crop_images`, :func:`~a3d_core.boxes.crop_masks`).
3. Stage 2 (:class:`~a3d_core.model.asm.AmodalShapeModel`, paper 3.3-3.5) predicts the amodal
   mask in that crop; its category-specific shape decoder is the one of stage 1's label.
4. The crop mask is pasted back into the full image at the same square
   (:func:`~a3d_core.boxes.paste_masks`, exact at integer boxes).

Contract (torchvision's)::

    net = build_a3d(["car", "chair"], A3DSettings(stage1=Stage1Settings(1, backbone="resnet18-fpn")))
    net.train(); losses = net(images, targets)   # dict of scalar losses: stage 1's + "stage2_<term>"
    net.eval();  outputs = net(images)            # one dict per image, see A3DNetwork.forward

``images`` is a list of float ``(3, H, W)`` in ``[0, 1]``; a training target holds ``boxes``
``(N, 4)`` amodal xyxy, ``labels`` ``(N,)`` in ``1..C``, ``masks`` ``(N, H, W)`` uint8 visible
and ``amodal_masks`` ``(N, H, W)`` uint8 (as
:class:`~a3d_core.data.detection.AmodalDetectionDataset` serves them). Label ``l`` is stage-2
category index ``l - 1``; both stages list the same category names.

Training stage 2 (paper 3.6): on the ground-truth boxes, jittered (:func:`~a3d_core.boxes.jitter_boxes`,
drawn from torch's global generator, which the training loop seeds and checkpoints) so that they
look like stage-1 predictions, with the ground-truth visible masks; optionally also on stage 1's
own detections matched to the ground truth (``train_on_detections``). At most
``max_instances_per_image`` instances per image go to stage 2, drawn at random.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torchvision.ops import box_iou

from a3d_core.boxes import DEFAULT_CROP_SCALE, crop_images, crop_masks, jitter_boxes, paste_masks, square_boxes
from a3d_core.errors import InputError
from a3d_core.io.checkpoints import load_checked_weights, read_checkpoint
from a3d_core.model.asm import KINDS, AmodalShapeModel, ASMSettings, build_stage2
from a3d_core.model.stage1 import Stage1MaskRCNN, Stage1Settings

ARCHITECTURE = "a3d-two-stage"
CHECKPOINT_KEYS = ("model", "model_config", "category_names")
STAGE2_LOSS_PREFIX = "stage2_"


@dataclass
class A3DSettings:
    """Everything that defines a two-stage network.

    Attributes:
        stage1: stage-1 settings; ``num_classes`` is set from the category list by :func:`build_a3d`.
        stage2_kind: one of :data:`~a3d_core.model.asm.KINDS` (``a3d`` is the paper's).
        stage2: stage-2 settings (crop side ``S`` = ``stage2.image_size``).
        crop_scale: the side of an instance's square crop, as a multiple of its amodal box's
            longer side (``>= 1``). A pretrained stage 2 should see the framing it was
            pretrained with (``stage2.input_framing``, :mod:`a3d_core.data.framing`), which
            ``a3d finetune`` takes by default.
        jitter: the largest move of a ground-truth box side in stage-2 training, as a fraction
            of the box side (:func:`~a3d_core.boxes.jitter_boxes`); 0 switches it off.
        max_instances_per_image: stage 2 trains on at most this many instances per image.
        train_on_detections: also train stage 2 on stage 1's detections (with their predicted
            visible masks) matched to a ground-truth instance with box IoU ``>= match_iou``.
        match_iou: see ``train_on_detections``.
        mask_threshold: a visible-mask probability above this counts as visible when stage 2's
            input is built from stage 1's masks.
        keep_visible: the final amodal mask contains the visible mask, as an amodal mask does by
            definition (visible part + occluded part): ``max(pasted stage-2 mask, visible
            mask)``, so stage 2's crop resolution never loses pixels that stage 1 saw.
    """

    stage1: Stage1Settings = field(default_factory=lambda: Stage1Settings(num_classes=1))
    stage2_kind: str = "a3d"
    stage2: ASMSettings = field(default_factory=ASMSettings)
    crop_scale: float = DEFAULT_CROP_SCALE
    jitter: float = 0.1
    max_instances_per_image: int = 16
    train_on_detections: bool = False
    match_iou: float = 0.5
    mask_threshold: float = 0.5
    keep_visible: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.stage1, Mapping):
            self.stage1 = Stage1Settings(**_tuples(self.stage1))
        if isinstance(self.stage2, Mapping):
            self.stage2 = ASMSettings.from_dict(self.stage2)
        if self.stage2_kind not in KINDS:
            raise ValueError(f"stage2_kind must be one of {KINDS}, got {self.stage2_kind!r}")
        if self.stage2.viewpoint.camera == "oracle":
            raise ValueError(
                "the oracle camera (an upper bound) needs the true camera of every instance; the two-stage network "
                "has none: pretrain with camera 'learned' or 'supervised'"
            )
        if self.stage2.viewpoint.camera == "supervised" and self.stage2.losses.camera_supervision:
            raise ValueError(
                "the two-stage network has no true cameras to supervise with: camera 'supervised' takes "
                "losses.camera_supervision=0 here (its estimator predicts the camera)"
            )
        if not 1.0 <= self.crop_scale <= 4.0:
            raise ValueError(f"crop_scale must be in [1, 4], got {self.crop_scale}")
        if not 0.0 <= self.jitter < 0.5:
            raise ValueError(f"jitter must be in [0, 0.5), got {self.jitter}")
        if self.max_instances_per_image < 1:
            raise ValueError(f"max_instances_per_image must be at least 1, got {self.max_instances_per_image}")
        if not 0.0 < self.match_iou <= 1.0:
            raise ValueError(f"match_iou must be in (0, 1], got {self.match_iou}")
        if not 0.0 < self.mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must be in (0, 1), got {self.mask_threshold}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (tuples become lists); ``A3DSettings(**to_dict())`` rebuilds it."""
        values = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
        values["stage1"] = _lists(dataclasses.asdict(self.stage1))
        values["stage2"] = self.stage2.to_dict()
        return values


def _tuples(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: tuple(value) if isinstance(value, list) else value for key, value in values.items()}


def _lists(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}


class A3DNetwork(nn.Module):
    """The two-stage A3D network, composed of the two stages passed in (see the module docstring).

    Args:
        stage1: a torchvision-contract Mask R-CNN predicting amodal boxes and visible masks.
        stage2: a stage-2 network whose ``category_names`` are the categories of labels ``1..C``.
        settings: crops, jitter and instance sampling (and, for :meth:`config`, how the stages
            were built).
    """

    def __init__(self, stage1: nn.Module, stage2: AmodalShapeModel, settings: A3DSettings) -> None:
        super().__init__()
        self.stage1 = stage1
        self.stage2 = stage2
        self.settings = settings

    @property
    def category_names(self) -> list[str]:
        return list(self.stage2.category_names)

    def config(self) -> dict[str, Any]:
        """JSON-able; :func:`build_a3d_from_config` rebuilds the same architecture."""
        return {
            "architecture": ARCHITECTURE,
            "category_names": self.category_names,
            "settings": self.settings.to_dict(),
        }

    # --------------------------------------------------------------------------------- forward
    def forward(
        self,
        images: Sequence[torch.Tensor] | tuple[Sequence[torch.Tensor], Sequence[Mapping[str, torch.Tensor]]],
        targets: Sequence[Mapping[str, torch.Tensor]] | None = None,
    ) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        """Losses (training) or detections (evaluation).

        ``images`` may also be the pair ``(images, targets)`` as one argument: the batch that
        :func:`~a3d_core.data.detection.collate_detection` builds and the training loop hands over.

        Returns:
            training: ``{stage-1 losses..., "stage2_<term>": ...}`` scalars.
            evaluation: per image ``boxes`` ``(K, 4)`` amodal xyxy, ``labels`` ``(K,)`` in
            ``1..C``, ``scores`` ``(K,)``, ``visible_masks`` and ``amodal_masks`` ``(K, H, W)``
            probabilities; for 3D kinds also ``vertices`` ``(K, V, 3)`` and ``faces`` ``(F, 3)``.
        """
        if targets is None and isinstance(images, tuple) and len(images) == 2 and isinstance(images[1], (list, tuple)):
            images, targets = images
        images = list(images)
        _check_images(images)
        if self.training:
            if targets is None:
                raise InputError("the two-stage network needs targets in training mode")
            targets = list(targets)
            if len(targets) != len(images):
                raise InputError(f"{len(images)} images but {len(targets)} targets")
            return self._losses(images, targets)
        return self._detect(images)

    def _losses(self, images: list[torch.Tensor], targets: list[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        for index, target in enumerate(targets):
            missing = [key for key in ("boxes", "labels", "masks", "amodal_masks") if key not in target]
            if missing:
                raise InputError(f"target {index} lacks {', '.join(missing)}")
        stage1_targets = [{"boxes": t["boxes"], "labels": t["labels"], "masks": t["masks"]} for t in targets]
        losses = dict(self.stage1(images, stage1_targets))
        instances = self._ground_truth_instances(images, targets)
        if self.settings.train_on_detections:
            instances += self._detected_instances(images, targets)
        if instances:
            batch = {key: torch.cat([part[key] for part in instances]) for key in instances[0]}
            stage2_losses = self.stage2(batch)
        else:  # no instance in the batch: stage 2 contributes zero, with a graph for DDP
            stage2_losses = {"total": sum(p.sum() for p in self.stage2.parameters()) * 0.0}
        losses.update({STAGE2_LOSS_PREFIX + name: value for name, value in stage2_losses.items()})
        return losses

    def _ground_truth_instances(
        self, images: list[torch.Tensor], targets: list[Mapping[str, torch.Tensor]]
    ) -> list[dict[str, torch.Tensor]]:
        """Stage-2 training crops at jittered ground-truth boxes, with ground-truth visible masks."""
        parts = []
        for image, target in zip(images, targets):
            count = len(target["boxes"])
            if count == 0:
                continue
            keep = torch.randperm(count)[: self.settings.max_instances_per_image].to(image.device)
            boxes = target["boxes"][keep].float()
            if self.settings.jitter > 0:
                boxes = jitter_boxes(boxes, tuple(image.shape[-2:]), self.settings.jitter)
            occluders = self._occluders(target["masks"])
            parts.append(
                self._training_crops(
                    image,
                    boxes,
                    target["masks"][keep],
                    target["amodal_masks"][keep],
                    target["labels"][keep],
                    None if occluders is None else occluders[keep],
                )
            )
        return parts

    def _detected_instances(
        self, images: list[torch.Tensor], targets: list[Mapping[str, torch.Tensor]]
    ) -> list[dict[str, torch.Tensor]]:
        """Stage-2 training crops at stage 1's detections matched to ground truth (box IoU >= match_iou)."""
        self.stage1.eval()
        try:
            with torch.no_grad():
                detections = self.stage1(images)
        finally:
            self.stage1.train()
        parts = []
        for image, target, detected in zip(images, targets, detections):
            if len(detected["boxes"]) == 0 or len(target["boxes"]) == 0:
                continue
            best_iou, best_truth = box_iou(detected["boxes"], target["boxes"].float()).max(dim=1)
            matched = torch.nonzero(best_iou >= self.settings.match_iou).flatten()[
                : self.settings.max_instances_per_image
            ]
            if len(matched) == 0:
                continue
            truth = best_truth[matched]
            detected_visible = (detected["masks"][:, 0] > self.settings.mask_threshold).float()
            occluders = self._occluders(detected_visible)
            parts.append(
                self._training_crops(
                    image,
                    detected["boxes"][matched],
                    detected_visible[matched],
                    target["amodal_masks"][truth],
                    target["labels"][truth],
                    None if occluders is None else occluders[matched],
                )
            )
        return parts

    def _occluders(self, visible_masks: torch.Tensor) -> torch.Tensor | None:
        """Each instance's occluder mask ``(K, H, W)`` from all of an image's visible masks ``(K, H, W)``
        (:func:`other_instances_masks`) when stage 2 reads it, else ``None``."""
        return other_instances_masks(visible_masks) if self.stage2.settings.occluder_input else None

    def _training_crops(
        self,
        image: torch.Tensor,
        boxes: torch.Tensor,
        visible: torch.Tensor,
        amodal: torch.Tensor,
        labels: torch.Tensor,
        occluders: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """Stage-2 training inputs of ``K`` instances of ``image`` ``(3, H, W)`` at ``boxes`` ``(K, 4)``:
        ``visible``, ``amodal`` and (with occluder input) ``occluders`` ``(K, H, W)`` cropped like the
        image to ``(K, 1, S, S)``, ``labels`` ``(K,)`` in ``1..C`` as ``category`` in ``0..C-1``."""
        size = self.settings.stage2.image_size
        squares = square_boxes(boxes, self.settings.crop_scale)
        crops = {
            "rgb": crop_images([image], [squares], size),
            "visible": (crop_masks(visible, squares, size) >= 0.5).float()[:, None],
            "amodal": (crop_masks(amodal, squares, size) >= 0.5).float()[:, None],
            "category": labels.long() - 1,
        }
        if occluders is not None:
            crops["occluder"] = (crop_masks(occluders, squares, size) >= 0.5).float()[:, None]
        return crops

    def _detect(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        detections = self.stage1(images)
        visible = [d["masks"][:, 0] for d in detections]
        amodal = self.complete(images, [d["boxes"] for d in detections], visible, [d["labels"] for d in detections])
        outputs = []
        for detected, visible_masks, completed in zip(detections, visible, amodal):
            output = {
                "boxes": detected["boxes"],
                "labels": detected["labels"],
                "scores": detected["scores"],
                "visible_masks": visible_masks,
                "amodal_masks": completed["amodal_masks"],
            }
            output.update(
                {key: value for key, value in completed.items() if key not in ("amodal_masks", "shape_labels")}
            )
            outputs.append(output)
        return outputs

    def complete(
        self,
        images: Sequence[torch.Tensor],
        boxes: Sequence[torch.Tensor],
        visible_masks: Sequence[torch.Tensor],
        labels: Sequence[torch.Tensor],
    ) -> list[dict[str, torch.Tensor]]:
        """Stage 2 on given instances: crop, complete, paste back (paper 3.1).

        Args:
            images: ``B`` float ``(3, H_b, W_b)`` in ``[0, 1]``.
            boxes: ``B`` float ``(K_b, 4)`` amodal xyxy.
            visible_masks: ``B`` ``(K_b, H_b, W_b)`` probabilities or {0, 1}.
            labels: ``B`` int64 ``(K_b,)`` in ``1..C``: which shape decoder completes each instance
                (``0``: the one the classification branch picks).

        Returns:
            per image ``amodal_masks`` ``(K_b, H_b, W_b)`` probabilities (with ``keep_visible``
            at least the visible mask's), ``shape_labels`` ``(K_b,)`` int64 in ``1..C`` (the
            decoders used), and for 3D kinds ``vertices`` ``(K_b, V, 3)`` and ``faces`` ``(F, 3)``.
        """
        return complete_instances(self.stage2, self.settings, images, boxes, visible_masks, labels)


def complete_instances(
    stage2: AmodalShapeModel,
    settings: A3DSettings,
    images: Sequence[torch.Tensor],
    boxes: Sequence[torch.Tensor],
    visible_masks: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    uncompleted_visible_masks: Sequence[torch.Tensor] | None = None,
) -> list[dict[str, torch.Tensor]]:
    """:meth:`A3DNetwork.complete` with any stage 2 (a fine-tuned network's, or a pretrained one
    alone): crops as ``settings`` say (``crop_scale``, ``mask_threshold``, ``keep_visible``).

    A label ``0`` in ``labels`` leaves the instance's shape decoder to the classification branch
    (3.3, as at test time); each image's result adds ``shape_labels`` ``(K_b,)`` int64 in ``1..C``:
    the decoder that completed each instance. A stage 2 with ``occluder_input`` also gets each
    instance's occluder mask: the other instances' visible masks of its image
    (:func:`other_instances_masks`), cropped like its own visible mask, with those of
    ``uncompleted_visible_masks`` (per image ``(M_b, H_b, W_b)``: instances not completed, e.g.
    kept as their visible masks, which still hide the others)."""
    size = settings.stage2.image_size
    squares = [square_boxes(b.float(), settings.crop_scale) for b in boxes]
    counts = [len(b) for b in boxes]
    if sum(counts) == 0:
        return [_empty_completion(stage2, image) for image in images]
    binary = [(m > settings.mask_threshold).float() for m in visible_masks]
    visible = torch.cat([crop_masks(m, s, size) for m, s in zip(binary, squares) if len(s)])
    batch = {
        "rgb": crop_images([i for i, s in zip(images, squares) if len(s)], [s for s in squares if len(s)], size),
        "visible": (visible >= 0.5).float()[:, None],
        "shape_category": torch.cat(list(labels)).long() - 1,
    }
    if stage2.settings.occluder_input:
        uncompleted = uncompleted_visible_masks or [m[:0] for m in visible_masks]
        occluders = [
            crop_masks(_occluders_in_image(m, (extra > settings.mask_threshold).float()), s, size)
            for m, extra, s in zip(binary, uncompleted, squares)
            if len(s)
        ]
        batch["occluder"] = (torch.cat(occluders) >= 0.5).float()[:, None]
    predicted = stage2(batch)
    results = []
    for image, square, visible_of_image, crop_masks_of_image in zip(
        images, squares, visible_masks, predicted["amodal_mask"].split(counts)
    ):
        amodal = paste_masks(crop_masks_of_image, square, tuple(image.shape[-2:]))
        if settings.keep_visible:
            amodal = torch.maximum(amodal, visible_of_image.to(amodal))
        results.append({"amodal_masks": amodal})
    for result, chosen in zip(results, predicted["category"].split(counts)):
        result["shape_labels"] = chosen + 1
    if "vertices" in predicted:
        for result, vertices in zip(results, predicted["vertices"].split(counts)):
            result.update(vertices=vertices, faces=predicted["faces"])
    return results


def other_instances_masks(visible_masks: torch.Tensor) -> torch.Tensor:
    """What may hide each instance of an image: the union of the OTHER instances' visible masks.

    Args:
        visible_masks: ``(K, H, W)`` {0, 1}, the visible masks of all instances of one image.

    Returns:
        ``(K, H, W)`` float {0, 1}: row ``k`` is 1 where some instance other than ``k`` is visible.
    """
    binary = (visible_masks > 0).float()
    coverage = binary.sum(dim=0, keepdim=True)
    return (coverage - binary > 0).float()


def _occluders_in_image(visible_masks: torch.Tensor, uncompleted_masks: torch.Tensor) -> torch.Tensor:
    """The occluder masks ``(K, H, W)`` of an image's ``K`` completed instances (visible masks ``(K, H, W)``
    {0, 1}): the others' visible masks and those of its uncompleted instances ``(M, H, W)`` {0, 1}."""
    occluders = other_instances_masks(visible_masks)
    if len(uncompleted_masks):
        occluders = torch.maximum(occluders, uncompleted_masks.amax(dim=0, keepdim=True).to(occluders))
    return occluders


def _empty_completion(stage2: AmodalShapeModel, image: torch.Tensor) -> dict[str, torch.Tensor]:
    height, width = image.shape[-2:]
    result = {
        "amodal_masks": image.new_zeros((0, height, width)),
        "shape_labels": torch.zeros(0, dtype=torch.int64, device=image.device),
    }
    if stage2.is_3d:
        faces = stage2.mask_branch.faces
        result.update(vertices=image.new_zeros((0, stage2.mask_branch.shape_decoder.num_vertices, 3)), faces=faces)
    return result


def _check_images(images: list[torch.Tensor]) -> None:
    if not images:
        raise InputError("the two-stage network got no images")
    for index, image in enumerate(images):
        if (
            not isinstance(image, torch.Tensor)
            or image.ndim != 3
            or image.shape[0] != 3
            or not image.is_floating_point()
        ):
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise InputError(f"image {index}: expected a float (3, H, W) tensor, got {shape}")


# ------------------------------------------------------------------------------------ factories
def build_a3d(category_names: Sequence[str], settings: A3DSettings | None = None) -> A3DNetwork:
    """The two-stage network for ``category_names`` (labels ``1..C`` in this order)."""
    names = [str(name) for name in category_names]
    settings = settings or A3DSettings()
    settings = dataclasses.replace(settings, stage1=dataclasses.replace(settings.stage1, num_classes=len(names)))
    stage2 = build_stage2(settings.stage2_kind, names, settings.stage2)
    return A3DNetwork(Stage1MaskRCNN(settings.stage1), stage2, settings)


def build_a3d_from_config(config: Mapping[str, Any]) -> A3DNetwork:
    """Rebuild a network from :meth:`A3DNetwork.config`; a malformed config raises InputError."""
    if not isinstance(config, Mapping) or config.get("architecture") != ARCHITECTURE:
        found = config.get("architecture", config.get("kind")) if isinstance(config, Mapping) else type(config).__name__
        raise InputError(f"not a two-stage A3D model config (architecture {found!r})")
    try:
        return build_a3d(list(config["category_names"]), A3DSettings(**config["settings"]))
    except InputError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"not a two-stage A3D model config ({error})") from None


def load_a3d_from_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> A3DNetwork:
    """Rebuild the two-stage network saved in a checkpoint (``model``, ``model_config``,
    ``category_names``; read with ``torch.load(weights_only=True)``) and load its weights.

    Raises:
        InputError: naming the file, when it is missing or corrupt, is another kind of checkpoint
            (a stage-2 pretraining checkpoint, say), or holds weights of another architecture.
    """
    path = Path(path)
    checkpoint = read_checkpoint(path, CHECKPOINT_KEYS, "a model checkpoint", map_location)
    config = checkpoint["model_config"]
    if isinstance(config, Mapping) and config.get("architecture") != ARCHITECTURE:
        kind = (
            f"a stage-2 ({config['kind']}) checkpoint, e.g. from `a3d pretrain`"
            if "kind" in config
            else "another architecture's checkpoint"
        )
        raise InputError(f"{path}: {kind}, not a fine-tuned two-stage model (from `a3d finetune`)")
    try:
        model = build_a3d_from_config(config)
    except InputError as error:
        raise InputError(f"{path}: {error}") from None
    load_checked_weights(model, checkpoint, path)
    return model
