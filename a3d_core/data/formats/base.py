"""What every layout reader returns, the reader interface, and COCO-style parsing helpers.

A reader does not decode masks: it hands over each instance's segmentations exactly as the file
stores them (polygon lists, one flat polygon, RLE with string or list counts), so that
:mod:`a3d_core.data.validate` can check them against the real image and name each problem.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from a3d_core.data.problems import Problem, ProblemKind
from a3d_core.errors import InputError


@dataclass(frozen=True)
class SourceImage:
    """An image entry of an annotation file; ``file_name`` is relative to the ``--images`` folder."""

    id: int
    file_name: str
    width: int
    height: int


@dataclass
class SourceInstance:
    """One object as the file describes it.

    ``amodal`` and ``visible`` are COCO segmentations (polygons or RLE) as stored; ``visible`` is
    None when the layout marks the object unoccluded (its visible mask is its amodal mask).
    ``bbox`` is the file's amodal box ``[x, y, w, h]`` (checked, not copied: the canonical box is
    recomputed from the mask). ``metadata`` holds layout-specific facts worth keeping, e.g.
    COCOA's depth ``order``.
    """

    id: int
    image_id: int
    category_id: int
    amodal: Any
    visible: Any | None
    bbox: Any | None = None
    iscrowd: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceAnnotations:
    """Everything read from one annotation file.

    ``problems`` are entries too malformed to become an instance; ``excluded`` counts entries left
    out on purpose (COCOA stuff regions); ``notes`` counts facts that are not problems.
    """

    path: Path
    images: list[SourceImage]
    instances: list[SourceInstance]
    categories: list[dict[str, Any]]
    problems: list[Problem] = field(default_factory=list)
    excluded: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)

    def shift_ids(self, image_offset: int, annotation_offset: int) -> None:
        """Add offsets to all image and annotation ids (to keep ids unique across merged files)."""
        self.images = [
            SourceImage(image.id + image_offset, image.file_name, image.width, image.height) for image in self.images
        ]
        for instance in self.instances:
            instance.id += annotation_offset
            instance.image_id += image_offset


@dataclass(frozen=True)
class ReadOptions:
    """Reader switches: ``keep_stuff`` keeps COCOA's ``isStuff`` regions (skipped by default)."""

    keep_stuff: bool = False


class Layout(ABC):
    """A reader of one external layout.

    Subclasses set ``name`` (the command name), ``title`` (for messages), ``signature`` (the
    annotation keys that identify the layout) and ``expected`` (what a file of this layout holds,
    for error messages), and implement :meth:`read`. Whether a file is of this layout at all is
    checked by :func:`a3d_core.data.formats.check_layout`, which knows the other layouts.
    """

    name: str
    title: str
    signature: frozenset[str]
    expected: str

    def recognises(self, data: Any) -> bool:
        """Whether the annotations of a parsed file carry this layout's identifying keys."""
        return self.signature <= annotation_keys(data)

    @abstractmethod
    def read(self, data: Mapping[str, Any], path: Path, options: ReadOptions) -> SourceAnnotations:
        """Parse a file that passed :func:`~a3d_core.data.formats.check_layout` into :class:`SourceAnnotations`."""


# ------------------------------------------------------------------------------------- helpers
def annotation_keys(data: Any) -> set[str]:
    """The union of the keys of all annotation objects in a parsed file (empty if none)."""
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        return set()
    keys: set[str] = set()
    for annotation in data["annotations"]:
        if isinstance(annotation, dict):
            keys.update(annotation)
    return keys


def as_int(value: Any) -> int | None:
    """``value`` as an int if it is an integer (or an integral float), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def read_images(data: Mapping[str, Any], path: Path) -> list[SourceImage]:
    """The ``images`` list; an entry without integer ``id``/``width``/``height`` or a ``file_name``
    makes the file unusable and raises :class:`InputError` naming the entry."""
    images = []
    for index, entry in enumerate(data["images"]):
        if not isinstance(entry, dict):
            raise InputError(f"{path}: images[{index}] is not an object")
        image_id, width, height = as_int(entry.get("id")), as_int(entry.get("width")), as_int(entry.get("height"))
        file_name = entry.get("file_name")
        if image_id is None or not isinstance(file_name, str) or not file_name or width is None or height is None:
            raise InputError(f"{path}: images[{index}] needs an integer 'id', 'width', 'height' and a 'file_name'")
        if width <= 0 or height <= 0:
            raise InputError(f"{path}: image {image_id} has size {width}x{height}")
        images.append(SourceImage(image_id, file_name, width, height))
    return images


def read_categories(data: Mapping[str, Any], path: Path) -> list[dict[str, Any]]:
    """The ``categories`` list as ``{"id", "name"}`` dicts; ids must be unique integers."""
    categories = data.get("categories")
    if not isinstance(categories, list):
        raise InputError(f"{path}: no 'categories' list")
    result: list[dict[str, Any]] = []
    seen: set[int] = set()
    for index, entry in enumerate(categories):
        category_id = as_int(entry.get("id")) if isinstance(entry, dict) else None
        if category_id is None or not isinstance(entry.get("name"), str):
            raise InputError(f"{path}: categories[{index}] needs an integer 'id' and a 'name'")
        if category_id in seen:
            raise InputError(f"{path}: category id {category_id} appears twice")
        seen.add(category_id)
        result.append({"id": category_id, "name": entry["name"].strip()})
    return result


def malformed(path: Path, detail: str, annotation_id: int | None = None, image_id: int | None = None) -> Problem:
    """A :class:`Problem` for an entry a reader cannot turn into an instance."""
    return Problem(ProblemKind.MALFORMED, path, detail, annotation_id=annotation_id, image_id=image_id)
