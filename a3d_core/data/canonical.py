"""The canonical amodal format: one COCO JSON per split, readable by stock pycocotools.

Every external layout (KINS, KINS 2020, D2SA, COCOA-cls, COCOA, ShapeNet renders, built-in
scenes) is converted into this one format, so training and evaluation see one thing.

A dataset folder::

    <dataset>/
      dataset.json      manifest: format, version, name, source, splits, image_root
      <split>.json      COCO JSON (images, annotations, categories)
      images/           when a3d wrote the images itself (else image_root points elsewhere)

Each annotation::

    segmentation    AMODAL mask, RLE with string counts     (stock COCOeval evaluates this)
    bbox            amodal box [x, y, w, h]
    area            amodal area in pixels
    visible_mask    visible mask, RLE with string counts
    visible_bbox    visible box [x, y, w, h]
    occlusion_rate  1 - visible area / amodal area
    category_id, iscrowd, id, image_id
    object_id, view_id, camera {elevation, azimuth, distance}   synthetic data only: metadata
                                                                 for analysis, never a signal
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
from pycocotools import mask as mask_utils

from a3d_core import __version__
from a3d_core.boxes import mask_bbox
from a3d_core.data.polygons import guard_polygons
from a3d_core.errors import InputError
from a3d_core.io.atomic import atomic_directory, atomic_write_json

FORMAT_NAME = "a3d-amodal"
FORMAT_VERSION = 1
MANIFEST_NAME = "dataset.json"


# --------------------------------------------------------------------------------------- masks
def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """Binary mask ``(H, W)`` -> COCO RLE ``{"size": [H, W], "counts": str}`` (JSON-ready)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode_mask expects an (H, W) mask, got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Any COCO segmentation -> binary mask ``(H, W)`` uint8.

    Accepts a polygon list ``[[x1, y1, ...], ...]``, one flat polygon ``[x1, y1, ...]`` (COCOA),
    RLE with compressed string counts, and RLE with uncompressed integer counts. Polygons pass
    :func:`a3d_core.data.polygons.guard_polygons` first (a bad one raises its ``PolygonError``, a
    ``ValueError``; one far outside the image is clipped).
    """
    if isinstance(segmentation, Mapping):
        counts = segmentation.get("counts")
        size = segmentation.get("size")
        if counts is None or size is None:
            raise ValueError("RLE needs 'size' and 'counts'")
        if [int(s) for s in size] != [height, width]:
            raise ValueError(f"RLE size {list(size)} disagrees with the image size [{height}, {width}]")
        if isinstance(counts, list):
            rle = mask_utils.frPyObjects(dict(segmentation), height, width)
        else:
            rle = {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        return mask_utils.decode(rle).astype(np.uint8)
    if isinstance(segmentation, list):
        if not segmentation:
            return np.zeros((height, width), np.uint8)
        polygons = guard_polygons(
            [segmentation] if not isinstance(segmentation[0], list) else segmentation, height, width
        )
        if not polygons:
            return np.zeros((height, width), np.uint8)
        rles = mask_utils.frPyObjects(polygons, height, width)
        return mask_utils.decode(mask_utils.merge(rles)).astype(np.uint8)
    raise ValueError(f"unknown segmentation type {type(segmentation).__name__}")


def amodal_annotation(
    ann_id: int,
    image_id: int,
    category_id: int,
    amodal: np.ndarray,
    visible: np.ndarray,
    iscrowd: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    """One canonical annotation from an amodal and a visible mask, both ``(H, W)`` binary.

    The visible mask is clipped to the amodal mask (visible pixels outside the amodal region are
    annotation noise) and the occlusion rate is ``1 - |visible| / |amodal|``.
    """
    amodal = np.asarray(amodal).astype(bool)
    visible = np.asarray(visible).astype(bool) & amodal
    amodal_area = int(amodal.sum())
    visible_area = int(visible.sum())
    annotation = {
        "id": int(ann_id),
        "image_id": int(image_id),
        "category_id": int(category_id),
        "segmentation": encode_mask(amodal),
        "bbox": mask_bbox(amodal),
        "area": float(amodal_area),
        "visible_mask": encode_mask(visible),
        "visible_bbox": mask_bbox(visible),
        "visible_area": float(visible_area),
        "occlusion_rate": 1.0 - visible_area / amodal_area if amodal_area else 0.0,
        "iscrowd": int(iscrowd),
    }
    annotation.update(extra)
    return annotation


# --------------------------------------------------------------------------------------- splits
@dataclass
class AmodalSplit:
    """One split of a canonical dataset: COCO ``images``, ``annotations`` and ``categories``."""

    images: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    categories: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def to_coco(self) -> dict[str, Any]:
        info = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **self.info}
        return {
            "info": info,
            "images": self.images,
            "annotations": self.annotations,
            "categories": self.categories,
        }

    def write(self, path: str | os.PathLike) -> Path:
        return atomic_write_json(path, self.to_coco())

    @classmethod
    def read(cls, path: str | os.PathLike) -> "AmodalSplit":
        data = read_json(path)
        for key in ("images", "annotations", "categories"):
            if not isinstance(data.get(key), list):
                raise InputError(f"{path}: not a canonical amodal split (no '{key}' list)")
        for annotation in data["annotations"]:
            if "visible_mask" not in annotation or "segmentation" not in annotation:
                raise InputError(
                    f"{path}: annotation {annotation.get('id')} lacks 'segmentation'/'visible_mask' "
                    "(was this file written by `a3d prepare`?)"
                )
        return cls(data["images"], data["annotations"], data["categories"], data.get("info", {}))

    @property
    def category_names(self) -> dict[int, str]:
        return {int(c["id"]): str(c["name"]) for c in self.categories}


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file raises :class:`InputError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with open(path, "rb") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: malformed JSON ({error.msg} at line {error.lineno}, column {error.colno})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text JSON file") from None


# ------------------------------------------------------------------------------------- datasets
@dataclass
class AmodalDataset:
    """A canonical dataset folder: its manifest and its splits (read on demand)."""

    root: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.root.name))

    @property
    def splits(self) -> list[str]:
        return list(self.manifest.get("splits", []))

    @property
    def image_root(self) -> Path:
        image_root = Path(self.manifest.get("image_root", "images"))
        return image_root if image_root.is_absolute() else self.root / image_root

    def split_path(self, split: str) -> Path:
        if split not in self.splits:
            raise InputError(f"{self.root}: no split {split!r} (has {', '.join(self.splits) or 'none'})")
        return self.root / f"{split}.json"

    def load_split(self, split: str) -> AmodalSplit:
        return AmodalSplit.read(self.split_path(split))

    def image_path(self, image: Mapping[str, Any]) -> Path:
        return self.image_root / str(image["file_name"])


def read_dataset(root: str | os.PathLike) -> AmodalDataset:
    """Open a canonical dataset folder written by :func:`write_dataset`."""
    root = Path(root)
    manifest = read_json(root / MANIFEST_NAME)
    if manifest.get("format") != FORMAT_NAME:
        raise InputError(f"{root / MANIFEST_NAME}: not an a3d dataset manifest (format {manifest.get('format')!r})")
    if int(manifest.get("version", 0)) > FORMAT_VERSION:
        raise InputError(f"{root / MANIFEST_NAME}: format version {manifest['version']} is newer than this a3d reads")
    return AmodalDataset(root, manifest)


def write_dataset(
    out_dir: str | os.PathLike,
    name: str,
    source: str,
    splits: Mapping[str, AmodalSplit],
    image_root: str | os.PathLike = "images",
    overwrite: bool = False,
    write_images: Iterable[tuple[str, bytes]] = (),
    extra_manifest: Mapping[str, Any] | None = None,
) -> AmodalDataset:
    """Write a whole canonical dataset atomically: it appears complete or not at all.

    ``write_images`` yields ``(relative path under images/, encoded bytes)`` for datasets whose
    images a3d renders itself; real datasets instead point ``image_root`` at the user's folder.
    """
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "name": name,
        "source": source,
        "splits": list(splits),
        "image_root": str(image_root),
        "a3d_version": __version__,
        **(extra_manifest or {}),
    }
    out_dir = Path(out_dir)
    with atomic_directory(out_dir, overwrite=overwrite) as staging:
        for relative, data in write_images:
            target = staging / "images" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        for split_name, split in splits.items():
            split.write(staging / f"{split_name}.json")
        atomic_write_json(staging / MANIFEST_NAME, manifest, indent=2)
    return read_dataset(out_dir)
