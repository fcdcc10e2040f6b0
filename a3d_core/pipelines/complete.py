"""``a3d complete``: amodal masks for the visible instance masks of any segmenter (stage 2 alone).

:func:`complete_images` reads images and a VISIBLE-mask file, completes every instance with a
completer (:mod:`a3d_core.pipelines.completers`; by default the stage 2 of a pretraining or fine-tuned
checkpoint) and writes into ``out`` what ``a3d predict`` writes (:mod:`a3d_core.pipelines.predict`)::

    predictions.json   COCO results: image_id, category_id, score, bbox (box of the completed
                       amodal mask, [x, y, w, h]), segmentation (amodal RLE), visible_mask (the
                       input's, RLE): ready for ``a3d evaluate --predictions``
    images.json        image_id -> file_name, width, height; the categories (id, name); the checkpoint;
                       ``handling``: how the instances were completed (:class:`HandlingCounts`)
    <image>/overlay.png, instance_<k>_amodal.png, instance_<k>_visible.png, instance_<k>.obj (meshes)

The visible-mask file is a COCO results list (``[{...}, ...]``) or a COCO-style object with
``annotations`` (and optionally ``images`` and ``categories``). Per entry:

- the image: ``file_name`` (matched to the images given by path, by trailing path parts), or
  ``image_id``: an id of the file's ``images``, of ``images_index`` (any JSON with ``images``:
  ``a3d predict``'s ``images.json``, a dataset split), else the image's position in the sorted
  list of images (as ``a3d predict`` numbers them); neither: the one image given (SAM writes one
  file per image);
- the category: ``category_id`` (named by the file's ``categories`` or by ``categories``: a
  dataset name or folder, or a JSON file with ``categories``), or a name in ``category_name``;
  neither: class-agnostic, the category :data:`CLASS_AGNOSTIC` (SAM);
- ``segmentation``: the VISIBLE mask, RLE (at the image's size) or polygons (``visible_mask``
  instead when the entry has one: ``a3d predict``'s output, whose ``segmentation`` is amodal); ``score``
  (else SAM's ``predicted_iou``, else its ``stability_score``, else 1); optional ``bbox``
  ``[x, y, w, h]``: the amodal box stage 2 crops around (default: the visible mask's box; a
  detector's amodal box, as ``a3d predict`` writes, frames the instance as stage 2 was trained).
  Other keys (SAM's ``area``, ``point_coords``, ``crop_box``) are ignored.

A category matches the checkpoint's by name, else through the category map
(:mod:`a3d_core.data.category_map`); one with neither (a class-agnostic ``object``, KINS'
``cyclist``) is completed as ``unknown_category`` says
(:data:`~a3d_core.pipelines.completers.UNKNOWN_CATEGORY`): by default through the decoder of the
class the classification branch predicts (paper 3.3, as at test time). Every entry is checked
before anything is written: an unknown image or category, a mask of the wrong size or an empty
one, or (``unknown_category="refuse"``) a category the checkpoint has no decoder for raises one
:class:`InputError` naming the entry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from a3d_core.data.canonical import decode_segmentation, mask_bbox, read_dataset, read_json
from a3d_core.data.catalog import resolve_dataset
from a3d_core.data.category_map import CategoryMap
from a3d_core.errors import InputError
from a3d_core.io.atomic import atomic_write_json
from a3d_core.io.images import find_images, read_image
from a3d_core.pipelines.completers import UNKNOWN_CATEGORY, CompleterRequest, HandlingCounts, build_completer
from a3d_core.pipelines.evaluate import completion_results
from a3d_core.pipelines.predict import (
    IMAGES_FILE,
    PREDICTIONS_FILE,
    PredictSettings,
    image_folder_names,
    write_image_outputs,
)

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)`` after each batch of images."""
CLASS_AGNOSTIC = "object"
"""The category of entries that name none (SAM's masks), as class-agnostic COCOA names its one class."""


@dataclass
class CompleteSettings:
    """How to complete.

    Attributes:
        checkpoint: a pretraining (``a3d pretrain``) or fine-tuned (``a3d finetune``) checkpoint.
        completer: a name of :data:`~a3d_core.pipelines.completers.COMPLETERS`.
        categories: names the file's ``category_id`` values: a dataset name or folder, or a JSON
            file with a ``categories`` list.
        images_index: a JSON file whose ``images`` (``id``, ``file_name``) resolve ``image_id``.
        category_map: JSON ``{class: checkpoint category}`` over the shipped map.
        shipped_category_map: use the shipped map (:mod:`a3d_core.data.category_map`).
        unknown_category: how a category without a decoder is completed
            (:data:`~a3d_core.pipelines.completers.UNKNOWN_CATEGORY`).
        batch_size: images per completion pass.
        device, meshes, masks, overlays, overlay_scale: as :class:`~a3d_core.pipelines.predict.PredictSettings`.
        data_root: where dataset names are looked up.
    """

    checkpoint: Path | None = None
    completer: str = "checkpoint"
    categories: str | Path | None = None
    images_index: Path | None = None
    category_map: Path | None = None
    shipped_category_map: bool = True
    unknown_category: str = "predict"
    batch_size: int = 1
    device: str = "auto"
    meshes: bool = False
    masks: bool = True
    overlays: bool = True
    overlay_scale: int = 1
    data_root: Path | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.overlay_scale < 1:
            raise ValueError(f"overlay_scale must be at least 1, got {self.overlay_scale}")
        if self.unknown_category not in UNKNOWN_CATEGORY:
            raise ValueError(
                f"unknown_category must be one of {', '.join(UNKNOWN_CATEGORY)}, got {self.unknown_category!r}"
            )


@dataclass
class CategoryCount:
    """Per category: instances completed, their visible and completed amodal areas (pixels)."""

    instances: int = 0
    visible_area: int = 0
    amodal_area: int = 0

    @property
    def completed_fraction(self) -> float:
        """The share of the amodal area that was hidden: ``1 - visible / amodal``."""
        return 1.0 - self.visible_area / self.amodal_area if self.amodal_area else 0.0


@dataclass
class CompleteResult:
    """What a completion run wrote.

    Attributes:
        out: the output folder; completer: what completed (e.g. ``stage 2 of best.pt``).
        images: images with at least one instance; instances: instances completed.
        per_category: category name -> :class:`CategoryCount`.
        decoders: category name -> the checkpoint category whose shape decoder completed it (by
            name or through the map).
        handling: how the instances were completed (own prior, mapped, predicted class, visible mask).
        predictions_file, images_file: the COCO results and the image/category index.
    """

    out: Path
    completer: str
    images: int = 0
    instances: int = 0
    per_category: dict[str, CategoryCount] = field(default_factory=dict)
    decoders: dict[str, str] = field(default_factory=dict)
    handling: HandlingCounts = field(default_factory=HandlingCounts)
    predictions_file: Path | None = None
    images_file: Path | None = None


@dataclass
class _Instance:
    entry: int
    category: str
    score: float
    visible: np.ndarray
    box: tuple[float, float, float, float]


@dataclass
class _Image:
    image_id: int
    path: Path
    folder_name: str
    instances: list[_Instance] = field(default_factory=list)


def complete_images(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    visible: str | os.PathLike,
    out: str | os.PathLike,
    settings: CompleteSettings | None = None,
    progress: ProgressCallback | None = None,
) -> CompleteResult:
    """Complete the visible masks of ``visible`` on the images ``inputs`` (see the module docstring)."""
    settings = settings or CompleteSettings()
    visible = Path(visible)
    paths = find_images(inputs)
    entries, file_images, file_categories = _read_visible_file(visible)
    categories = _categories(visible, file_categories, settings)
    images = _resolve_images(visible, paths, file_images, settings)
    category_ids = _read_instances(visible, entries, images, categories)
    names = list(category_ids)

    request = CompleterRequest(
        checkpoint=settings.checkpoint,
        category_map=CategoryMap.load(settings.category_map, settings.shipped_category_map),
        unknown_category=settings.unknown_category,
        device=settings.device,
    )
    completer = build_completer(settings.completer, request)
    completer.check_categories(names)
    if settings.meshes and not getattr(completer, "is_3d", False):
        raise InputError(f"{completer.name} predicts no meshes; leave out --meshes")
    kept_visible = [name for name in names if name not in completer.decoders]
    if settings.meshes and settings.unknown_category == "visible" and kept_visible:
        raise InputError(
            f"{completer.name} has no shape decoder for {kept_visible}, whose visible masks are kept and have no "
            "meshes: leave out --meshes, or complete them by the predicted class (--unknown-category predict)"
        )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = CompleteResult(out=out, completer=completer.name, decoders=dict(completer.decoders))
    jobs = [job for job in images if job.instances]
    predictions: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    drawing = PredictSettings(
        device=settings.device,
        meshes=settings.meshes,
        masks=settings.masks,
        overlays=settings.overlays,
        overlay_scale=settings.overlay_scale,
    )
    for start in range(0, len(jobs), settings.batch_size):
        batch = jobs[start : start + settings.batch_size]
        pixels = [read_image(job.path) for job in batch]
        tensors = [torch.from_numpy(p).permute(2, 0, 1).float().div(255.0) for p in pixels]
        visible_masks = [torch.from_numpy(np.stack([i.visible for i in job.instances])).float() for job in batch]
        completions = completer.complete(
            tensors,
            [torch.tensor([i.box for i in job.instances]) for job in batch],
            visible_masks,
            [[i.category for i in job.instances] for job in batch],
        )
        for job, image, masks, completion in zip(batch, pixels, visible_masks, completions):
            amodal = completion["amodal_masks"].detach().cpu()
            labels = torch.tensor([names.index(i.category) + 1 for i in job.instances])
            scores = torch.tensor([i.score for i in job.instances])
            predictions += completion_results(
                job.image_id, amodal, masks, labels, scores, [category_ids[n] for n in names]
            )
            detections = {
                "scores": scores,
                "labels": labels,
                "amodal_masks": amodal,
                "visible_masks": masks,
                **{key: value.detach().cpu() for key, value in completion.items() if key in ("vertices", "faces")},
            }
            write_image_outputs(
                out / job.folder_name, image, detections, len(job.instances), drawing, names, job.image_id
            )
            _count(result, job, amodal)
            result.handling.add(completer, [i.category for i in job.instances], completion["shape_labels"].cpu())
            index.append(
                {
                    "id": job.image_id,
                    "file_name": str(job.path),
                    "folder": job.folder_name,
                    "width": int(image.shape[1]),
                    "height": int(image.shape[0]),
                    "instances": len(job.instances),
                }
            )
        if progress is not None:
            progress(min(start + settings.batch_size, len(jobs)), len(jobs))
    result.predictions_file = atomic_write_json(out / PREDICTIONS_FILE, predictions)
    result.images_file = atomic_write_json(
        out / IMAGES_FILE,
        {
            "checkpoint": str(settings.checkpoint) if settings.checkpoint else None,
            "completer": completer.name,
            "visible": str(visible),
            "images": index,
            "categories": [{"id": category_ids[name], "name": name} for name in names],
            "handling": result.handling.as_dict(),
        },
        indent=1,
    )
    return result


def _count(result: CompleteResult, job: _Image, amodal: torch.Tensor) -> None:
    result.images += 1
    result.instances += len(job.instances)
    for instance, mask in zip(job.instances, amodal):
        counts = result.per_category.setdefault(instance.category, CategoryCount())
        counts.instances += 1
        counts.visible_area += int(instance.visible.sum())
        counts.amodal_area += int((mask > 0.5).sum())


# ------------------------------------------------------------------------------------- input
def _read_visible_file(path: Path) -> tuple[list[Any], list[Any] | None, list[Any] | None]:
    """The entries, and the file's own ``images`` and ``categories`` when it is an object."""
    data = read_json(path)
    if isinstance(data, list):
        entries, images, categories = data, None, None
    elif isinstance(data, Mapping) and isinstance(data.get("annotations"), list):
        entries, images, categories = data["annotations"], data.get("images"), data.get("categories")
    else:
        raise InputError(
            f"{path}: expected a COCO results list, or an object with 'annotations' (visible instance masks)"
        )
    if not entries:
        raise InputError(f"{path}: no instances to complete")
    return entries, images, categories


def _category_list(source: str, categories: Any) -> dict[int, str]:
    if not isinstance(categories, list) or not all(
        isinstance(c, Mapping) and isinstance(c.get("id"), int) and isinstance(c.get("name"), str) for c in categories
    ):
        raise InputError(f"{source}: 'categories' must be a list of {{'id': int, 'name': str}}")
    return {int(c["id"]): str(c["name"]) for c in categories}


def _categories(visible: Path, file_categories: Any, settings: CompleteSettings) -> dict[int, str] | None:
    """category id -> name, from the file, else from ``settings.categories``; ``None``: names only."""
    if file_categories is not None:
        return _category_list(str(visible), file_categories)
    if settings.categories is None:
        return None
    source = Path(settings.categories)
    if source.is_file():
        data = read_json(source)
        return _category_list(str(source), data.get("categories") if isinstance(data, Mapping) else None)
    folder = read_dataset(resolve_dataset(settings.categories, settings.data_root))
    return _category_list(str(folder.root), folder.load_split(folder.splits[0]).categories)


def _resolve_images(visible: Path, paths: list[Path], file_images: Any, settings: CompleteSettings) -> list[_Image]:
    """The images given, with ids: from an images table (the file's, else ``images_index``) by
    file name, else positions; each entry is attached later by :func:`_read_instances`."""
    table = file_images
    table_source = str(visible)
    if table is None and settings.images_index is not None:
        data = read_json(settings.images_index)
        table, table_source = (data.get("images") if isinstance(data, Mapping) else None), str(settings.images_index)
    names = image_folder_names(paths)
    if table is None:
        return [_Image(position, path, name) for position, (path, name) in enumerate(zip(paths, names))]
    if not isinstance(table, list) or not all(
        isinstance(i, Mapping) and isinstance(i.get("id"), int) and isinstance(i.get("file_name"), str) for i in table
    ):
        raise InputError(f"{table_source}: 'images' must be a list of {{'id': int, 'file_name': str}}")
    ids = {}
    for record in table:
        match = _match_file(paths, record["file_name"])
        if match is not None:
            ids.setdefault(match, int(record["id"]))
    return [_Image(ids[path], path, name) for path, name in zip(paths, names) if path in ids]


def _match_file(paths: Sequence[Path], file_name: str) -> Path | None:
    """The image whose path ends with the parts of ``file_name`` (the fewest parts that decide)."""
    wanted = Path(file_name).parts
    matches = [path for path in paths if path.parts[-len(wanted) :] == wanted] if wanted else []
    if not matches:
        matches = [path for path in paths if path.name == Path(file_name).name]
    return matches[0] if len(matches) == 1 else None


def _read_instances(
    visible: Path, entries: list[Any], images: list[_Image], categories: dict[int, str] | None
) -> dict[str, int]:
    """Check every entry and attach it to its image; returns category name -> output category id."""
    by_id = {image.image_id: image for image in images}
    sizes: dict[int, tuple[int, int]] = {}
    category_ids: dict[str, int] = {}
    for k, entry in enumerate(entries):
        where = f"{visible}: entry {k}"
        if not isinstance(entry, Mapping):
            raise InputError(f"{where}: expected an object, got {type(entry).__name__}")
        image = _entry_image(where, entry, by_id, images)
        name, category_id = _entry_category(where, entry, categories, category_ids)
        category_ids.setdefault(name, category_id)
        if image.image_id not in sizes:
            sizes[image.image_id] = read_image(image.path).shape[:2]
        height, width = sizes[image.image_id]
        key = "visible_mask" if "visible_mask" in entry else "segmentation"
        if key not in entry:
            raise InputError(f"{where}: no 'segmentation' (the visible mask)")
        try:
            mask = decode_segmentation(entry[key], height, width)
        except (ValueError, TypeError) as error:
            raise InputError(
                f"{where}: bad {key!r} for the {width}x{height} image {image.path.name} ({error})"
            ) from None
        if not mask.any():
            raise InputError(f"{where}: the visible mask is empty")
        score = _entry_score(where, entry)
        image.instances.append(_Instance(k, name, score, mask, _entry_box(where, entry, mask)))
    return category_ids


def _entry_image(where: str, entry: Mapping[str, Any], by_id: Mapping[int, _Image], images: list[_Image]) -> _Image:
    if "file_name" not in entry and "image_id" not in entry:
        if len(images) != 1:
            raise InputError(
                f"{where}: no 'image_id' or 'file_name', which only a single image allows ({len(images)} images given)"
            )
        return images[0]
    if isinstance(entry.get("file_name"), str):
        match = _match_file([image.path for image in images], entry["file_name"])
        if match is None:
            raise InputError(f"{where}: file_name {entry['file_name']!r} matches none (or several) of the images given")
        return next(image for image in images if image.path == match)
    image_id = entry.get("image_id")
    if not isinstance(image_id, int) or isinstance(image_id, bool):
        raise InputError(f"{where}: needs an integer 'image_id' or a 'file_name'")
    if image_id not in by_id:
        raise InputError(f"{where}: image_id {image_id} is not among the images given ({len(by_id)} images)")
    return by_id[image_id]


def _entry_category(
    where: str, entry: Mapping[str, Any], categories: dict[int, str] | None, category_ids: dict[str, int]
) -> tuple[str, int]:
    """(name, output id): the id of ``categories`` when given, else numbered by first appearance;
    an entry without ``category_name`` and ``category_id`` is :data:`CLASS_AGNOSTIC`."""
    name = entry.get("category_name")
    if name is None and entry.get("category_id") is None:
        name = CLASS_AGNOSTIC
    if isinstance(name, str) and name.strip():
        name = name.strip()
        by_name = {n: i for i, n in (categories or {}).items()}
        if name in by_name or name in category_ids:
            return name, by_name.get(name, category_ids.get(name))
        return name, max([*category_ids.values(), *(categories or {}), 0]) + 1
    category_id = entry.get("category_id")
    if not isinstance(category_id, int) or isinstance(category_id, bool):
        raise InputError(f"{where}: needs an integer 'category_id' or a 'category_name'")
    if categories is None:
        raise InputError(
            f"{where}: category_id {category_id} but no categories name it: pass --categories DATASET|JSON "
            "(or give 'categories' in the file, or 'category_name' per entry)"
        )
    if category_id not in categories:
        raise InputError(f"{where}: unknown category_id {category_id} (known: {sorted(categories)})")
    return categories[category_id], category_id


def _entry_score(where: str, entry: Mapping[str, Any]) -> float:
    """``score``, else SAM's ``predicted_iou``, else its ``stability_score``, else 1."""
    key = next((key for key in ("score", "predicted_iou", "stability_score") if key in entry), None)
    if key is None:
        return 1.0
    score = entry[key]
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise InputError(f"{where}: {key!r} must be a number, got {score!r}")
    return float(score)


def _entry_box(where: str, entry: Mapping[str, Any], mask: np.ndarray) -> tuple[float, float, float, float]:
    """xyxy: the entry's ``bbox`` (``[x, y, w, h]``), else the visible mask's box."""
    box = entry.get("bbox")
    if box is None:
        box = mask_bbox(mask)
    elif (
        not (
            isinstance(box, list)
            and len(box) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
        )
        or box[2] <= 0
        or box[3] <= 0
    ):
        raise InputError(f"{where}: 'bbox' must be [x, y, w, h] with w, h > 0, got {box!r}")
    x, y, w, h = (float(v) for v in box)
    return x, y, x + w, y + h
