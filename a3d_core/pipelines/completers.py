"""Completers: visible instance masks in, amodal masks out (stage 2 alone, or a baseline).

A completer takes each instance's amodal (or visible) box, VISIBLE mask and category NAME, and
returns its amodal mask. ``a3d complete`` (:mod:`a3d_core.pipelines.complete`) runs one behind any instance
segmenter; ``a3d evaluate --protocol completion`` (:func:`a3d_core.pipelines.evaluate.evaluate_completion`)
runs one on the ground-truth visible masks of a dataset split (C2F-Seg's setting).

:data:`COMPLETERS` is the catalog (name -> builder from a :class:`CompleterRequest`):

- ``checkpoint``: the stage 2 of a pretraining (``a3d pretrain``) or fine-tuned (``a3d finetune``)
  checkpoint: crop the square around the box, complete through the category's shape decoder
  (3D prior, viewpoint, renderer, edge refine; paper 3.3-3.5), paste back
  (:func:`~a3d_core.model.a3d.complete_instances`). A category is matched to the checkpoint's
  by name, else through the category map (:mod:`a3d_core.data.category_map`); a category with
  neither (a class-agnostic ``object``, KINS' ``cyclist``) is handled as :data:`UNKNOWN_CATEGORY`
  says: by default the classification branch picks the decoder, as at test time in the paper (3.3);
- ``visible``: the visible mask as the amodal mask (the no-completion baseline);
- ``shapedict``: the 2D shape-prior baseline (Xiao et al. 2021, the paper's ref. 30;
  :mod:`a3d_core.model.shapedict`): per-category K-means atoms of the dataset's TRAINING amodal
  masks, cropped as stage 2 crops instances; each instance gets the atom of its category that
  best overlaps its visible mask, united with it, pasted back. Training-free: it needs the
  dataset (``a3d evaluate --protocol completion``), not a checkpoint;
- ``deocclusion``: Deocclusion's baseline (the paper's ref. 36) as a3d trains it: a class-agnostic
  2D network (``2d-unet``) pretrained on modal masks (``a3d prepare modal``), completing every
  category with its one decoder (:class:`DeocclusionCompleter`; docs/modal.md).

Every completion says which decoder completed each instance (``shape_labels``), and
:class:`HandlingCounts` counts how a run's instances were handled: by their own category's
decoder, a mapped one, the predicted class's, or kept as their visible masks.

A new completer is a class with :meth:`Completer.check_categories` and :meth:`Completer.complete`
and one entry in :data:`COMPLETERS`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import torch

from a3d_core.boxes import DEFAULT_CROP_SCALE, crop_masks, square_boxes
from a3d_core.data.category_map import CategoryMap
from a3d_core.errors import InputError
from a3d_core.model.a3d import A3DSettings, complete_instances, load_a3d_from_checkpoint, other_instances_masks
from a3d_core.model.asm import AmodalShapeModel, ASMSettings, build_stage2, load_stage2_from_checkpoint
from a3d_core.model.shapedict import ShapeDictSettings
from a3d_core.runtime import resolve_device
from a3d_core.train.run_folders import FINE_TUNED, read_run

UNKNOWN_CATEGORY = ("predict", "visible", "refuse")
"""What the ``checkpoint`` completer does with an instance whose category has no shape decoder
(no same-named checkpoint category, none through the map): ``predict``: the decoder of the class
its classification branch predicts (3.3); ``visible``: its visible mask is kept as its amodal
mask; ``refuse``: :meth:`Completer.check_categories` raises an InputError naming the categories."""


class Completer(Protocol):
    """What every completer does (see the module docstring)."""

    name: str
    """A short label for tables, e.g. ``stage 2 of best.pt``."""
    decoders: Mapping[str, str]
    """Checked category name -> the decoder category that completes it, by name or through the map."""
    decoder_names: Sequence[str]
    """The decoder categories: a ``shape_labels`` value ``l`` in ``1..C`` is ``decoder_names[l - 1]``."""

    def check_categories(self, names: Sequence[str]) -> None:
        """Raise :class:`InputError` naming the categories among ``names`` it cannot complete."""

    def complete(
        self,
        images: Sequence[torch.Tensor],
        boxes: Sequence[torch.Tensor],
        visible_masks: Sequence[torch.Tensor],
        categories: Sequence[Sequence[str]],
    ) -> list[dict[str, torch.Tensor]]:
        """Amodal masks of the given instances.

        Args:
            images: ``B`` float ``(3, H_b, W_b)`` in ``[0, 1]``.
            boxes: ``B`` float ``(K_b, 4)`` xyxy: the amodal boxes when known, else the visible ones.
            visible_masks: ``B`` ``(K_b, H_b, W_b)`` {0, 1} or probabilities.
            categories: ``B`` lists of ``K_b`` category names.

        Returns:
            per image ``amodal_masks`` ``(K_b, H_b, W_b)`` probabilities, ``shape_labels``
            ``(K_b,)`` int64 (the decoder that completed each instance, ``1..C``; ``0``: kept as its
            visible mask), and for completers with a 3D prior ``vertices`` ``(K_b, V, 3)`` (zeros
            for an instance kept as its visible mask) and ``faces`` ``(F, 3)``.
        """


@dataclass(frozen=True)
class CompleterRequest:
    """What a completer may be built from.

    Attributes:
        checkpoint: a pretraining or fine-tuned checkpoint (the ``checkpoint`` completer).
        category_map: how category names find the checkpoint's categories.
        unknown_category: one of :data:`UNKNOWN_CATEGORY`.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        dataset: the prepared dataset folder being completed, for completers that learn from
            its training split (``None`` for images outside a dataset).
        train_split: that training split.
    """

    checkpoint: Path | None = None
    category_map: CategoryMap = field(default_factory=CategoryMap)
    unknown_category: str = "predict"
    device: str = "auto"
    dataset: Path | None = None
    train_split: str = "train"


class CheckpointCompleter:
    """Stage 2 of a checkpoint, on given instances (see the module docstring).

    Args:
        stage2: an eval-mode stage-2 network.
        settings: how instances are cropped (``crop_scale``, ``mask_threshold``, ``keep_visible``).
        category_map: category names -> ``stage2.category_names``.
        name: the label for tables.
        unknown_category: what completes a category without a decoder (:data:`UNKNOWN_CATEGORY`).
    """

    def __init__(
        self,
        stage2: AmodalShapeModel,
        settings: A3DSettings,
        category_map: CategoryMap | None = None,
        name: str = "stage 2",
        unknown_category: str = "predict",
    ) -> None:
        if unknown_category not in UNKNOWN_CATEGORY:
            raise ValueError(f"unknown_category must be one of {', '.join(UNKNOWN_CATEGORY)}, got {unknown_category!r}")
        self.stage2 = stage2.eval()
        self.settings = settings
        self.category_map = category_map or CategoryMap()
        self.name = name
        self.unknown_category = unknown_category
        self.decoders: dict[str, str] = {}
        """category name -> the checkpoint category whose shape decoder completes it."""
        self.without_decoder: list[str] = []
        """Checked category names with no decoder: completed as ``unknown_category`` says."""

    @property
    def is_3d(self) -> bool:
        return self.stage2.is_3d

    @property
    def decoder_names(self) -> Sequence[str]:
        return self.stage2.category_names

    def check_categories(self, names: Sequence[str]) -> None:
        names = list(dict.fromkeys(names))
        resolved = self.category_map.resolve(names, self.stage2.category_names)
        missing = [name for name in names if name not in resolved]
        if missing and self.unknown_category == "refuse":
            raise InputError(
                f"{self.name}: no shape decoder for categories {missing} "
                f"(it has {', '.join(self.stage2.category_names)}); map them with --category-map FILE.json, "
                f"e.g. {json.dumps({missing[0]: self.stage2.category_names[0]})}"
            )
        self.decoders.update(resolved)
        self.without_decoder += [name for name in missing if name not in self.without_decoder]

    def complete(
        self,
        images: Sequence[torch.Tensor],
        boxes: Sequence[torch.Tensor],
        visible_masks: Sequence[torch.Tensor],
        categories: Sequence[Sequence[str]],
    ) -> list[dict[str, torch.Tensor]]:
        unchecked = [
            name
            for names in categories
            for name in names
            if name not in self.decoders and name not in self.without_decoder
        ]
        if unchecked:  # check_categories(all names) up front keeps a user map's checks to the whole set
            self.check_categories(unchecked)
        device = next(self.stage2.parameters()).device
        index = {name: k + 1 for k, name in enumerate(self.stage2.category_names)}
        # label 0: the classification branch picks the decoder (complete_instances)
        labels = [
            torch.tensor(
                [index[self.decoders[n]] if n in self.decoders else 0 for n in names], dtype=torch.int64, device=device
            )
            for names in categories
        ]
        completed = [
            torch.tensor(
                [n in self.decoders or self.unknown_category == "predict" for n in names],
                dtype=torch.bool,
                device=device,
            )
            for names in categories
        ]
        visible_masks = [m.to(device) for m in visible_masks]
        with torch.no_grad():
            completions = complete_instances(
                self.stage2,
                self.settings,
                [i.to(device) for i in images],
                [b.to(device)[c] for b, c in zip(boxes, completed)],
                [m[c] for m, c in zip(visible_masks, completed)],
                [label[c] for label, c in zip(labels, completed)],
                uncompleted_visible_masks=[m[~c] for m, c in zip(visible_masks, completed)],
            )
        return [_kept_visible(c, m, completion) for c, m, completion in zip(completed, visible_masks, completions)]


def _kept_visible(
    completed: torch.Tensor, visible_masks: torch.Tensor, completion: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``completion`` of the instances ``completed`` (``(K,)`` bool) spread over all ``K``: the others
    keep their visible masks ``(K, H, W)`` as amodal masks, shape label 0 and zero vertices."""
    if bool(completed.all()):
        return completion
    count = len(completed)
    amodal = visible_masks.float().clone()
    amodal[completed] = completion["amodal_masks"]
    shape_labels = completion["shape_labels"].new_zeros(count)
    shape_labels[completed] = completion["shape_labels"]
    spread = {"amodal_masks": amodal, "shape_labels": shape_labels}
    if "vertices" in completion:
        vertices = completion["vertices"].new_zeros((count, *completion["vertices"].shape[1:]))
        vertices[completed] = completion["vertices"]
        spread.update(vertices=vertices, faces=completion["faces"])
    return spread


class VisibleCompleter:
    """The no-completion baseline: each visible mask is its own amodal mask."""

    name = "visible mask"
    is_3d = False
    decoders: Mapping[str, str] = {}
    decoder_names: Sequence[str] = ()

    def check_categories(self, names: Sequence[str]) -> None:
        """Any category: nothing is category-specific."""

    def complete(
        self,
        images: Sequence[torch.Tensor],
        boxes: Sequence[torch.Tensor],
        visible_masks: Sequence[torch.Tensor],
        categories: Sequence[Sequence[str]],
    ) -> list[dict[str, torch.Tensor]]:
        return [
            {"amodal_masks": masks.float(), "shape_labels": torch.zeros(len(masks), dtype=torch.int64)}
            for masks in visible_masks
        ]


def load_checkpoint_completer(
    path: str | os.PathLike,
    category_map: CategoryMap | None = None,
    device: str = "auto",
    unknown_category: str = "predict",
) -> CheckpointCompleter:
    """The stage 2 of a fine-tuned two-stage checkpoint, or of a pretraining one; a pretrained
    stage 2 crops instances as its views were framed (``input_framing``, else 1.1). Categories
    without a decoder are completed as ``unknown_category`` says (:data:`UNKNOWN_CATEGORY`).

    Raises:
        InputError: naming the file, when it holds neither.
    """
    path = Path(path)
    run = read_run(path)
    if run is not None and run.kind == FINE_TUNED:
        network = load_a3d_from_checkpoint(path)
        stage2, settings = network.stage2, network.settings
    else:
        stage2 = load_stage2_from_checkpoint(path)
        settings = A3DSettings(
            stage2_kind=stage2.kind,
            stage2=stage2.settings,
            crop_scale=stage2.settings.input_framing or DEFAULT_CROP_SCALE,
        )
    return CheckpointCompleter(
        stage2.to(resolve_device(device)),
        settings,
        category_map,
        name=f"stage 2 of {path.name}",
        unknown_category=unknown_category,
    )


SHAPEDICT_CROP_SIZE = 64
SHAPEDICT_MASKS_PER_CATEGORY = 2000
"""Training masks a category's K-means sees at most (evenly spread over the split)."""


def fit_shapedict_completer(
    dataset: str | os.PathLike,
    split: str = "train",
    device: str = "auto",
    settings: ShapeDictSettings | None = None,
    crop_size: int = SHAPEDICT_CROP_SIZE,
) -> CheckpointCompleter:
    """The ``shapedict`` completer of ``dataset``: its dictionary fitted on ``split``'s amodal masks,
    each cropped at the square around its amodal box (:data:`DEFAULT_CROP_SCALE`), as stage 2 crops."""
    from a3d_core.data.canonical import decode_segmentation, read_dataset

    source = read_dataset(dataset)
    if split not in source.splits:
        raise InputError(
            f"{dataset}: the shapedict completer learns from the {split!r} split, which it lacks "
            f"(has {', '.join(source.splits)})"
        )
    coco = source.load_split(split)
    names = coco.category_names
    sizes = {image["id"]: (int(image["height"]), int(image["width"])) for image in coco.images}
    by_category: dict[str, list] = {}
    for annotation in coco.annotations:
        if not annotation.get("iscrowd") and annotation["category_id"] in names:
            by_category.setdefault(names[annotation["category_id"]], []).append(annotation)
    if not by_category:
        raise InputError(f"{source.split_path(split)}: no annotations to build a shape dictionary from")
    category_names = sorted(by_category)
    masks, labels = [], []
    for index, name in enumerate(category_names):
        chosen = by_category[name]
        step = max(1, len(chosen) // SHAPEDICT_MASKS_PER_CATEGORY)
        for annotation in chosen[::step][:SHAPEDICT_MASKS_PER_CATEGORY]:
            height, width = sizes[annotation["image_id"]]
            amodal = torch.from_numpy(decode_segmentation(annotation["segmentation"], height, width).astype("float32"))
            x, y, w, h = annotation["bbox"]
            square = square_boxes(torch.tensor([[x, y, x + w, y + h]], dtype=torch.float32), DEFAULT_CROP_SCALE)
            masks.append((crop_masks(amodal[None], square, crop_size) >= 0.5).float())
            labels.append(index)
    stage2_settings = ASMSettings(image_size=crop_size, shapedict=settings or ShapeDictSettings())
    model = build_stage2("shapedict-no-refine", category_names, stage2_settings)
    model.fit_to_masks(torch.cat(masks), torch.tensor(labels))
    completion = A3DSettings(stage2_kind="shapedict-no-refine", stage2=stage2_settings, crop_scale=DEFAULT_CROP_SCALE)
    return CheckpointCompleter(
        model.to(resolve_device(device)),
        completion,
        CategoryMap(shipped=False),
        name=f"ShapeDict of {source.name}/{split}",
    )


class DeocclusionCompleter(CheckpointCompleter):
    """Deocclusion's baseline (Zhan et al., CVPR 2020, the paper's ref. 36): a class-agnostic
    completer trained on modal masks (``a3d prepare modal``), completing any category.

    With a ``2d-unet`` checkpoint it is Deocclusion's training recipe on a3d's U-Net (the closest
    to PCNet-M's), not PCNet-M's weights or exact network; any other class-agnostic kind trained
    on modal pairs (``a3d``: its shape prior learnt from real silhouettes) is given its instances
    the same way. Only the masks are returned, not a 3D kind's meshes. Each instance is given as it was
    trained (:mod:`a3d_core.data.prepare_modal`): its RGB is its masks ``(visible, eraser, 0)``,
    where the eraser is the union of the image's other instances' visible masks (the instances that
    may hide it; Deocclusion erases with the occluders its order graph finds, the completion
    protocol knows no order); the image's own pixels are not read.
    """

    def check_categories(self, names: Sequence[str]) -> None:
        (only,) = self.stage2.category_names
        self.decoders.update({name: only for name in names})

    def complete(
        self,
        images: Sequence[torch.Tensor],
        boxes: Sequence[torch.Tensor],
        visible_masks: Sequence[torch.Tensor],
        categories: Sequence[Sequence[str]],
    ) -> list[dict[str, torch.Tensor]]:
        encoded, single_boxes, single_masks, single_names, counts = [], [], [], [], []
        for image_boxes, masks, names in zip(boxes, visible_masks, categories):
            masks = masks.float()
            erasers = other_instances_masks(masks > 0.5) * (1 - masks)  # the others, off the instance itself
            for k in range(len(masks)):
                encoded.append(torch.stack([masks[k], erasers[k], torch.zeros_like(erasers[k])]))
                single_boxes.append(image_boxes[k : k + 1])
                single_masks.append(masks[k : k + 1])
                single_names.append(names[k : k + 1])
            counts.append(len(masks))
        singles = super().complete(encoded, single_boxes, single_masks, single_names) if encoded else []
        results, start = [], 0
        for masks, count in zip(visible_masks, counts):
            chosen = singles[start : start + count]
            start += count
            if not chosen:
                results.append({"amodal_masks": masks.float(), "shape_labels": torch.zeros(0, dtype=torch.int64)})
                continue
            results.append({key: torch.cat([c[key] for c in chosen]) for key in ("amodal_masks", "shape_labels")})
        return results


def load_deocclusion_completer(path: str | os.PathLike, device: str = "auto") -> DeocclusionCompleter:
    """The ``deocclusion`` completer of a checkpoint of ``a3d pretrain`` on ``a3d prepare modal
    --class-agnostic`` data: one category, any kind (a ``2d-unet`` is Deocclusion's baseline; an
    ``a3d`` one is A3D trained the Deocclusion way).

    Raises:
        InputError: naming the file, when its network has several categories.
    """
    loaded = load_checkpoint_completer(path, device=device)
    stage2 = loaded.stage2
    if len(stage2.category_names) != 1:
        raise InputError(
            f"{path}: the deocclusion completer needs a class-agnostic network (`a3d pretrain --model 2d-unet` on "
            f"`a3d prepare modal --class-agnostic` data), this one has categories {', '.join(stage2.category_names)}"
        )
    return DeocclusionCompleter(
        stage2, loaded.settings, name=f"Deocclusion recipe ({stage2.kind}) of {Path(path).name}"
    )


def _deocclusion(request: CompleterRequest) -> Completer:
    if request.checkpoint is None:
        raise InputError(
            "the deocclusion completer needs --checkpoint FILE (from `a3d pretrain --model 2d-unet` on "
            "`a3d prepare modal --class-agnostic` data)"
        )
    return load_deocclusion_completer(request.checkpoint, request.device)


def _shapedict(request: CompleterRequest) -> Completer:
    if request.dataset is None:
        raise InputError(
            "the shapedict completer learns from a prepared dataset's training split: use it with "
            "`a3d evaluate --protocol completion --dataset NAME`"
        )
    return fit_shapedict_completer(request.dataset, request.train_split, request.device)


def _checkpoint(request: CompleterRequest) -> Completer:
    if request.checkpoint is None:
        raise InputError("the checkpoint completer needs --checkpoint FILE (from `a3d pretrain` or `a3d finetune`)")
    return load_checkpoint_completer(request.checkpoint, request.category_map, request.device, request.unknown_category)


COMPLETERS: dict[str, Callable[[CompleterRequest], Completer]] = {
    "checkpoint": _checkpoint,
    "visible": lambda request: VisibleCompleter(),
    "shapedict": _shapedict,
    "deocclusion": _deocclusion,
}
"""Completer name -> builder (see the module docstring)."""


def build_completer(name: str, request: CompleterRequest) -> Completer:
    """The completer ``name`` of :data:`COMPLETERS`; an unknown name raises InputError listing them."""
    if name not in COMPLETERS:
        raise InputError(f"unknown completer {name!r} (known: {', '.join(COMPLETERS)})")
    return COMPLETERS[name](request)


@dataclass
class HandlingCounts:
    """How a run's instances were completed (each by one way, :meth:`add`).

    Attributes:
        own_prior: by the shape decoder of their own category (the same name).
        mapped: by a decoder the category map sends their category to; ``mappings``: class -> decoder.
        predicted_class: by the decoder of the class the classification branch predicted (a
            category without a decoder, ``unknown_category="predict"``); ``predicted_decoders``:
            category -> {decoder: instances}.
        visible_mask: kept as their visible masks (``unknown_category="visible"``, or the
            ``visible`` completer).
    """

    own_prior: int = 0
    mapped: int = 0
    predicted_class: int = 0
    visible_mask: int = 0
    mappings: dict[str, str] = field(default_factory=dict)
    predicted_decoders: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def instances(self) -> int:
        return self.own_prior + self.mapped + self.predicted_class + self.visible_mask

    def add(self, completer: Completer, categories: Sequence[str], shape_labels: torch.Tensor) -> None:
        """Count one image's instances: their category names and the ``shape_labels`` ``(K,)`` of
        the completion (:meth:`Completer.complete`)."""
        for name, label in zip(categories, shape_labels.tolist()):
            decoder = completer.decoders.get(name)
            if label == 0:
                self.visible_mask += 1
            elif decoder == name:
                self.own_prior += 1
            elif decoder is not None:
                self.mapped += 1
                self.mappings[name] = decoder
            else:
                self.predicted_class += 1
                chosen = self.predicted_decoders.setdefault(name, {})
                chosen[completer.decoder_names[label - 1]] = chosen.get(completer.decoder_names[label - 1], 0) + 1

    def summary(self) -> str:
        """One line, e.g. ``completed 12 instances: 7 by their category's prior, 3 mapped (cyclist ->
        car), 2 by the predicted class (object: car 2); 0 as visible masks``."""
        mapped = ", ".join(f"{name} -> {decoder}" for name, decoder in sorted(self.mappings.items()))
        predicted = "; ".join(
            f"{name}: " + ", ".join(f"{decoder} {count}" for decoder, count in sorted(chosen.items()))
            for name, chosen in sorted(self.predicted_decoders.items())
        )
        return (
            f"completed {self.instances} instances: {self.own_prior} by their category's prior, "
            f"{self.mapped} mapped" + (f" ({mapped})" if mapped else "") + f", "
            f"{self.predicted_class} by the predicted class" + (f" ({predicted})" if predicted else "") + "; "
            f"{self.visible_mask} as visible masks"
        )

    def as_dict(self) -> dict[str, Any]:
        """The counts as JSON-ready values (``images.json``, reports)."""
        return {
            "instances": self.instances,
            "own_prior": self.own_prior,
            "mapped": self.mapped,
            "predicted_class": self.predicted_class,
            "visible_mask": self.visible_mask,
            "mappings": dict(self.mappings),
            "predicted_decoders": {name: dict(chosen) for name, chosen in self.predicted_decoders.items()},
        }
