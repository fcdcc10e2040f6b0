"""ShapeNet-style single-object data: Kato's npz renders, the shard format, the torch Dataset.

Kato et al.'s renders (NMR, SoftRas; ../FORMATS.md) are ``{synset}_{split}_images.npz`` files
whose one array ``arr_0`` is uint8 ``(objects, 24, 4, 64, 64)``: RGBA at the 24 Kato views,
alpha = silhouette = amodal mask.

``a3d prepare shapenet`` writes a dataset folder (layout in docs/shapenet.md)::

    <root>/dataset.json              canonical manifest (format "a3d-amodal", "storage": "npz-shards")
    <root>/shards/<split>-00000.npz  one sample per (object, view), arrays below
    <root>/<split>.json, images/     only with --export-coco: the canonical COCO JSON of each split

Shard arrays (N samples, S x S images)::

    rgb             uint8 (N, 3, S, S)  occluded RGB (occluders painted in)
    clean_rgb       uint8 (N, 3, S, S)  the unoccluded render
    visible         uint8 (N, S, S)     {0, 1}
    amodal          uint8 (N, S, S)     {0, 1}
    category        int64 (N,)          index into the manifest's "categories"
    object_index    int64 (N,)          dataset-wide object number (cross-view pairs)
    view_id         int64 (N,)          Kato view 0..23
    occlusion_rate  float32 (N,)
    elevation, azimuth, distance  float32 (N,)  degrees / units: metadata; the learned camera never reads them
    occluder        uint8 (N, S, S)     {0, 1}: every pixel of the pasted occluders, over the object or
                                        not (where it could be hidden); shards written before it lack it

:class:`ShapeNetAmodalDataset` loads a split's shards once and serves training samples.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from a3d_core.data.canonical import (
    MANIFEST_NAME,
    AmodalSplit,
    amodal_annotation,
    read_dataset,
)
from a3d_core.data.mesh_folder import SHAPENET_SYNSETS
from a3d_core.errors import InputError

STORAGE = "npz-shards"
KATO_FILE_PATTERN = re.compile(r"^(?P<synset>[^_]+)_(?P<split>train|val|test)_images\.npz$")
IMAGE_ARRAYS = ("rgb", "clean_rgb", "visible", "amodal")
SHARD_ARRAYS = {
    "rgb": np.uint8,
    "clean_rgb": np.uint8,
    "visible": np.uint8,
    "amodal": np.uint8,
    "category": np.int64,
    "object_index": np.int64,
    "view_id": np.int64,
    "occlusion_rate": np.float32,
    "elevation": np.float32,
    "azimuth": np.float32,
    "distance": np.float32,
}
OPTIONAL_SHARD_ARRAYS = {"occluder": np.uint8}
"""Arrays added to the format later: written when given, read where a shard has them."""


# ------------------------------------------------------------------------------ Kato's renders
def read_kato_npz(path: str | os.PathLike) -> np.ndarray:
    """The ``arr_0`` array of one Kato render file: uint8 ``(objects, views, 4, S, S)`` (RGBA)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "arr_0" not in archive.files:
                raise InputError(f"{path}: no 'arr_0' array (has {', '.join(archive.files) or 'nothing'})")
            images = archive["arr_0"]
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable npz file ({error})") from None
    if images.ndim != 5 or images.shape[2] != 4 or images.shape[3] != images.shape[4]:
        raise InputError(f"{path}: expected arr_0 of shape (objects, views, 4, S, S), got {images.shape}")
    if images.dtype != np.uint8:
        raise InputError(f"{path}: expected uint8 images, got {images.dtype}")
    return images


def write_kato_npz(path: str | os.PathLike, images: np.ndarray) -> Path:
    """Write ``images`` uint8 ``(objects, views, 4, S, S)`` in Kato's layout (``arr_0``), atomically."""
    from a3d_core.io.atomic import atomic_write_bytes

    images = np.asarray(images)
    if images.ndim != 5 or images.shape[2] != 4 or images.dtype != np.uint8:
        raise ValueError(f"Kato renders are uint8 (objects, views, 4, S, S), got {images.dtype} {images.shape}")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images)
    return atomic_write_bytes(path, buffer.getvalue())


def find_kato_files(root: str | os.PathLike) -> dict[str, dict[str, Path]]:
    """``{category name: {split: path}}`` for the ``{synset}_{split}_images.npz`` files in ``root``."""
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(Path(root).glob("*_images.npz")):
        match = KATO_FILE_PATTERN.match(path.name)
        if match:
            category = SHAPENET_SYNSETS.get(match["synset"], match["synset"])
            found.setdefault(category, {})[match["split"]] = path
    return found


# ------------------------------------------------------------------------------------ shards
def write_shard(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write one shard (the ``SHARD_ARRAYS``, and the ``OPTIONAL_SHARD_ARRAYS`` given, compressed npz)
    atomically; checks dtypes and lengths."""
    from a3d_core.io.atomic import atomic_write_bytes

    missing = set(SHARD_ARRAYS) - set(arrays)
    if missing:
        raise ValueError(f"shard lacks arrays {sorted(missing)}")
    formats = {**SHARD_ARRAYS, **{name: dtype for name, dtype in OPTIONAL_SHARD_ARRAYS.items() if name in arrays}}
    lengths = {name: len(arrays[name]) for name in formats}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"shard arrays differ in length: {lengths}")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: np.asarray(arrays[name], dtype=dtype) for name, dtype in formats.items()})
    return atomic_write_bytes(path, buffer.getvalue())


def read_shard(
    path: str | os.PathLike, names: Sequence[str] | None = None, optional: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """The arrays ``names`` (default: all ``SHARD_ARRAYS``) of one shard, and those of the
    ``OPTIONAL_SHARD_ARRAYS`` named in ``optional`` that it has, checked against the format.

    Only the named arrays are decompressed. Raises :class:`InputError` naming the file.
    """
    path = Path(path)
    names = list(SHARD_ARRAYS) if names is None else list(names)
    unknown = set(names) - set(SHARD_ARRAYS) | set(optional) - set(OPTIONAL_SHARD_ARRAYS)
    if unknown:
        raise ValueError(f"unknown shard arrays {sorted(unknown)}")
    if not path.is_file():
        raise InputError(f"{path}: shard file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = set(names) - set(archive.files)
            if missing:
                raise InputError(f"{path}: shard lacks arrays {sorted(missing)}")
            names += [name for name in optional if name in archive.files]
            arrays = {name: archive[name] for name in names}
            count = len(archive["category"]) if "category" not in arrays else len(arrays["category"])
    except (OSError, ValueError, KeyError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"{path}: not a readable npz shard ({error})") from None
    size = next((arrays[n].shape[-1] for n in IMAGE_ARRAYS if n in arrays and arrays[n].ndim >= 3), -1)
    expected = {
        "rgb": (count, 3, size, size),
        "clean_rgb": (count, 3, size, size),
        "visible": (count, size, size),
        "amodal": (count, size, size),
        "occluder": (count, size, size),
    }
    for name in names:
        shape = expected.get(name, (count,))
        dtype = np.dtype({**SHARD_ARRAYS, **OPTIONAL_SHARD_ARRAYS}[name])
        if arrays[name].shape != shape or arrays[name].dtype != dtype:
            raise InputError(
                f"{path}: array {name!r} should be {dtype} {shape}, got {arrays[name].dtype} {arrays[name].shape}"
            )
    return arrays


def read_shard_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a shard dataset written by ``a3d prepare shapenet`` (checked)."""
    root = Path(root)
    if not (root / MANIFEST_NAME).is_file():
        raise InputError(f"{root}: no ShapeNet dataset here (missing {MANIFEST_NAME}; run `a3d prepare shapenet`)")
    manifest = read_dataset(root).manifest
    if manifest.get("storage") != STORAGE or not isinstance(manifest.get("shards"), dict):
        raise InputError(f"{root / MANIFEST_NAME}: not a ShapeNet shard dataset (storage {manifest.get('storage')!r})")
    return manifest


def load_split_arrays(
    root: str | os.PathLike, split: str, names: Sequence[str] | None = None, optional: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(manifest, arrays)``: a shard dataset's manifest and one split's shards concatenated
    (only the arrays ``names``, default all ``SHARD_ARRAYS``, and those of the optional arrays
    ``optional`` that every shard of the split has)."""
    root = Path(root)
    manifest = read_shard_manifest(root)
    shards = manifest["shards"]
    if split not in shards:
        raise InputError(f"{root}: no split {split!r} (has {', '.join(shards) or 'none'})")
    names = list(SHARD_ARRAYS) if names is None else list(names)
    parts = [read_shard(root / relative, names, optional) for relative in shards[split]]
    if not parts:
        raise InputError(f"{root}: split {split!r} has no shards")
    names += [name for name in optional if all(name in part for part in parts)]
    return manifest, {name: np.concatenate([p[name] for p in parts]) for name in names}


# ----------------------------------------------------------------------------------- dataset
class ShapeNetAmodalDataset(Dataset):
    """One split of a dataset written by ``a3d prepare shapenet``, for stage-2 training (paper 3.7).

    ``ds[i]`` is a dict of tensors (S = the image size)::

        rgb             float32 (3, S, S) in [0, 1], the OCCLUDED image
        visible         float32 (1, S, S) in {0, 1}
        amodal          float32 (1, S, S) in {0, 1}
        category        int64 scalar, index into ``ds.categories``
        object_index    int64 scalar (same object, other view: cross-view pairs)
        view_id         int64 scalar (metadata only)
        occlusion_rate  float32 scalar
        elevation       float32 scalar, degrees: the view's true camera (Kato's convention, as
        azimuth         float32 scalar, degrees   :class:`a3d_core.geometry.Viewpoint`)
        occluder        float32 (1, S, S) in {0, 1}: the pasted occluders' pixels, the input of a
                        network with ``ASMSettings.occluder_input``; only where the shards store it
                        (or with ``occlusion``, which draws it)

    Shards written before the occluder was stored (``ds.has_occluder`` False) give items without an
    ``occluder`` entry rather than an all-zero one: an empty occluder would tell an occluder-aware
    network that nothing hides an object that is hidden, and it refuses a batch without the entry.

    All shards of the split are loaded once at construction (uint8 in memory: 20 KiB a sample at
    64 x 64). The cameras are also kept as ``(N,)`` arrays for evaluation (``ds.elevation``,
    ``ds.azimuth``, degrees). Only the camera sources that read them train with the item's
    ``elevation`` and ``azimuth`` (``ViewpointSettings.camera``: ``"supervised"``, and ``"oracle"``, an
    upper bound); the paper's learned camera ignores them. ``occlusion`` (an
    :class:`a3d_core.data.occlusion.OcclusionGenerator`), if given, re-occludes the clean render on
    the fly instead of serving the stored occlusion, drawing from ``(seed, epoch, i)`` (set
    ``ds.epoch``).
    """

    def __init__(self, root: str | os.PathLike, split: str, occlusion=None, seed: int = 0) -> None:
        self.root = Path(root)
        self.split = split
        needed = ["amodal", "category", "object_index", "view_id", "elevation", "azimuth"]
        needed += ["clean_rgb"] if occlusion is not None else ["rgb", "visible", "occlusion_rate"]
        optional = ["occluder"] if occlusion is None else []
        manifest, arrays = load_split_arrays(self.root, split, needed, optional)
        self.has_occluder = occlusion is not None or "occluder" in arrays
        self.categories: list[str] = [str(name) for name in manifest.get("categories", [])]
        self.image_size = int(manifest.get("image_size", arrays["amodal"].shape[-1]))
        self._arrays = arrays
        self.object_index: np.ndarray = arrays["object_index"].astype(np.int64)
        self.view_id: np.ndarray = arrays["view_id"].astype(np.int64)
        self.category_index: np.ndarray = arrays["category"].astype(np.int64)
        self.elevation: np.ndarray = arrays["elevation"].astype(np.float64)
        self.azimuth: np.ndarray = arrays["azimuth"].astype(np.float64)
        self.occlusion = occlusion
        self.seed = seed
        self.epoch = 0
        if len(self.category_index) and (
            self.category_index.min() < 0 or self.category_index.max() >= len(self.categories)
        ):
            raise InputError(
                f"{self.root}: split {split!r} has category indices outside the manifest's {len(self.categories)} "
                "categories"
            )

    def __len__(self) -> int:
        return len(self.object_index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        arrays = self._arrays
        amodal = arrays["amodal"][index].astype(bool)
        if self.occlusion is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index % len(self)))
            sample = self.occlusion(arrays["clean_rgb"][index].astype(np.float32) / 255.0, amodal, rng)
            rgb, visible, rate, occluder = sample.rgb, sample.visible, sample.occlusion_rate, sample.occluder
        else:
            rgb = arrays["rgb"][index].astype(np.float32) / 255.0
            visible, rate = arrays["visible"][index].astype(bool), float(arrays["occlusion_rate"][index])
            occluder = arrays["occluder"][index] if self.has_occluder else None
        item = {
            "rgb": torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)),
            "visible": torch.from_numpy(visible.astype(np.float32))[None],
            "amodal": torch.from_numpy(amodal.astype(np.float32))[None],
            "category": torch.tensor(int(self.category_index[index]), dtype=torch.int64),
            "object_index": torch.tensor(int(self.object_index[index]), dtype=torch.int64),
            "view_id": torch.tensor(int(self.view_id[index]), dtype=torch.int64),
            "occlusion_rate": torch.tensor(rate, dtype=torch.float32),
            "elevation": torch.tensor(self.elevation[index], dtype=torch.float32),
            "azimuth": torch.tensor(self.azimuth[index], dtype=torch.float32),
        }
        if occluder is not None:
            item["occluder"] = torch.from_numpy(occluder.astype(np.float32))[None]
        return item


# ---------------------------------------------------------------------- canonical JSON export
def canonical_split(
    arrays: Mapping[str, np.ndarray], categories: Sequence[str], split: str, image_prefix: str | None = None
) -> tuple[AmodalSplit, list[tuple[str, bytes]]]:
    """One split's samples as a canonical :class:`AmodalSplit` plus its PNG images.

    Each sample is one image (the occluded RGB) with one annotation; category ids are
    ``index + 1`` (COCO reserves 0). ``object_id``, ``view_id`` and ``camera`` are metadata.
    Returns ``(split, [(relative image path, PNG bytes), ...])``.
    """
    import imageio.v3 as iio

    prefix = image_prefix or split
    coco = AmodalSplit(
        categories=[{"id": i + 1, "name": name} for i, name in enumerate(categories)],
        info={"split": split, "source": "a3d prepare shapenet"},
    )
    images = []
    count = len(arrays["category"])
    size = int(arrays["amodal"].shape[-1]) if count else 0
    for i in range(count):
        file_name = f"{prefix}/{i:07d}.png"
        images.append((file_name, iio.imwrite("<bytes>", arrays["rgb"][i].transpose(1, 2, 0), extension=".png")))
        coco.images.append({"id": i + 1, "file_name": file_name, "width": size, "height": size})
        coco.annotations.append(
            amodal_annotation(
                i + 1,
                i + 1,
                int(arrays["category"][i]) + 1,
                arrays["amodal"][i],
                arrays["visible"][i],
                object_id=int(arrays["object_index"][i]),
                view_id=int(arrays["view_id"][i]),
                camera={
                    "elevation": float(arrays["elevation"][i]),
                    "azimuth": float(arrays["azimuth"][i]),
                    "distance": float(arrays["distance"][i]),
                },
            )
        )
    return coco, images


def export_canonical(root: str | os.PathLike, out_dir: str | os.PathLike, overwrite: bool = False):
    """Export a shard dataset to a canonical amodal dataset (COCO JSON per split + PNG images).

    Returns the written :class:`a3d_core.data.canonical.AmodalDataset`.
    """
    from a3d_core.data.canonical import write_dataset

    root = Path(root)
    manifest = read_shard_manifest(root)
    splits, images = {}, []
    for split in manifest["shards"]:
        _, arrays = load_split_arrays(root, split)
        splits[split], split_images = canonical_split(arrays, manifest["categories"], split)
        images += split_images
    return write_dataset(
        out_dir,
        name=str(manifest.get("name", "shapenet")),
        source=str(root),
        splits=splits,
        overwrite=overwrite,
        write_images=images,
        extra_manifest={"categories": manifest["categories"], "image_size": manifest.get("image_size")},
    )


__all__ = [
    "OPTIONAL_SHARD_ARRAYS",
    "STORAGE",
    "ShapeNetAmodalDataset",
    "canonical_split",
    "export_canonical",
    "find_kato_files",
    "load_split_arrays",
    "read_kato_npz",
    "read_shard_manifest",
    "read_shard",
    "write_kato_npz",
    "write_shard",
]
