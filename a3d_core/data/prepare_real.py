"""``a3d prepare kins | kins2020 | d2sa | cocoa-cls | cocoa``: a real dataset -> canonical format.

:func:`prepare_real` reads one or more annotation files of one layout, merges them into one split
(ids kept unique), checks every image and annotation (:mod:`a3d_core.data.validate`), converts the
good ones to canonical annotations (amodal mask, visible mask, occlusion rate) and writes the split
atomically with :func:`a3d_core.data.canonical.write_dataset`.

Images are not copied: the manifest's ``image_root`` is the absolute path of ``--images`` and
``file_name`` is the file's own. A second run that writes another split into the same dataset
(KINS train from ``training/image_2``, val from ``testing/image_2``) adds it and keeps the existing
splits; when the two image folders differ, ``image_root`` becomes their common parent and every
``file_name`` is made relative to it (``training/image_2/000001.png``). The whole dataset folder is
rewritten atomically, so a failed run never leaves a half-written dataset and never alters an
existing one.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from a3d_core.data.canonical import (
    MANIFEST_NAME,
    AmodalDataset,
    AmodalSplit,
    amodal_annotation,
    read_dataset,
    read_json,
    write_dataset,
)
from a3d_core.data.catalog import data_root
from a3d_core.data.formats import check_layout, get_layout, layout_entry
from a3d_core.data.formats.base import ReadOptions, SourceAnnotations, SourceImage
from a3d_core.data.problems import Problem, ProblemKind
from a3d_core.data.validate import (
    StrictValidationError,
    ValidationReport,
    ValidationSettings,
    check_image_file,
    check_instance,
    summarize,
)
from a3d_core.errors import InputError

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while annotations are converted."""

_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
VISIBLE_CLIPPED_NOTE = "visible pixels outside the amodal mask clipped (within tolerance)"


@dataclass(frozen=True)
class RealPrepareRequest:
    """What to convert, and where to.

    ``out_dir`` defaults to ``<data root>/<layout>`` (data root: ``data_root_dir``, else
    ``$A3D_DATA_ROOT``, else ``./data``). ``overwrite`` allows replacing an existing split of the
    same name (other splits are kept).
    """

    layout: str
    annotation_files: tuple[Path, ...]
    image_dir: Path
    split: str = "train"
    out_dir: Path | None = None
    data_root_dir: Path | None = None
    strict: bool = False
    overwrite: bool = False
    keep_stuff: bool = False
    validation: ValidationSettings = field(default_factory=ValidationSettings)

    def __post_init__(self) -> None:
        layout_entry(self.layout)
        if not self.annotation_files:
            raise InputError("give at least one annotation file (--annotations FILE)")
        object.__setattr__(self, "annotation_files", tuple(Path(p) for p in self.annotation_files))
        if not _SPLIT_NAME.match(self.split) or self.split == Path(MANIFEST_NAME).stem:
            raise InputError(f"split name {self.split!r}: use letters, digits, '_', '-', '.' (e.g. train, val)")

    @property
    def target_dir(self) -> Path:
        return self.out_dir if self.out_dir is not None else data_root(self.data_root_dir) / self.layout


@dataclass
class RealPrepareResult:
    """The written dataset, the split written, and its validation report."""

    dataset: AmodalDataset
    split: str
    report: ValidationReport
    replaced_split: bool


def prepare_real(request: RealPrepareRequest, progress: ProgressCallback | None = None) -> RealPrepareResult:
    """Convert ``request.annotation_files`` into split ``request.split`` of a canonical dataset.

    Raises :class:`InputError` for unreadable or wrong-layout files and for an existing split
    without ``overwrite``; :class:`StrictValidationError` (nothing written) when ``strict`` and
    any problem was found.
    """
    image_dir = request.image_dir
    if not image_dir.is_dir():
        raise InputError(f"{image_dir}: image folder not found (--images)")
    target = request.target_dir
    existing = _existing_dataset(target, request)

    layout = get_layout(request.layout)
    sources = []
    for path in request.annotation_files:
        data = read_json(path)
        check_layout(layout, data, path)
        sources.append(layout.read(data, path, ReadOptions(keep_stuff=request.keep_stuff)))
    id_offsets = _make_ids_unique(sources)
    categories = _merged_categories(sources)

    split, report = _convert(sources, categories, image_dir, request.validation, progress)
    if request.strict and report.problems:
        raise StrictValidationError(report)
    split.info = {
        "layout": request.layout,
        "annotation_files": [str(p.resolve()) for p in request.annotation_files],
        "image_dir": str(image_dir.resolve()),
        "id_offsets": id_offsets,
        "report": report.to_json(),
    }
    dataset, replaced = _write_split(target, request, split, image_dir.resolve(), existing)
    return RealPrepareResult(dataset, request.split, report, replaced)


# ------------------------------------------------------------------------------------ merging
def _make_ids_unique(sources: Sequence[SourceAnnotations]) -> list[dict[str, Any]]:
    """Shift the ids of each later file past the earlier ones where they would collide.

    Returns, per file, the offsets applied (0 when its ids were already unique).
    """
    used_images: set[int] = set()
    used_annotations: set[int] = set()
    offsets = []
    for source in sources:
        image_ids = {image.id for image in source.images}
        annotation_ids = {instance.id for instance in source.instances}
        image_offset = _offset(image_ids, used_images)
        annotation_offset = _offset(annotation_ids, used_annotations)
        source.shift_ids(image_offset, annotation_offset)
        used_images.update(i + image_offset for i in image_ids)
        used_annotations.update(i + annotation_offset for i in annotation_ids)
        offsets.append(
            {"file": str(source.path), "image_id_offset": image_offset, "annotation_id_offset": annotation_offset}
        )
    return offsets


def _offset(ids: set[int], used: set[int]) -> int:
    if not ids or not ids & used:
        return 0
    return max(used) - min(ids) + 1


def _merged_categories(sources: Sequence[SourceAnnotations]) -> list[dict[str, Any]]:
    """The union of the files' categories; one id with two names raises :class:`InputError`."""
    merged: dict[int, dict[str, Any]] = {}
    for source in sources:
        for category in source.categories:
            known = merged.setdefault(category["id"], category)
            if known["name"] != category["name"]:
                raise InputError(
                    f"{source.path}: category {category['id']} is {category['name']!r} here "
                    f"but {known['name']!r} in an earlier file"
                )
    return [merged[key] for key in sorted(merged)]


# --------------------------------------------------------------------------------- conversion
def _convert(
    sources: Sequence[SourceAnnotations],
    categories: list[dict[str, Any]],
    image_dir: Path,
    settings: ValidationSettings,
    progress: ProgressCallback | None,
) -> tuple[AmodalSplit, ValidationReport]:
    """Check images and instances and convert the good ones; problems skip what they concern."""
    problems: list[Problem] = []
    notes: Counter = Counter()
    excluded: Counter = Counter()
    for source in sources:
        problems.extend(source.problems)
        notes.update(source.notes)
        excluded.update(source.excluded)
    skipped = len(problems)
    images, bad_images = _check_images(sources, image_dir, problems)

    category_ids = {category["id"] for category in categories}
    annotations: list[dict[str, Any]] = []
    seen_ids: set[int] = set()
    total = sum(len(source.instances) for source in sources)
    done = 0
    for source in sources:
        for instance in source.instances:
            done += 1
            if progress is not None:
                progress(done, total)
            if instance.image_id in bad_images:
                notes["annotations on skipped images"] += 1
                skipped += 1
                continue
            found = []
            if instance.id in seen_ids:
                found.append((ProblemKind.DUPLICATE_ID, "annotation id appears twice"))
            seen_ids.add(instance.id)
            if instance.category_id not in category_ids:
                found.append(
                    (ProblemKind.UNKNOWN_CATEGORY, f"category id {instance.category_id} is not in 'categories'")
                )
            image = images.get(instance.image_id)
            if image is None:
                found.append((ProblemKind.UNKNOWN_IMAGE, f"image id {instance.image_id} is not in 'images'"))
            instance_problems = [
                Problem(kind, source.path, detail, instance.id, instance.image_id) for kind, detail in found
            ]
            checked = check_instance(instance, image, source.path, settings) if image is not None else None
            if checked is not None:
                instance_problems.extend(checked.problems)
            if instance_problems:
                problems.extend(instance_problems)
                skipped += 1
                continue
            if checked.visible_clipped:
                notes[VISIBLE_CLIPPED_NOTE] += 1
            visible = checked.visible if checked.visible is not None else checked.amodal
            extra = {"source": instance.metadata} if instance.metadata else {}
            annotations.append(
                amodal_annotation(
                    instance.id,
                    instance.image_id,
                    instance.category_id,
                    checked.amodal,
                    visible,
                    instance.iscrowd,
                    **extra,
                )
            )

    kept_images = [
        {"id": image.id, "file_name": image.file_name, "width": image.width, "height": image.height}
        for image in images.values()
        if image.id not in bad_images
    ]
    split = AmodalSplit(kept_images, annotations, categories)
    return split, summarize(split, problems, len(bad_images), skipped, excluded, notes)


def _check_images(
    sources: Sequence[SourceAnnotations], image_dir: Path, problems: list[Problem]
) -> tuple[dict[int, SourceImage], set[int]]:
    """All images by id, and the ids of those with a problem (appended to ``problems``)."""
    images: dict[int, SourceImage] = {}
    bad_images: set[int] = set()
    for source in sources:
        for image in source.images:
            if image.id in images:
                problems.append(
                    Problem(ProblemKind.DUPLICATE_ID, source.path, "image id appears twice", image_id=image.id)
                )
                continue
            images[image.id] = image
            image_problem = check_image_file(image, image_dir, source.path)
            if image_problem is not None:
                problems.append(image_problem)
                bad_images.add(image.id)
    return images, bad_images


# ------------------------------------------------------------------------------------ writing
def _existing_dataset(target: Path, request: RealPrepareRequest) -> AmodalDataset | None:
    """The a3d dataset already at ``target`` (None if there is none); checked before any work."""
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return None
    if not (target / MANIFEST_NAME).is_file():
        raise InputError(f"{target}: exists and is not an a3d dataset; choose another --out or remove it")
    existing = read_dataset(target)
    source = existing.manifest.get("source")
    if source != request.layout:
        raise InputError(
            f"{target}: holds a dataset prepared from {source!r}, not {request.layout!r}; choose another --out"
        )
    if request.split in existing.splits and not request.overwrite:
        raise InputError(f"{target}: split {request.split!r} already exists (pass --overwrite to replace it)")
    return existing


def _write_split(
    target: Path, request: RealPrepareRequest, split: AmodalSplit, image_root: Path, existing: AmodalDataset | None
) -> tuple[AmodalDataset, bool]:
    splits: dict[str, AmodalSplit] = {}
    if existing is not None:
        old_root = existing.image_root.resolve()
        image_root = Path(os.path.commonpath([old_root, image_root]))
        for name in existing.splits:
            if name == request.split:
                splits[name] = split  # replaced in place, keeping the order of splits
                continue
            kept = existing.load_split(name)
            _check_same_categories(target, name, kept, split)
            _rebase(kept, old_root, image_root)
            splits[name] = kept
    _rebase(split, request.image_dir.resolve(), image_root)
    splits[request.split] = split
    dataset = write_dataset(
        target,
        name=target.name,
        source=request.layout,
        splits=splits,
        image_root=image_root,
        overwrite=target.exists(),  # checked before: an a3d dataset of this layout, or an empty folder
    )
    return dataset, existing is not None and request.split in existing.splits


def _check_same_categories(target: Path, name: str, old: AmodalSplit, new: AmodalSplit) -> None:
    old_names, new_names = old.category_names, new.category_names
    clashes = [cid for cid in old_names.keys() & new_names.keys() if old_names[cid] != new_names[cid]]
    if clashes:
        cid = clashes[0]
        raise InputError(
            f"{target}: category {cid} is {new_names[cid]!r} in the new split but {old_names[cid]!r} in split {name!r}"
        )


def _rebase(split: AmodalSplit, old_root: Path, new_root: Path) -> None:
    """Make ``file_name``s relative to ``new_root`` instead of ``old_root`` (in place)."""
    prefix = Path(os.path.relpath(old_root, new_root))
    if prefix == Path("."):
        return
    for image in split.images:
        image["file_name"] = (prefix / image["file_name"]).as_posix()
