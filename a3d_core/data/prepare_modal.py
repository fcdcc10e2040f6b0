"""``a3d prepare modal``: amodal-completion training pairs from ordinary (modal) instance masks.

Deocclusion (Zhan et al., CVPR 2020; the paper's ref. 36 and the first row of its Tables 1-3)
learns completion without amodal labels: another instance's mask (the "eraser") is placed over an
instance, and the network recovers the instance's own MODAL mask behind it. This module builds
such pairs from a COCO-style instance file (no amodal masks, images optional) and writes them in
the shard format of ``a3d prepare shapenet`` (docs/shapenet.md), so every stage-2 kind pretrains on
them unchanged (``a3d pretrain --dataset DIR``).

For each non-crowd instance (its square crop, :data:`~a3d_core.boxes.DEFAULT_CROP_SCALE` times the
longer side of its box, resampled to ``S``, as stage 2 crops instances and pretraining frames
views):

* **eraser**: the mask of another instance of the same split (same or another image), placed by
  :class:`~a3d_core.data.occlusion.OcclusionGenerator` (``object`` occluders only) so that it hides
  a rate drawn in ``[min_rate, max_rate]`` of the instance (Deocclusion's ``EraserSetter`` draws the
  cut ratio in a range alike);
* **real neighbours stay in front**: a neighbour is another instance (crowd regions included) of
  the same image whose mask touches the instance's mask (one pixel apart or overlapping) inside
  the instance's box: the instance's modal mask may end there because the neighbour hides it.
  The eraser is placed behind such neighbours (its pixels on them are dropped), so the instance's
  border with a real neighbour is never erased and the network is never asked to tell a true
  boundary from an occluded one it cannot see. Deocclusion's training pairs ignore neighbours (its
  dataset reads one instance's mask at a time); it respects them at inference only, erasing with
  the instance's occluders (ancestors in its order graph);
* **eraser in front** (probability ``eraser_front_prob``, Deocclusion's 0.8; always on the val and
  test splits): target = the full modal mask, input = the modal mask minus the eraser; **eraser
  behind** otherwise: the eraser keeps only its pixels off the instance, the input is the whole
  modal mask (the network learns not to grow into every adjacent eraser).

Without images (the default) the RGB of a pair is its masks, ``(visible, eraser, 0)`` in
``{0, 1}``, and ``clean_rgb`` is ``(modal, 0, 0)`` (Deocclusion without images passes a zero RGB
and the eraser as an extra channel; a3d's completers take RGB and the visible mask, so the eraser
rides in the green channel). With ``images`` the RGB is the instance's image crop with the
eraser's own pixels pasted where the eraser is in front ("paste"; Deocclusion's PCNet-M zeroes the
RGB under the eraser instead, "erase"), and ``clean_rgb`` the crop. Splits are by IMAGE (seeded),
never one image in two.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from a3d_core import __version__
from a3d_core.boxes import DEFAULT_CROP_SCALE, crop_images, crop_masks, square_boxes
from a3d_core.data.canonical import FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME, decode_segmentation, read_json
from a3d_core.data.occlusion import OcclusionGenerator, OcclusionSettings
from a3d_core.data.problems import Problem, ProblemKind
from a3d_core.data.shapenet import STORAGE, write_shard
from a3d_core.data.splits import check_split_fractions, split_counts
from a3d_core.errors import InputError, describe_config_difference
from a3d_core.geometry import KATO_DISTANCE, KATO_ELEVATION_DEG
from a3d_core.io.atomic import atomic_directory, atomic_write_json
from a3d_core.io.images import read_image

SPLITS = ("train", "val", "test")
CLASS_AGNOSTIC = "object"
PHASES = {"read": ("reading masks", "image"), "pair": ("building pairs", "instance")}
"""The stages :func:`prepare_modal` reports, as progress phases (:func:`~a3d_core.progress.stage_callback`)."""
"""The one category of a class-agnostic modal dataset."""
ERASER_ONLY = (1.0, 0.0, 0.0, 0.0)
"""Occluder mix of :class:`OcclusionSettings`: other instances' masks only, as Deocclusion."""
Progress = Callable[[str, int, int], None]


@dataclass
class ModalPairSettings:
    """How one training pair is made (see the module docstring).

    occlusion: the erased rate range and placement (``kind_weights`` is set to :data:`ERASER_ONLY`).
    eraser_front_prob: chance that the eraser is in front of the instance on the train split
        (Deocclusion: 0.8); val and test pairs always have it in front.
    """

    occlusion: OcclusionSettings = field(default_factory=lambda: OcclusionSettings(kind_weights=ERASER_ONLY))
    eraser_front_prob: float = 0.8

    def __post_init__(self) -> None:
        if not 0.0 <= self.eraser_front_prob <= 1.0:
            raise ValueError(f"eraser_front_prob must be in [0, 1], got {self.eraser_front_prob}")
        if tuple(self.occlusion.kind_weights) != ERASER_ONLY:
            raise ValueError("modal pairs use other instances' masks only (kind_weights (1, 0, 0, 0))")


@dataclass
class ModalPair:
    """One training pair, ``S x S``: ``rgb`` ``(3, S, S)`` float32 in [0, 1] (mask-only: the masks
    (visible, eraser, 0); with an image: the crop with the eraser's pixels pasted);
    ``visible``, ``modal`` (the target) and ``eraser`` ``(S, S)`` bool; ``occlusion_rate`` =
    ``1 - |visible| / |modal|``."""

    rgb: np.ndarray
    visible: np.ndarray
    modal: np.ndarray
    eraser: np.ndarray
    occlusion_rate: float


def touching_neighbours(masks: np.ndarray, index: int, box: Sequence[float]) -> np.ndarray:
    """The union ``(H, W)`` bool of the masks ``(N, H, W)`` other than ``index`` that touch mask
    ``index`` (overlap it or lie one pixel from it, 8-connected) inside ``box`` ``[x, y, w, h]``."""
    x, y, w, h = (int(round(v)) for v in box)
    rows, columns = slice(max(y - 1, 0), y + h + 1), slice(max(x - 1, 0), x + w + 1)
    own = masks[index, rows, columns].astype(bool)
    grown = own.copy()
    grown[1:] |= own[:-1]
    grown[:-1] |= own[1:]
    grown[:, 1:] |= grown[:, :-1].copy()
    grown[:, :-1] |= grown[:, 1:].copy()
    touches = (masks[:, rows, columns].astype(bool) & grown).reshape(len(masks), -1).any(axis=1)
    touches[index] = False
    return masks[touches].astype(bool).any(axis=0) if touches.any() else np.zeros(masks.shape[1:], bool)


def build_pair(
    modal: np.ndarray,
    neighbours: np.ndarray,
    generator: OcclusionGenerator,
    rng: np.random.Generator,
    eraser_front: bool,
    exclude: Sequence[int] = (),
    image: np.ndarray | None = None,
) -> ModalPair:
    """One Deocclusion pair from an instance's crop.

    Args:
        modal: ``(S, S)`` bool, the instance's modal mask (the target).
        neighbours: ``(S, S)`` bool, its touching real neighbours (:func:`touching_neighbours`):
            they stay in front of the eraser.
        generator: places an eraser from its bank over ``modal`` (with the bank entry's pixels).
        rng: the pair's random generator.
        eraser_front: eraser in front of the instance (else behind it).
        exclude: bank entries not to use (the instance's own mask).
        image: ``(3, S, S)`` float32 in [0, 1], the instance's image crop, or ``None`` (mask-only:
            the RGB is ``(visible, eraser, 0)``). Given, the eraser's own pixels are pasted over it
            where the eraser is in front of everything.
    """
    modal = np.asarray(modal, bool)
    size = modal.shape[0]
    clean = np.zeros((3, size, size), np.float32) if image is None else np.asarray(image, np.float32)
    placed = generator(clean, modal, rng, exclude)
    eraser = placed.occluder & ~np.asarray(neighbours, bool)
    if eraser_front:
        visible = modal & ~eraser
    else:
        eraser = eraser & ~modal
        visible = modal.copy()
    if image is None:
        rgb = np.stack([visible, eraser, np.zeros_like(modal)]).astype(np.float32)
    else:
        rgb = np.where(eraser[None], placed.rgb, clean).astype(np.float32)
    return ModalPair(rgb, visible, modal, eraser, 1.0 - float(visible.sum()) / float(modal.sum()))


@dataclass
class PrepareModalConfig:
    """What to prepare.

    annotations: a COCO-style instance file (``images``, ``annotations``, ``categories``; polygon or
        RLE segmentations; no amodal masks).
    out: the dataset folder to write.
    images: the folder the images' ``file_name`` are relative to (None: mask-only pairs).
    class_agnostic: one category, :data:`CLASS_AGNOSTIC` (else the file's categories that have instances).
    image_size: pairs are S x S.
    split_fractions: (train, val, test) fractions of the IMAGES.
    max_images: read only the first this many images (by id) that have instances (None: all).
    min_modal_pixels: instances whose crop has fewer mask pixels are skipped.
    shard_instances: rows per shard file.
    """

    annotations: Path
    out: Path
    images: Path | None = None
    class_agnostic: bool = False
    image_size: int = 64
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    pairs: ModalPairSettings = field(default_factory=ModalPairSettings)
    seed: int = 0
    max_images: int | None = None
    min_modal_pixels: int = 16
    shard_instances: int = 4096
    overwrite: bool = False

    def __post_init__(self) -> None:
        self.annotations, self.out = Path(self.annotations), Path(self.out)
        self.images = Path(self.images) if self.images is not None else None
        check_split_fractions(self.split_fractions)
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"max_images must be at least 1, got {self.max_images}")
        if self.image_size < 8 or self.min_modal_pixels < 1 or self.shard_instances < 1:
            raise ValueError("image_size must be at least 8, min_modal_pixels and shard_instances at least 1")

    def recipe(self) -> dict[str, Any]:
        """What decides the pairs (JSON-able; the manifest's ``prepared_with``): every field but
        where they are written, how they are sharded and ``overwrite``."""
        recipe = {
            "annotations": str(self.annotations.resolve()),
            "images": None if self.images is None else str(self.images.resolve()),
            "class_agnostic": self.class_agnostic,
            "image_size": self.image_size,
            "split_fractions": list(self.split_fractions),
            "pairs": asdict(self.pairs),
            "seed": self.seed,
            "max_images": self.max_images,
            "min_modal_pixels": self.min_modal_pixels,
        }
        return json.loads(json.dumps(recipe))  # as read back from the manifest: lists, not tuples


@dataclass
class ModalInstance:
    """One instance read from the file: its crop and where it came from."""

    annotation_id: int
    image_id: int
    category: str
    modal: np.ndarray  # (S, S) bool
    neighbours: np.ndarray  # (S, S) bool
    image: np.ndarray | None = None  # (3, S, S) float32 in [0, 1], with --images
    split: str = ""


@dataclass
class PrepareModalResult:
    """What was written: per split ``(images, instances, mean occlusion rate)``, the problems met
    (entries skipped) and the seconds spent."""

    out: Path
    categories: list[str]
    splits: dict[str, tuple[int, int, float]]
    problems: list[Problem]
    seconds: float


def split_images(image_ids: Sequence[int], fractions: Sequence[float], seed: int) -> dict[int, str]:
    """``{image id: split}``: the images shuffled (seeded) and cut by ``fractions``; each split
    with a positive fraction gets at least one image when there are enough (fewer images than
    such splits all go to train)."""
    ordered = [
        int(i) for i in np.asarray(sorted(image_ids))[np.random.default_rng((seed, 25)).permutation(len(image_ids))]
    ]
    counts = split_counts(len(ordered), fractions)
    return {
        image: "val" if k < counts[1] else "test" if k < counts[1] + counts[2] else "train"
        for k, image in enumerate(ordered)
    }


def read_instances(
    config: PrepareModalConfig, progress: Progress | None = None
) -> tuple[list[str], list[ModalInstance], list[Problem]]:
    """``(category names, instances, problems)``: every non-crowd instance's crop with its
    touching neighbours; bad or empty segmentations and unknown images are problems, skipped."""
    path = config.annotations
    data = read_json(path)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("annotations"), list)
        or not isinstance(data.get("images"), list)
    ):
        raise InputError(f"{path}: not a COCO instance file (needs 'images' and 'annotations' lists)")
    names = {int(c["id"]): str(c["name"]) for c in data.get("categories", []) if "id" in c and "name" in c}
    images, file_names = {}, {}
    for image in data["images"]:
        try:
            images[int(image["id"])] = (int(image["height"]), int(image["width"]))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: image entry {image.get('id')!r} lacks an integer height and width") from None
        file_names[int(image["id"])] = str(image.get("file_name", ""))
    problems: list[Problem] = []
    by_image: dict[int, list[dict[str, Any]]] = {}
    for position, annotation in enumerate(data["annotations"]):
        if not isinstance(annotation, dict) or not isinstance(annotation.get("id"), int):
            problems.append(Problem(ProblemKind.MALFORMED, path, f"annotation #{position} has no integer 'id'"))
            continue
        image_id = annotation.get("image_id")
        if image_id not in images:
            problems.append(Problem(ProblemKind.UNKNOWN_IMAGE, path, f"image {image_id!r}", annotation.get("id")))
            continue
        if not annotation.get("iscrowd") and annotation.get("category_id") not in names:
            problems.append(
                Problem(
                    ProblemKind.UNKNOWN_CATEGORY,
                    path,
                    f"category {annotation.get('category_id')!r}",
                    annotation.get("id"),
                    image_id,
                )
            )
            continue
        by_image.setdefault(image_id, []).append(annotation)
    instances: list[ModalInstance] = []
    size = config.image_size
    chosen = sorted(by_image.items())[: config.max_images]
    for done, (image_id, entries) in enumerate(chosen):
        height, width = images[image_id]
        pixels = None
        if config.images is not None:
            pixels = _read_pixels(config.images / file_names[image_id], height, width, path, image_id, problems)
            if pixels is None:
                continue
        masks, kept = [], []
        for annotation in entries:
            try:
                mask = decode_segmentation(annotation.get("segmentation"), height, width)
            except (ValueError, TypeError) as error:
                problems.append(Problem(ProblemKind.MALFORMED, path, str(error), annotation.get("id"), image_id))
                continue
            if not mask.any():
                problems.append(
                    Problem(
                        ProblemKind.EMPTY_MASK, path, "segmentation covers no pixel", annotation.get("id"), image_id
                    )
                )
                continue
            masks.append(mask)
            kept.append(annotation)
        if not masks:
            continue
        stack = np.stack(masks).astype(bool)
        for k, annotation in enumerate(kept):
            if annotation.get("iscrowd"):
                continue
            rows, columns = np.flatnonzero(stack[k].any(1)), np.flatnonzero(stack[k].any(0))
            box = [columns[0], rows[0], columns[-1] + 1 - columns[0], rows[-1] + 1 - rows[0]]
            neighbours = touching_neighbours(stack, k, box)
            xyxy = torch.tensor([[box[0], box[1], box[0] + box[2], box[1] + box[3]]], dtype=torch.float32)
            square = square_boxes(xyxy, DEFAULT_CROP_SCALE).expand(2, 4)
            crops = (
                crop_masks(torch.from_numpy(np.stack([stack[k], neighbours]).astype(np.float32)), square, size) >= 0.5
            )
            modal = crops[0].numpy()
            if int(modal.sum()) < config.min_modal_pixels:
                problems.append(
                    Problem(
                        ProblemKind.EMPTY_MASK,
                        path,
                        f"under {config.min_modal_pixels} pixels at {size}x{size}",
                        annotation.get("id"),
                        image_id,
                    )
                )
                continue
            category = CLASS_AGNOSTIC if config.class_agnostic else names[annotation["category_id"]]
            crop = None if pixels is None else crop_images(pixels[None], [square[:1]], size)[0].clamp(0, 1).numpy()
            instances.append(
                ModalInstance(int(annotation["id"]), image_id, category, modal, crops[1].numpy() & ~modal, crop)
            )
        if progress:
            progress("read", done + 1, len(chosen))
    return names_of(instances), instances, problems


def _read_pixels(
    file: Path, height: int, width: int, annotations: Path, image_id: int, problems: list[Problem]
) -> torch.Tensor | None:
    """An image ``(3, H, W)`` float32 in [0, 1], or ``None`` with the problem recorded."""
    try:
        pixels = read_image(file)
    except InputError as error:
        kind = ProblemKind.MISSING_IMAGE if not file.is_file() else ProblemKind.UNREADABLE_IMAGE
        problems.append(Problem(kind, annotations, str(error), None, image_id))
        return None
    if pixels.shape[:2] != (height, width):
        detail = f"{file.name} is {pixels.shape[1]}x{pixels.shape[0]}, the file says {width}x{height}"
        problems.append(Problem(ProblemKind.IMAGE_SIZE, annotations, detail, None, image_id))
        return None
    return torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0


def names_of(instances: Sequence[ModalInstance]) -> list[str]:
    """The categories of ``instances``, sorted."""
    return sorted({instance.category for instance in instances})


def pair_split(
    instances: Sequence[ModalInstance], settings: ModalPairSettings, seed: int, split: str
) -> list[ModalPair]:
    """The pairs of one split's instances; erasers come from the split's own instances, each
    pair's draws from ``(seed, annotation id)``, so the result does not depend on order."""
    size = instances[0].modal.shape[0]
    blank = np.zeros((3, size, size), np.float32)
    bank = [(blank if instance.image is None else instance.image, instance.modal) for instance in instances]
    generator = OcclusionGenerator(settings.occlusion, bank)
    front_prob = settings.eraser_front_prob if split == "train" else 1.0
    pairs = []
    for k, instance in enumerate(instances):
        rng = np.random.default_rng((seed, 25, instance.annotation_id))
        front = bool(rng.random() < front_prob)
        pairs.append(build_pair(instance.modal, instance.neighbours, generator, rng, front, [k], instance.image))
    return pairs


def _as_uint8(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Stack ``masks`` (each ``(S, S)`` or ``(3, S, S)``, in {0, 1}) as uint8 ``(N, ...)``."""
    return np.stack(masks).astype(np.uint8)


def _shard_arrays(
    instances: Sequence[ModalInstance], pairs: Sequence[ModalPair], categories: list[str], first_index: int
) -> dict[str, np.ndarray]:
    """Shard rows of ``instances`` (no camera: the Kato defaults are stored, never read); ``occluder``
    is each pair's eraser, as the pasted occluders of ``a3d prepare shapenet``'s views."""
    count = len(instances)
    if instances[0].image is None:
        rgb = _as_uint8([p.rgb for p in pairs]) * 255
        clean = np.zeros((count, 3, *instances[0].modal.shape), np.uint8)
        clean[:, 0] = _as_uint8([i.modal for i in instances]) * 255
    else:
        rgb = (np.stack([p.rgb for p in pairs]) * 255).round().astype(np.uint8)
        clean = (np.stack([i.image for i in instances]) * 255).round().astype(np.uint8)
    return {
        "rgb": rgb,
        "clean_rgb": clean,
        "visible": _as_uint8([p.visible for p in pairs]),
        "amodal": _as_uint8([p.modal for p in pairs]),
        "occluder": _as_uint8([p.eraser for p in pairs]),
        "category": np.array([categories.index(i.category) for i in instances], np.int64),
        "object_index": np.arange(first_index, first_index + count, dtype=np.int64),
        "view_id": np.zeros(count, np.int64),
        "occlusion_rate": np.array([p.occlusion_rate for p in pairs], np.float32),
        "elevation": np.full(count, KATO_ELEVATION_DEG, np.float32),
        "azimuth": np.zeros(count, np.float32),
        "distance": np.full(count, KATO_DISTANCE, np.float32),
    }


def prepare_modal(config: PrepareModalConfig, progress: Progress | None = None) -> PrepareModalResult:
    """Prepare the modal pair dataset of ``config``; see the module docstring."""
    started = time.perf_counter()
    if config.out.exists() and not config.overwrite:
        raise InputError(f"{config.out}: already exists (pass --overwrite to replace it)")
    if config.images is not None and not config.images.is_dir():
        raise InputError(f"{config.images}: image folder not found")
    categories, instances, problems = read_instances(config, progress)
    if not instances:
        skipped = f"; {len(problems)} entries skipped, first: {problems[0].describe()}" if problems else ""
        raise InputError(f"{config.annotations}: no usable instance{skipped}")
    splits = split_images({i.image_id for i in instances}, config.split_fractions, config.seed)
    for instance in instances:
        instance.split = splits[instance.image_id]
    manifest: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "name": "modal",
        "source": f"coco-modal:{config.annotations}",
        "splits": [],
        "image_root": "images",
        "a3d_version": __version__,
        "storage": STORAGE,
        "shards": {},
        "categories": categories,
        "image_size": config.image_size,
        "view_ids": [0],
        "seed": config.seed,
        "pairs": {
            "rgb": "masks" if config.images is None else f"images:{config.images}",
            "eraser_front_prob": config.pairs.eraser_front_prob,
            "occlusion": asdict(config.pairs.occlusion),
        },
        "canonical_json": False,
        "prepared_with": config.recipe(),
        "objects": [],
    }
    summary: dict[str, tuple[int, int, float]] = {}
    with atomic_directory(config.out, overwrite=config.overwrite) as staging:
        for split in SPLITS:
            members = [i for i in instances if i.split == split]
            if not members:
                continue
            pairs = pair_split(members, config.pairs, config.seed, split)
            first = len(manifest["objects"])
            manifest["objects"] += [
                {
                    "index": first + k,
                    "category": m.category,
                    "source_id": f"annotation {m.annotation_id}",
                    "split": split,
                    "image_id": m.image_id,
                }
                for k, m in enumerate(members)
            ]
            manifest["splits"].append(split)
            manifest["shards"][split] = []
            for shard, start in enumerate(range(0, len(members), config.shard_instances)):
                stop = start + config.shard_instances
                relative = f"shards/{split}-{shard:05d}.npz"
                write_shard(
                    staging / relative, _shard_arrays(members[start:stop], pairs[start:stop], categories, first + start)
                )
                manifest["shards"][split].append(relative)
            if progress:
                progress("pair", len(manifest["objects"]), len(instances))
            summary[split] = (
                len({m.image_id for m in members}),
                len(members),
                float(np.mean([p.occlusion_rate for p in pairs])),
            )
        atomic_write_json(staging / MANIFEST_NAME, manifest, indent=2)
    return PrepareModalResult(config.out, categories, summary, problems, time.perf_counter() - started)


def prepared_modal_pairs(config: PrepareModalConfig, progress: Progress | None = None) -> Path:
    """``config.out``, prepared by :func:`prepare_modal` unless it already holds these very pairs
    (its manifest's ``prepared_with`` equals ``config.recipe()``): what ``a3d pretrain --dataset
    FILE.json`` calls, so that a rerun or ``--resume`` reuses its pairs.

    Raises:
        InputError: ``config.out`` holds something else (other pairs, or no modal manifest), as
            well as :func:`prepare_modal`'s errors.
    """
    manifest_path = config.out / MANIFEST_NAME
    if not config.out.exists():
        prepare_modal(config, progress)
        return config.out
    recorded = read_json(manifest_path).get("prepared_with") if manifest_path.is_file() else None
    if recorded != config.recipe():
        what = (
            "no modal pairs"
            if recorded is None
            else f"other pairs ({describe_config_difference(recorded, config.recipe())})"
        )
        raise InputError(f"{config.out}: holds {what}; choose another output folder")
    return config.out
