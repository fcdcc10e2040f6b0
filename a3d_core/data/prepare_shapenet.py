"""``a3d prepare shapenet`` as a pure function: objects -> 24-view renders -> synthetic occlusion -> shards.

Sources (paper 4.1 uses Kato's ShapeNet renders with random synthetic occlusion):

* nothing: the built-in shape library (``a3d_core.data.shapes``), 13 categories;
* a folder of Kato npz renders (``{synset}_{split}_images.npz``): their own object splits;
* a mesh folder (ShapeNetCore v1/v2 or any .obj/.ply tree): rendered here.

Splits are by object: an object's views all go to one split. Cameras follow a viewpoint protocol
(:mod:`a3d_core.data.viewpoints`): views at one or several elevations, of which an azimuth
wedge closed under mirrors and front/back twins, whole elevations, (elevation, azimuth) pairs or
far views can be held out of training; the test objects at those cameras form the protocols' own
test splits (``test_newview``, ``test_elevation``, ``test_combination``, ``test_farview``:
generalisation to unseen viewpoints, the paper's central claim). Cameras and object ids are stored
as metadata only, never a training signal.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from a3d_core import __version__
from a3d_core.data.canonical import FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME
from a3d_core.data.mesh_folder import find_meshes, load_mesh
from a3d_core.data.occlusion import OcclusionGenerator, OcclusionSettings
from a3d_core.data.render import MeshRenderer, RenderSettings
from a3d_core.data.shapenet import STORAGE, canonical_split, find_kato_files, read_kato_npz, write_shard
from a3d_core.data.shapes import CATEGORIES, generate_shape, to_pytorch3d
from a3d_core.data.splits import check_split_fractions, split_counts
from a3d_core.data.viewpoints import Camera, ViewProtocol, parse_view_range
from a3d_core.errors import InputError
from a3d_core.geometry import KATO_DISTANCE, KATO_ELEVATION_DEG, KATO_NUM_VIEWS, Viewpoint
from a3d_core.io.atomic import atomic_directory, atomic_write_bytes, atomic_write_json

SPLITS = ("train", "val", "test")
Progress = Callable[[str, int, int], None]


@dataclass
class PrepareShapeNetConfig:
    """What to prepare and how.

    out: the dataset folder to write.
    source: None (built-in shapes), a folder of Kato npz renders, or a mesh folder.
    objects_per_category: objects per category (built-in default 12; for a source, at most this
        many per category, None = all).
    views: how many of Kato's 24 azimuths, evenly spaced.
    image_size: images are S x S (Kato: 64).
    split_fractions: (train, val, test) fractions of the objects (Kato files keep their own split).
    elevations: the training elevations in degrees; every one is rendered at every azimuth
        (Kato npz renders have only 30).
    holdout_views: (first, last) Kato view ids (inclusive), held out of training together with
        their mirror images and front/back twins (:mod:`a3d_core.data.viewpoints`) -> ``test_newview``.
    holdout_elevations: elevations only the test objects show -> ``test_elevation``.
    holdout_pairs: (elevation, view id) pairs only the test objects show, closed under mirrors and
        twins -> ``test_combination``.
    farview: (elevation, view id) far cameras only the test objects show, each at least 45 degrees
        from every training camera, its mirror and its twin -> ``test_farview``.
    categories: a subset of the built-in categories (None = all 13).
    shard_objects: objects per shard file.
    min_amodal_pixels: views whose silhouette covers fewer pixels are skipped (e.g. a rifle seen
        end-on in a tiny image): they cannot be occluded at a meaningful rate.
    """

    out: Path
    source: Path | None = None
    objects_per_category: int | None = None
    views: int = 24
    image_size: int = 64
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    elevations: tuple[float, ...] = (KATO_ELEVATION_DEG,)
    holdout_views: tuple[int, int] | None = None
    holdout_elevations: tuple[float, ...] = ()
    holdout_pairs: tuple[tuple[float, int], ...] = ()
    farview: tuple[tuple[float, int], ...] = ()
    categories: tuple[str, ...] | None = None
    occlusion: OcclusionSettings = field(default_factory=OcclusionSettings)
    render: RenderSettings | None = None
    seed: int = 0
    workers: int = 1
    shard_objects: int = 64
    min_amodal_pixels: int = 10
    export_coco: bool = False
    preview: Path | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.source = Path(self.source) if self.source is not None else None
        if self.objects_per_category is not None and self.objects_per_category < 1:
            raise ValueError(f"objects_per_category must be at least 1, got {self.objects_per_category}")
        if not 1 <= self.views <= KATO_NUM_VIEWS:
            raise ValueError(f"views must be in 1..{KATO_NUM_VIEWS}, got {self.views}")
        check_split_fractions(self.split_fractions)
        held_views: tuple[int, ...] = ()
        if self.holdout_views is not None:
            first, last = self.holdout_views
            if not 0 <= first <= last < KATO_NUM_VIEWS:
                raise ValueError(f"holdout_views must be FIRST-LAST within 0..{KATO_NUM_VIEWS - 1}, got {first}-{last}")
            held_views = parse_view_range(f"{first}-{last}", "--holdout-views")
        self.protocol = ViewProtocol.build(
            self.view_ids,
            self.elevations,
            held_views,
            self.holdout_elevations,
            self.holdout_pairs,
            farview=self.farview,
        )
        if len(self.protocol.test_splits) > 1 and self.split_fractions[2] <= 0:
            raise ValueError("held-out views need test objects (a positive test fraction)")
        if self.categories is not None:
            unknown = set(self.categories) - set(CATEGORIES)
            if unknown or not self.categories:
                raise ValueError(f"unknown built-in categories {sorted(unknown)} (known: {', '.join(CATEGORIES)})")
        if self.workers < 1 or self.shard_objects < 1 or self.min_amodal_pixels < 1:
            raise ValueError("workers, shard_objects and min_amodal_pixels must be at least 1")
        if self.render is None:
            self.render = RenderSettings(image_size=self.image_size)
        elif self.render.image_size != self.image_size:
            raise ValueError(f"render.image_size {self.render.image_size} differs from image_size {self.image_size}")

    @property
    def view_ids(self) -> list[int]:
        """The Kato view ids used: ``views`` of the 24, evenly spaced."""
        return sorted({int(v) for v in np.linspace(0, KATO_NUM_VIEWS, self.views, endpoint=False)})

    def cameras_of(self, split: str) -> list[Camera]:
        """The cameras an object of ``split`` is rendered at: all of them for test objects."""
        return self.protocol.cameras if split == "test" else self.protocol.training_cameras


@dataclass
class ObjectSpec:
    """One object to prepare: where its views come from and (once decided) its split."""

    category: str
    source_id: str
    kind: str  # "builtin", "mesh" or "kato"
    payload: object
    split: str | None = None


@dataclass
class SplitSummary:
    objects: int
    samples: int
    mean_occlusion_rate: float


@dataclass
class PrepareShapeNetResult:
    """What was written, with the time spent rendering and occluding (views per second)."""

    out: Path
    source: str
    categories: list[str]
    image_size: int
    view_ids: list[int]
    protocol: ViewProtocol
    splits: dict[str, SplitSummary]
    views_rendered: int
    render_seconds: float
    views_occluded: int
    occlusion_seconds: float
    views_skipped: int
    preview: Path | None


# -------------------------------------------------------------------------------- collecting
def collect_objects(config: PrepareShapeNetConfig) -> tuple[str, list[str], list[ObjectSpec]]:
    """``(source description, category names, objects)`` for the configured source."""
    if config.source is None:
        categories = list(config.categories or CATEGORIES)
        count = config.objects_per_category or 12
        objects = [
            ObjectSpec(name, f"builtin/{name}/{i:04d}", "builtin", (config.seed, CATEGORIES.index(name), i))
            for name in categories
            for i in range(count)
        ]
        return "builtin", categories, objects
    if not config.source.is_dir():
        raise InputError(f"{config.source}: source folder not found")
    limit = config.objects_per_category
    kato = find_kato_files(config.source)
    if kato:
        objects = []
        for category in sorted(kato):
            for split, path in sorted(kato[category].items()):
                images = read_kato_npz(path)[:limit]  # (objects, 24, 4, S, S), read once per file
                if images.shape[1] != KATO_NUM_VIEWS:
                    raise InputError(f"{path}: expected Kato's {KATO_NUM_VIEWS} views, got {images.shape[1]}")
                objects += [
                    ObjectSpec(category, f"{path.name}/{i}", "kato", images[i], split) for i in range(len(images))
                ]
        return f"kato:{config.source}", sorted(kato), objects
    records = find_meshes(config.source)
    categories = sorted({r.category for r in records})
    objects = []
    for category in categories:
        mine = [r for r in records if r.category == category]
        objects += [ObjectSpec(category, r.object_id, "mesh", str(r.path)) for r in mine[:limit]]
    return f"meshes:{config.source}", categories, objects


def assign_splits(objects: Sequence[ObjectSpec], fractions: Sequence[float], seed: int) -> None:
    """Give every object without a split one, by object and stratified by category.

    Objects are shuffled within each category and interleaved round-robin across categories,
    then the sequence is cut by ``fractions``; each split with a positive fraction gets at least
    one object when there are enough.
    """
    pending = [o for o in objects if o.split is None]
    if not pending:
        return
    rng = np.random.default_rng((seed, 7))
    by_category: dict[str, list[ObjectSpec]] = {}
    for spec in pending:
        by_category.setdefault(spec.category, []).append(spec)
    queues = [
        list(np.asarray(group, dtype=object)[rng.permutation(len(group))]) for _, group in sorted(by_category.items())
    ]
    ordered = []
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    total = len(ordered)
    counts = split_counts(total, fractions)
    if counts[0] < 1:
        raise InputError(f"{total} objects are too few for the split fractions {tuple(fractions)}")
    # val and test take from the front of the interleaved order so that every category is represented
    boundaries = {"val": counts[1], "test": counts[1] + counts[2]}
    for position, spec in enumerate(ordered):
        spec.split = "val" if position < boundaries["val"] else "test" if position < boundaries["test"] else "train"


# --------------------------------------------------------------------------------- rendering
def _render_object(task: tuple[str, object, list[Camera], RenderSettings]) -> tuple[np.ndarray, np.ndarray]:
    """One object's views at ``cameras``: ``(rgb uint8 (V, 3, S, S), amodal uint8 (V, S, S))``."""
    kind, payload, cameras, settings = task
    if kind == "kato":  # Kato's renders are all at elevation 30 (checked by prepare_shapenet)
        images = torch.from_numpy(np.ascontiguousarray(payload[[c.view_id for c in cameras]]))  # (V, 4, S0, S0) RGBA
        rgb, alpha = images[:, :3].float() / 255.0, images[:, 3:].float() / 255.0
        if rgb.shape[-1] != settings.image_size:
            rgb = torch.nn.functional.interpolate(
                rgb, size=settings.image_size, mode="bilinear", antialias=True, align_corners=False
            )
            alpha = torch.nn.functional.interpolate(
                alpha, size=settings.image_size, mode="bilinear", antialias=True, align_corners=False
            )
        return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy(), (alpha[:, 0] >= 0.5).to(torch.uint8).numpy()
    if kind == "builtin":
        category, seed = payload
        mesh = to_pytorch3d(generate_shape(category, seed))
    else:
        mesh = load_mesh(payload)
    viewpoints = Viewpoint.from_degrees([c.elevation for c in cameras], [c.azimuth for c in cameras], KATO_DISTANCE)
    rendered = MeshRenderer(settings)(mesh, viewpoints)
    rgb = (rendered.rgb * 255).round().to(torch.uint8).numpy()
    return rgb, rendered.silhouette.to(torch.uint8).numpy()


def _worker_init() -> None:
    torch.set_num_threads(1)


def render_objects(
    objects: Sequence[ObjectSpec],
    view_lists: Sequence[list[Camera]],
    settings: RenderSettings,
    workers: int,
    progress: Progress | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Render (or read) every object's views, in ``workers`` processes when more than one."""
    tasks = []
    for spec, views in zip(objects, view_lists):
        payload = (spec.category, spec.payload) if spec.kind == "builtin" else spec.payload
        tasks.append((spec.kind, payload, views, settings))
    results = []
    if workers == 1:
        # one small batch at a time renders fastest single-threaded (thread start-up dominates)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for i, task in enumerate(tasks):
                results.append(_render_object(task))
                if progress:
                    progress("render", i + 1, len(tasks))
        finally:
            torch.set_num_threads(threads)
        return results
    # spawn, not fork: forking a process whose torch thread pools already started can deadlock
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
        for i, result in enumerate(pool.imap(_render_object, tasks, chunksize=1)):
            results.append(result)
            if progress:
                progress("render", i + 1, len(tasks))
    return results


# --------------------------------------------------------------------------------- occluding
def occlude_split(
    renders: Sequence[tuple[np.ndarray, np.ndarray]],
    view_lists: Sequence[list[Camera]],
    object_indices: Sequence[int],
    settings: OcclusionSettings,
    seed: int,
    min_amodal_pixels: int = 1,
    progress: Progress | None = None,
    done_before: int = 0,
    total: int = 0,
) -> list[list]:
    """Occlude every view of a split's objects; occluders come from the split's other objects.

    The bank holds one random view of each object. Each view's occlusion is drawn from
    ``(seed, object index, view id)`` (and the elevation when it is not Kato's 30 degrees), so
    the result does not depend on order or workers.
    Views whose silhouette has fewer than ``min_amodal_pixels`` pixels get ``None``.
    """
    bank_rng = np.random.default_rng((seed, 11, len(renders)))
    bank, owners = [], []
    for (rgb, amodal), index in zip(renders, object_indices):
        pick = int(bank_rng.integers(len(rgb)))
        if amodal[pick].any():
            bank.append((rgb[pick].astype(np.float32) / 255.0, amodal[pick].astype(bool)))
            owners.append(index)
    generator = OcclusionGenerator(settings, bank)
    samples, done = [], done_before
    for (rgb, amodal), views, index in zip(renders, view_lists, object_indices):
        exclude = [k for k, owner in enumerate(owners) if owner == index]
        per_object = []
        for k, view in enumerate(views):
            if int(amodal[k].sum()) < min_amodal_pixels:
                per_object.append(None)
                done += 1
                continue
            rng = np.random.default_rng(_occlusion_seed(seed, int(index), view))
            per_object.append(generator(rgb[k].astype(np.float32) / 255.0, amodal[k].astype(bool), rng, exclude))
            done += 1
        samples.append(per_object)
        if progress:
            progress("occlude", done, total)
    return samples


def _occlusion_seed(seed: int, index: int, camera: Camera) -> tuple[int, ...]:
    """The seed of one view's occlusion; views at Kato's elevation keep the seeds they always had."""
    if camera.elevation == KATO_ELEVATION_DEG:
        return (seed, 13, index, camera.view_id)
    return (seed, 13, index, camera.view_id, int(round(camera.elevation * 1000)) % 2**32)


# ----------------------------------------------------------------------------------- writing
def _split_arrays(
    entries: Sequence[tuple[int, ObjectSpec, Camera, np.ndarray, np.ndarray, object]],
    categories: Sequence[str],
    image_size: int,
) -> dict[str, np.ndarray]:
    """Stack ``(object index, spec, camera, clean rgb, amodal, OccludedSample)`` rows into shard arrays."""
    count = len(entries)
    size = image_size
    arrays = {
        "rgb": np.zeros((count, 3, size, size), np.uint8),
        "clean_rgb": np.zeros((count, 3, size, size), np.uint8),
        "visible": np.zeros((count, size, size), np.uint8),
        "amodal": np.zeros((count, size, size), np.uint8),
        "category": np.zeros(count, np.int64),
        "object_index": np.zeros(count, np.int64),
        "view_id": np.zeros(count, np.int64),
        "occlusion_rate": np.zeros(count, np.float32),
        "elevation": np.full(count, KATO_ELEVATION_DEG, np.float32),
        "azimuth": np.zeros(count, np.float32),
        "distance": np.full(count, KATO_DISTANCE, np.float32),
        "occluder": np.zeros((count, size, size), np.uint8),
    }
    for row, (index, spec, camera, clean, amodal, sample) in enumerate(entries):
        arrays["rgb"][row] = (sample.rgb * 255).round().astype(np.uint8)
        arrays["clean_rgb"][row] = clean
        arrays["visible"][row] = sample.visible
        arrays["occluder"][row] = sample.occluder
        arrays["amodal"][row] = amodal
        arrays["category"][row] = categories.index(spec.category)
        arrays["object_index"][row] = index
        arrays["view_id"][row] = camera.view_id
        arrays["occlusion_rate"][row] = sample.occlusion_rate
        arrays["elevation"][row] = camera.elevation
        arrays["azimuth"][row] = camera.azimuth
    return arrays


PREVIEW_VIEWS = (3, 21, 9, 15)  # three-quarter views show a shape best


def _preview_picks(arrays: dict[str, np.ndarray], category: int, count: int) -> list[int]:
    """Up to ``count`` samples of ``category`` from different objects, at three-quarter views when possible."""
    picks, objects = [], set()
    candidates = np.flatnonzero(arrays["category"] == category)
    for preferred in PREVIEW_VIEWS:
        distance = np.abs(arrays["view_id"][candidates] - preferred)
        for i in candidates[np.argsort(distance, kind="stable")]:
            if int(arrays["object_index"][i]) not in objects:
                picks.append(int(i))
                objects.add(int(arrays["object_index"][i]))
                break
        if len(picks) == count:
            break
    return picks


def preview_image(
    split_arrays: dict[str, dict[str, np.ndarray]], categories: Sequence[str], per_category: int = 2
) -> np.ndarray:
    """A grid ``(H, W, 3)`` uint8: one row per category (in order), ``per_category`` samples of
    (clean render | occluded RGB | visible | amodal)."""
    source = next(
        (split_arrays[s] for s in ("train", "test", "val") if s in split_arrays and len(split_arrays[s]["category"])),
        None,
    )
    if source is None:
        raise ValueError("no samples to preview")
    size = source["amodal"].shape[-1]
    scale = max(1, 96 // size)
    tile, gap, columns = size * scale, 3, 4
    canvas = np.full(
        ((tile + gap) * len(categories) + gap, per_category * (columns * tile + gap) + gap, 3), 64, np.uint8
    )
    for row in range(len(categories)):
        for column, i in enumerate(_preview_picks(source, row, per_category)):
            tiles = [
                source["clean_rgb"][i].transpose(1, 2, 0),
                source["rgb"][i].transpose(1, 2, 0),
                np.repeat(source["visible"][i][..., None] * 255, 3, 2),
                np.repeat(source["amodal"][i][..., None] * 255, 3, 2),
            ]
            strip = np.concatenate([np.kron(t, np.ones((scale, scale, 1), np.uint8)) for t in tiles], axis=1)
            y, x = gap + row * (tile + gap), gap + column * (columns * tile + gap)
            canvas[y : y + tile, x : x + columns * tile] = strip
    return canvas


def prepare_shapenet(config: PrepareShapeNetConfig, progress: Progress | None = None) -> PrepareShapeNetResult:
    """Prepare the dataset described by ``config``; see the module docstring."""
    import imageio.v3 as iio

    source, categories, objects = collect_objects(config)
    if not objects:
        raise InputError(f"{config.source}: no objects to prepare")
    protocol = config.protocol
    if source.startswith("kato:") and {c.elevation for c in protocol.cameras} != {KATO_ELEVATION_DEG}:
        raise InputError(
            f"{config.source}: Kato npz renders only have elevation {KATO_ELEVATION_DEG:g}; "
            "use azimuth protocols (--holdout-views, --holdout-pairs at 30) only"
        )
    assign_splits(objects, config.split_fractions, config.seed)
    if len(protocol.test_splits) > 1 and not any(spec.split == "test" for spec in objects):
        raise InputError(
            f"the held-out views need test objects, and the split leaves none of the {len(objects)} objects to test"
        )
    view_lists = [config.cameras_of(spec.split) for spec in objects]

    started = time.perf_counter()
    renders = render_objects(objects, view_lists, config.render, config.workers, progress)
    render_seconds = time.perf_counter() - started
    views_rendered = sum(len(v) for v in view_lists)

    split_rows: dict[str, list] = {}
    started = time.perf_counter()
    done = skipped = 0
    for split in SPLITS:
        members = [i for i, spec in enumerate(objects) if spec.split == split]
        if not members:
            continue
        occluded = occlude_split(
            [renders[i] for i in members],
            [view_lists[i] for i in members],
            members,
            config.occlusion,
            config.seed,
            config.min_amodal_pixels,
            progress,
            done,
            views_rendered,
        )
        done += sum(len(view_lists[i]) for i in members)
        for i, samples in zip(members, occluded):
            for k, (camera, sample) in enumerate(zip(view_lists[i], samples)):
                if sample is None:
                    skipped += 1
                    continue
                target = protocol.split_of(camera) if split == "test" else split  # held-out cameras: their own split
                split_rows.setdefault(target, []).append(
                    (i, objects[i], camera, renders[i][0][k], renders[i][1][k], sample)
                )
    occlusion_seconds = time.perf_counter() - started

    order = [s for s in (*SPLITS, *protocol.test_splits[1:]) if s in split_rows]
    if not order:
        raise InputError(
            f"no view shows an object with at least {config.min_amodal_pixels} pixels; use a larger --image-size"
        )
    arrays = {s: _split_arrays(split_rows[s], categories, config.image_size) for s in order}
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "name": "shapenet",
        "source": source,
        "splits": order,
        "image_root": "images",
        "a3d_version": __version__,
        "storage": STORAGE,
        "shards": {},
        "categories": categories,
        "image_size": config.image_size,
        "view_ids": config.view_ids,
        "holdout_views": list(config.holdout_views) if config.holdout_views else None,
        "viewpoint_protocol": protocol.as_dict(),
        "seed": config.seed,
        "occlusion": asdict(config.occlusion),
        "canonical_json": config.export_coco,
        "objects": [
            {"index": i, "category": s.category, "source_id": s.source_id, "split": s.split}
            for i, s in enumerate(objects)
        ],
    }
    with atomic_directory(config.out, overwrite=config.overwrite) as staging:
        for split in order:
            rows = arrays[split]
            object_ids = np.unique(rows["object_index"])
            manifest["shards"][split] = []
            for shard, start in enumerate(range(0, len(object_ids), config.shard_objects)):
                chosen = np.isin(rows["object_index"], object_ids[start : start + config.shard_objects])
                relative = f"shards/{split}-{shard:05d}.npz"
                write_shard(staging / relative, {name: value[chosen] for name, value in rows.items()})
                manifest["shards"][split].append(relative)
            if config.export_coco:
                coco, images = canonical_split(rows, categories, split)
                for relative, data in images:
                    target = staging / "images" / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                coco.write(staging / f"{split}.json")
        atomic_write_json(staging / MANIFEST_NAME, manifest, indent=2)
    if config.preview is not None:
        atomic_write_bytes(config.preview, iio.imwrite("<bytes>", preview_image(arrays, categories), extension=".png"))

    summaries = {
        s: SplitSummary(
            len(np.unique(arrays[s]["object_index"])),
            len(arrays[s]["category"]),
            float(arrays[s]["occlusion_rate"].mean()),
        )
        for s in order
    }
    return PrepareShapeNetResult(
        config.out,
        source,
        categories,
        config.image_size,
        config.view_ids,
        protocol,
        summaries,
        views_rendered,
        render_seconds,
        views_rendered - skipped,
        occlusion_seconds,
        skipped,
        config.preview,
    )
