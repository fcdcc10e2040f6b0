"""``a3d predict``: amodal and visible masks for images, with a fine-tuned two-stage checkpoint.

:func:`predict_images` runs :class:`~a3d_core.model.a3d.A3DNetwork` on image files (any a user
is likely to hand over, :func:`a3d_core.io.images.read_image`) and writes into ``out``::

    predictions.json        COCO results: image_id, category_id, score, bbox (amodal [x, y, w, h]),
                            segmentation (amodal RLE), visible_mask (RLE)
    images.json             image_id -> file_name, width, height; the categories (id, name); the checkpoint
    <image>/occlusion.json  who occludes whom (:data:`OCCLUSION_FILE`): the instances' pairwise
                            relation and depth order from their amodal and visible masks
    <image>/panels.png      one row per instance (the best :data:`PANEL_INSTANCES`): input crop |
                            visible mask | amodal mask, the completed hidden part in orange
                            (:mod:`a3d_core.io.panels`); the label ends with the depth rank
                            (``depth 1/3``: front-most of three)
    <image>/overlay.png     the whole image: visible parts tinted, completed parts hatched, amodal outlines
    <image>/instance_<k>_amodal.png, instance_<k>_visible.png   per-instance masks (0 / 255)
    <image>/instance_<k>.obj                                    with ``meshes``: the instance's mesh

Instance ``k`` of an image is its ``k``-th best-scoring detection: the ``k``-th entry of the image
in ``predictions.json``, ``instance_<k>_*.png``, and index ``k`` in ``occlusion.json``, which holds
``image_id``; ``instances``; ``pairs``, one per occluding pair: ``front``, ``behind`` (instance
indices), ``confidence`` (in ``[0.5, 1]``: the share of the pair's hidden pixels covered the way it
points) and ``pixels`` (of ``behind``'s hidden part that ``front``'s visible mask covers);
``depth_order`` (instance indices, front-most first, a cycle broken at its weakest link) and
``depth_rank`` (each instance's place in it, 0 = front-most), from
:mod:`a3d_core.eval.occlusion_order` (Deocclusion's rule, Zhan et al., CVPR 2020).

Image ids are positions in the input list; :func:`predict_dataset` instead predicts one split of
a canonical dataset with the split's own image and category ids, so its ``predictions.json`` goes
straight into ``a3d evaluate --predictions``. An unreadable image is reported and skipped; the
others are still processed (``PredictResult.failed``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from a3d_core.data.canonical import read_dataset
from a3d_core.data.catalog import resolve_dataset
from a3d_core.data.detection import CategoryMapping
from a3d_core.errors import InputError
from a3d_core.eval.occlusion_order import occlusion_relation, relation_record
from a3d_core.eval.predictions import detections_to_results
from a3d_core.io.atomic import atomic_write_json
from a3d_core.io.images import find_images, overlay, read_image, write_png
from a3d_core.io.meshes import write_obj
from a3d_core.io.panels import instance_figure
from a3d_core.model.a3d import load_a3d_from_checkpoint
from a3d_core.runtime import resolve_device
from a3d_core.train.run_folders import FINE_TUNED, newest_checkpoint

PREDICTIONS_FILE = "predictions.json"
IMAGES_FILE = "images.json"
OCCLUSION_FILE = "occlusion.json"
PANEL_INSTANCES = 8
"""``panels.png`` shows this many of an image's detections, best-scoring first."""

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)`` after each image."""


@dataclass
class PredictSettings:
    """How to predict.

    Attributes:
        checkpoint: a fine-tuned two-stage checkpoint; ``None``: the newest under ``runs_root``
            (:func:`a3d_core.train.run_folders.newest_checkpoint`).
        score_threshold: detections scoring below this are left out.
        batch_size: images per forward pass.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        meshes: also write each instance's mesh (3D stage-2 kinds).
        masks: write the per-instance mask PNGs.
        overlays: write the panels and the overlay PNG of each image.
        overlay_scale: draw overlays this many times larger than the image (nearest neighbour),
            so that small images stay readable.
        runs_root: where to look for a checkpoint (default ``$A3D_RUNS_ROOT`` or ``./runs``).
    """

    checkpoint: Path | None = None
    score_threshold: float = 0.5
    batch_size: int = 1
    device: str = "auto"
    meshes: bool = False
    masks: bool = True
    overlays: bool = True
    overlay_scale: int = 1
    runs_root: Path | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.overlay_scale < 1:
            raise ValueError(f"overlay_scale must be at least 1, got {self.overlay_scale}")


@dataclass
class PredictResult:
    """What a prediction run wrote.

    Attributes:
        out: the output folder.
        checkpoint: the checkpoint used; ``checkpoint_found``: it was found under the runs folder.
        images: number of images predicted; ``instances``: detections written.
        failed: ``(file, reason)`` of each image that could not be read.
        predictions_file, images_file: the COCO results and the image/category index.
    """

    out: Path
    checkpoint: Path
    checkpoint_found: bool
    images: int = 0
    instances: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    predictions_file: Path | None = None
    images_file: Path | None = None


# ---------------------------------------------------------------------------------- running
@dataclass
class _ImageJob:
    image_id: int
    path: Path
    folder_name: str


def predict_images(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    settings: PredictSettings | None = None,
    progress: ProgressCallback | None = None,
) -> PredictResult:
    """Predict image files, folders or glob patterns (see the module docstring); ids = positions."""
    paths = find_images(inputs)
    jobs = [_ImageJob(index, path, name) for index, (path, name) in enumerate(zip(paths, image_folder_names(paths)))]
    return _predict(jobs, Path(out), settings or PredictSettings(), category_ids=None, progress=progress)


def predict_dataset(
    dataset: str | os.PathLike,
    split: str,
    out: str | os.PathLike,
    settings: PredictSettings | None = None,
    progress: ProgressCallback | None = None,
    data_root: str | os.PathLike | None = None,
) -> PredictResult:
    """Predict the images of a canonical dataset split with its image ids and category ids
    (matched to the checkpoint's categories by name), ready for ``a3d evaluate --predictions``."""
    folder = read_dataset(resolve_dataset(dataset, data_root))
    records = folder.load_split(split)
    mapping = CategoryMapping.from_categories(records.categories)
    paths = [folder.image_path(record) for record in records.images]
    jobs = [
        _ImageJob(int(record["id"]), path, name)
        for record, path, name in zip(records.images, paths, image_folder_names(paths))
    ]
    id_of_name = dict(zip(mapping.names, mapping.category_ids))
    return _predict(jobs, Path(out), settings or PredictSettings(), category_ids=id_of_name, progress=progress)


def image_folder_names(paths: Sequence[Path]) -> list[str]:
    """A unique output folder name per image: its stem, numbered when stems repeat."""
    names, seen = [], set()
    for path in paths:
        name, number = path.stem or "image", 1
        while name in seen:
            number += 1
            name = f"{path.stem}_{number}"
        seen.add(name)
        names.append(name)
    return names


def _predict(
    jobs: list[_ImageJob],
    out: Path,
    settings: PredictSettings,
    category_ids: Mapping[str, int] | None,
    progress: ProgressCallback | None,
) -> PredictResult:
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file, not a folder; choose another output folder for the predictions")
    found = settings.checkpoint is None
    checkpoint = newest_checkpoint(FINE_TUNED, settings.runs_root) if found else Path(settings.checkpoint)
    device = resolve_device(settings.device)
    model = load_a3d_from_checkpoint(checkpoint).to(device).eval()
    names = model.category_names
    if category_ids is None:
        label_ids = list(range(1, len(names) + 1))
    else:
        unknown = [name for name in names if name not in category_ids]
        if unknown:
            raise InputError(
                f"{checkpoint}: categories {unknown} are not in the dataset (it has {sorted(category_ids)})"
            )
        label_ids = [category_ids[name] for name in names]
    if settings.meshes and not model.stage2.is_3d:
        raise InputError(f"{checkpoint}: a {model.stage2.kind} model predicts no meshes; leave out --meshes")

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"{out}: cannot create the output folder ({error.strerror or error})") from None
    result = PredictResult(out=out, checkpoint=checkpoint, checkpoint_found=found)
    results: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    for start in range(0, len(jobs), settings.batch_size):
        batch_jobs, pixels = [], []
        for job in jobs[start : start + settings.batch_size]:
            try:
                pixels.append(read_image(job.path))
                batch_jobs.append(job)
            except InputError as error:
                result.failed.append((job.path, str(error)))
        if batch_jobs:
            tensors = [torch.from_numpy(p).permute(2, 0, 1).float().div(255.0).to(device) for p in pixels]
            with torch.no_grad():
                outputs = model(tensors)
            for job, image, detections in zip(batch_jobs, pixels, outputs):
                entries = detections_to_results(detections, job.image_id, label_ids, settings.score_threshold)
                results += entries
                write_image_outputs(
                    out / job.folder_name, image, detections, len(entries), settings, names, job.image_id
                )
                index.append(
                    {
                        "id": job.image_id,
                        "file_name": str(job.path),
                        "folder": job.folder_name,
                        "width": int(image.shape[1]),
                        "height": int(image.shape[0]),
                        "instances": len(entries),
                    }
                )
                result.images += 1
                result.instances += len(entries)
        if progress is not None:
            progress(min(start + settings.batch_size, len(jobs)), len(jobs))
    result.predictions_file = atomic_write_json(out / PREDICTIONS_FILE, results)
    result.images_file = atomic_write_json(
        out / IMAGES_FILE,
        {
            "checkpoint": str(checkpoint),
            "images": index,
            "categories": [{"id": category_id, "name": name} for category_id, name in zip(label_ids, names)],
            "failed": [{"file_name": str(path), "reason": reason} for path, reason in result.failed],
        },
        indent=1,
    )
    return result


def write_image_outputs(
    folder: Path,
    image: np.ndarray,
    detections: Mapping[str, torch.Tensor],
    kept: int,
    settings: PredictSettings,
    category_names: Sequence[str],
    image_id: int,
) -> None:
    """The occlusion relation, panels, overlay, per-instance mask PNGs and meshes of the ``kept``
    best-scoring detections (``amodal_masks``, ``visible_masks`` ``(K, H, W)``, ``scores``,
    ``labels`` ``(K,)``), written into ``folder`` (see the module docstring)."""
    order = torch.argsort(detections["scores"].detach().cpu(), descending=True, stable=True)[:kept]
    amodal_masks = detections["amodal_masks"].detach().cpu()[order] > 0.5
    visible_masks = detections["visible_masks"].detach().cpu()[order] > 0.5
    relation = relation_record(occlusion_relation(amodal_masks, visible_masks))
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / OCCLUSION_FILE, {"image_id": int(image_id), **relation}, indent=1)
    amodal, visible = amodal_masks.numpy(), visible_masks.numpy()
    if settings.overlays:
        write_png(folder / "overlay.png", overlay(image, visible, amodal, scale=settings.overlay_scale))
        shown = order[:PANEL_INSTANCES].tolist()
        labels = [
            f"{rank + 1} {category_names[int(detections['labels'][k]) - 1]} {float(detections['scores'][k]):.2f}"
            f" depth {relation['depth_rank'][rank] + 1}/{kept}"
            for rank, k in enumerate(shown)
        ]
        write_png(
            folder / "panels.png", instance_figure(image, visible[: len(shown)], amodal[: len(shown)], labels=labels)
        )
    for rank, k in enumerate(order.tolist()):
        if settings.masks:
            write_png(folder / f"instance_{rank:02d}_amodal.png", amodal[rank])
            write_png(folder / f"instance_{rank:02d}_visible.png", visible[rank])
        if settings.meshes:
            write_obj(folder / f"instance_{rank:02d}.obj", detections["vertices"][k], detections["faces"])
