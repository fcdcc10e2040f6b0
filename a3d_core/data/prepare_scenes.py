"""``a3d prepare scenes``: the built-in multi-object amodal dataset, in the canonical format.

:func:`prepare_scenes` renders a pool of object views per split (shape-library objects at random
poses; :func:`a3d_core.data.scenes.render_object_views`), composes scenes from them
(:func:`a3d_core.data.scenes.compose_scene`) and writes train and val splits with
:func:`a3d_core.data.canonical.write_dataset`.

* Rendering dominates the cost, so every view is reused in several scenes (at other sizes,
  positions and depths). The train and val pools hold different objects: object ``k`` of a
  category is ``generate_shape(category, (seed, OBJECT_STREAM, category index, k))`` with
  ``k < train_objects`` for train and the next ``val_objects`` indices for val, so val objects
  are unseen in training. ``OBJECT_STREAM`` keeps them apart from the objects of ``a3d prepare
  shapenet`` (seeded ``(seed, category index, k)``), so a shape prior pretrained there has not
  seen the scenes' objects either.
* Scene ``i`` of a split draws from ``numpy.random.default_rng((seed, split code, i))`` and views
  are rendered from per-object generators, so the output is a function of the request alone
  (same seed, same bytes), whatever the number of workers.
* Categories are the shape library's names with fixed ids (airplane 1 ... watercraft 13); a
  ``categories`` subset lists only its own categories and keeps their ids.
"""

from __future__ import annotations

import io
import math
import multiprocessing
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from a3d_core.data.canonical import AmodalDataset, AmodalSplit, amodal_annotation, write_dataset
from a3d_core.data.catalog import data_root
from a3d_core.data.scene_preview import preview_grid
from a3d_core.data.scenes import (
    ObjectView,
    PoseSettings,
    Scene,
    SceneSettings,
    compose_scene,
    random_viewpoints,
    render_object_views,
)
from a3d_core.data.shapes import CATEGORIES, generate_shape
from a3d_core.errors import InputError
from a3d_core.io.atomic import atomic_write_bytes

SPLITS = ("train", "val")
SPLIT_CODES = {"train": 0, "val": 1}
OBJECT_STREAM = 5
"""Part of every scenes object's seed, so scenes objects differ from ``prepare shapenet``'s."""
POSE_STREAM = 1
"""Appended to an object's seed for the generator of its camera poses (its mesh uses the bare seed)."""
OCCLUSION_BINS = 10
PNG_COMPRESS_LEVEL = 3
"""zlib level of the scene PNGs: faster to encode than PIL's default 6, slightly larger files (docs/performance.md)."""
COMPOSE_CHUNK = 8

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; stages: ``render``, ``train``, ``val``."""


@dataclass(frozen=True)
class ObjectPoolSettings:
    """The objects rendered for each split, per category.

    train_objects, val_objects: distinct objects per category in each split's pool.
    views_per_object: random poses rendered per object.
    render_size: render resolution; ``None`` picks the smallest at which no view is enlarged
        by more than ``max_enlargement`` in a scene (see :func:`render_size_for`).
    max_enlargement: how much bilinear upscaling of a view is tolerated when the render size is
        picked automatically (rendering time grows with the square of the render size).
    """

    train_objects: int = 4
    val_objects: int = 2
    views_per_object: int = 3
    render_size: int | None = None
    max_enlargement: float = 1.25
    poses: PoseSettings = field(default_factory=PoseSettings)

    def __post_init__(self) -> None:
        if self.train_objects < 1 or self.val_objects < 1 or self.views_per_object < 1:
            raise ValueError("train_objects, val_objects and views_per_object must be at least 1")
        if self.render_size is not None and self.render_size < 16:
            raise ValueError(f"render_size must be at least 16, got {self.render_size}")
        if self.max_enlargement < 1.0:
            raise ValueError(f"max_enlargement must be at least 1, got {self.max_enlargement}")


def render_size_for(scene: SceneSettings, poses: PoseSettings, max_enlargement: float = 1.0) -> int:
    """The render size (a multiple of 8) at which the largest object of a scene is drawn at
    scale <= ``max_enlargement``.

    A unit diagonal covers ``size / (2 d tan(fov / 2))`` render pixels at distance ``d``; the
    farthest camera gives the fewest, and the scene's largest span, divided by the allowed
    enlargement, must not exceed them.
    """
    farthest = poses.distance_range[1]
    needed = (
        scene.largest_object_pixels / max_enlargement * 2.0 * farthest * math.tan(math.radians(poses.fov_degrees / 2))
    )
    return max(16, 8 * math.ceil(needed / 8))


@dataclass(frozen=True)
class ScenesRequest:
    """What to build and where.

    ``out_dir`` defaults to ``<data root>/scenes``; ``preview_path`` (optional) receives a PNG
    grid of the first ``preview_scenes`` train scenes.
    """

    train_images: int = 200
    val_images: int = 50
    categories: tuple[str, ...] = CATEGORIES
    scene: SceneSettings = field(default_factory=SceneSettings)
    pool: ObjectPoolSettings = field(default_factory=ObjectPoolSettings)
    seed: int = 0
    workers: int = 1
    out_dir: Path | None = None
    data_root_dir: Path | None = None
    overwrite: bool = False
    preview_path: Path | None = None
    preview_scenes: int = 4

    def __post_init__(self) -> None:
        if self.train_images < 1 or self.val_images < 0:
            raise InputError(
                f"need at least 1 train image and no negative val count, got {self.train_images} and {self.val_images}"
            )
        if not self.categories:
            raise InputError("choose at least one category")
        unknown = [name for name in self.categories if name not in CATEGORIES]
        if unknown:
            raise InputError(f"unknown categories {', '.join(unknown)} (known: {', '.join(CATEGORIES)})")
        if len(set(self.categories)) != len(self.categories):
            raise InputError(f"categories listed twice: {', '.join(self.categories)}")
        if self.workers < 1:
            raise InputError(f"workers must be at least 1, got {self.workers}")
        if self.seed < 0:
            raise InputError(f"seed must be non-negative, got {self.seed}")
        if self.preview_scenes < 1:
            raise InputError(f"preview_scenes must be at least 1, got {self.preview_scenes}")

    @property
    def target_dir(self) -> Path:
        return self.out_dir if self.out_dir is not None else data_root(self.data_root_dir) / "scenes"

    @property
    def render_size(self) -> int:
        return self.pool.render_size or render_size_for(self.scene, self.pool.poses, self.pool.max_enlargement)

    @property
    def split_sizes(self) -> dict[str, int]:
        sizes = {"train": self.train_images, "val": self.val_images}
        return {split: count for split, count in sizes.items() if count > 0}


@dataclass
class SplitSummary:
    """Counts for one written split."""

    images: int = 0
    instances: int = 0
    dropped_objects: int = 0
    objects: int = 0
    views: int = 0
    per_category: Counter = field(default_factory=Counter)
    occlusion_histogram: list[int] = field(default_factory=lambda: [0] * OCCLUSION_BINS)
    occlusion_sum: float = 0.0
    occluded_instances: int = 0

    @property
    def mean_occlusion(self) -> float:
        return self.occlusion_sum / self.instances if self.instances else 0.0

    @property
    def occluded_share(self) -> float:
        """Share of instances with any occlusion (rate > 0)."""
        return self.occluded_instances / self.instances if self.instances else 0.0

    def add(self, annotation: dict[str, Any], category: str) -> None:
        rate = float(annotation["occlusion_rate"])
        self.instances += 1
        self.per_category[category] += 1
        self.occlusion_histogram[min(int(rate * OCCLUSION_BINS), OCCLUSION_BINS - 1)] += 1
        self.occlusion_sum += rate
        self.occluded_instances += rate > 0


@dataclass
class ScenesResult:
    """The written dataset, a summary per split, and the preview written (if asked)."""

    dataset: AmodalDataset
    splits: dict[str, SplitSummary]
    render_size: int
    preview_path: Path | None


# ---------------------------------------------------------------------------------- object pools
@dataclass(frozen=True)
class _ObjectTask:
    """One object to render: its category, index in the library, and the views to draw."""

    category: str
    category_index: int
    object_index: int
    seed: int
    views: int
    render_size: int
    poses: PoseSettings

    @property
    def object_id(self) -> str:
        return f"scenes/{self.category}/{self.object_index:04d}"


def _render_task(task: _ObjectTask) -> list[ObjectView]:
    object_seed = (task.seed, OBJECT_STREAM, task.category_index, task.object_index)
    cameras = random_viewpoints(np.random.default_rng((*object_seed, POSE_STREAM)), task.views, task.poses)
    mesh = generate_shape(task.category, object_seed)
    return render_object_views(mesh, task.category, task.object_id, cameras, task.render_size, task.poses)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _object_tasks(request: ScenesRequest, split: str) -> list[_ObjectTask]:
    pool = request.pool
    first = 0 if split == "train" else pool.train_objects
    count = pool.train_objects if split == "train" else pool.val_objects
    return [
        _ObjectTask(
            name, CATEGORIES.index(name), index, request.seed, pool.views_per_object, request.render_size, pool.poses
        )
        for name in request.categories
        for index in range(first, first + count)
    ]


def render_pools(request: ScenesRequest, progress: ProgressCallback | None = None) -> dict[str, list[ObjectView]]:
    """Every split's pool of object views, rendered in ``request.workers`` processes."""
    tasks = {split: _object_tasks(request, split) for split in request.split_sizes}
    flat = [task for split_tasks in tasks.values() for task in split_tasks]
    rendered: list[list[ObjectView]] = []
    if request.workers == 1:
        for task in flat:
            rendered.append(_render_task(task))
            if progress is not None:
                progress("render", len(rendered), len(flat))
    else:
        with multiprocessing.get_context("spawn").Pool(request.workers, initializer=_worker_init) as workers:
            for views in workers.imap(_render_task, flat):
                rendered.append(views)
                if progress is not None:
                    progress("render", len(rendered), len(flat))
    pools, start = {}, 0
    for split, split_tasks in tasks.items():
        pools[split] = [view for views in rendered[start : start + len(split_tasks)] for view in views]
        start += len(split_tasks)
    return pools


# ------------------------------------------------------------------------------------ composing
@dataclass
class _SceneRecord:
    """One composed scene as written: PNG bytes, COCO image and annotations (ids local: 1, 2, ...)."""

    png: bytes
    image: dict[str, Any]
    annotations: list[dict[str, Any]]
    categories: list[str]
    dropped: int


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def _category_list(request: ScenesRequest) -> list[dict[str, Any]]:
    return [{"id": CATEGORIES.index(name) + 1, "name": name, "supercategory": "shape"} for name in request.categories]


def _compose(request: ScenesRequest, pool: Sequence[ObjectView], split: str, index: int) -> Scene:
    """Scene ``index`` of ``split``: a function of the seed, the split, the index and the pool."""
    return compose_scene(np.random.default_rng((request.seed, SPLIT_CODES[split], index)), pool, request.scene)


def _record(request: ScenesRequest, pool: Sequence[ObjectView], split: str, index: int) -> _SceneRecord:
    scene = _compose(request, pool, split, index)
    image_id = index + 1
    image = {
        "id": image_id,
        "file_name": f"{split}/{image_id:06d}.png",
        "width": request.scene.width,
        "height": request.scene.height,
        "background": scene.background,
    }
    annotations = [
        amodal_annotation(
            k + 1,
            image_id,
            CATEGORIES.index(instance.view.category) + 1,
            instance.amodal,
            instance.visible,
            object_id=instance.view.object_id,
            view_id=instance.view.view_id,
            camera=instance.view.camera,
            depth_order=instance.depth_order,
        )
        for k, instance in enumerate(scene.instances)
    ]
    categories = [instance.view.category for instance in scene.instances]
    return _SceneRecord(_png(scene.image), image, annotations, categories, scene.dropped)


_worker_state: dict[str, Any] = {}
"""A compose worker's request and pools, set once by :func:`_composer_init`."""


def _composer_init(request: ScenesRequest, pools: dict[str, list[ObjectView]]) -> None:
    _worker_state.update(request=request, pools=pools)


def _record_task(task: tuple[str, int]) -> _SceneRecord:
    split, index = task
    return _record(_worker_state["request"], _worker_state["pools"][split], split, index)


def _records(request: ScenesRequest, pools: dict[str, list[ObjectView]]) -> Iterator[_SceneRecord]:
    """Every split's scene records in order (train 1..N, then val 1..M), in ``workers`` processes."""
    tasks = [(split, index) for split, count in request.split_sizes.items() for index in range(count)]
    if request.workers == 1:
        for split, index in tasks:
            yield _record(request, pools[split], split, index)
        return
    with multiprocessing.get_context("spawn").Pool(
        request.workers, initializer=_composer_init, initargs=(request, pools)
    ) as workers:
        yield from workers.imap(_record_task, tasks, chunksize=COMPOSE_CHUNK)


def _collect(
    request: ScenesRequest,
    pools: dict[str, list[ObjectView]],
    splits: dict[str, AmodalSplit],
    summaries: dict[str, SplitSummary],
    progress: ProgressCallback | None,
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(file name, PNG bytes)`` per scene while filling ``splits`` and ``summaries``.

    :func:`write_dataset` consumes all images before it writes the split JSONs, so the splits
    are complete by the time they are written, and no more than a few images are held in memory.
    """
    next_annotation_id = {split: 1 for split in splits}
    for record in _records(request, pools):
        split = record.image["file_name"].split("/")[0]
        coco, summary = splits[split], summaries[split]
        coco.images.append(record.image)
        for annotation, category in zip(record.annotations, record.categories):
            annotation["id"] = next_annotation_id[split]
            next_annotation_id[split] += 1
            coco.annotations.append(annotation)
            summary.add(annotation, category)
        summary.images += 1
        summary.dropped_objects += record.dropped
        yield record.image["file_name"], record.png
        if progress is not None:
            progress(split, summary.images, request.split_sizes[split])


def prepare_scenes(request: ScenesRequest, progress: ProgressCallback | None = None) -> ScenesResult:
    """Render, compose and write the scenes dataset; see the module docstring.

    Raises :class:`InputError` when the target exists and ``overwrite`` is false (checked before
    any rendering).
    """
    target = request.target_dir
    if target.exists() and not request.overwrite:
        raise InputError(f"{target}: already exists (pass --overwrite to replace it)")
    pools = render_pools(request, progress)
    settings = {
        "seed": request.seed,
        "categories": list(request.categories),
        "render_size": request.render_size,
        "scene": asdict(request.scene),
        "pool": asdict(request.pool),
    }
    splits = {
        split: AmodalSplit(categories=_category_list(request), info={"source": "scenes", "split": split, **settings})
        for split in request.split_sizes
    }
    summaries = {
        split: SplitSummary(objects=len({v.object_id for v in pools[split]}), views=len(pools[split]))
        for split in request.split_sizes
    }
    dataset = write_dataset(
        target,
        name="scenes",
        source="scenes",
        splits=splits,
        overwrite=request.overwrite,
        write_images=_collect(request, pools, splits, summaries, progress),
        extra_manifest={"generator": settings},
    )
    if request.preview_path is not None:
        # recomposed here rather than shipped back from the workers: cheap, and identical by construction
        shown = range(min(request.preview_scenes, request.train_images))
        grid = preview_grid([_compose(request, pools["train"], "train", index) for index in shown])
        atomic_write_bytes(request.preview_path, _png(grid))
    return ScenesResult(dataset, summaries, request.render_size, request.preview_path)
