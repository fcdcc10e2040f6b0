"""Finding problems in real amodal annotations, and the report of a prepared split.

``a3d prepare kins | kins2020 | d2sa | cocoa-cls | cocoa`` checks every image and annotation
before it converts them. Each problem names its annotation (or image) and file; by default the
bad annotation is skipped and counted, with ``--strict`` any problem is fatal.

Problems found (:class:`~a3d_core.data.problems.ProblemKind`): missing or unreadable image
files, image sizes that disagree with the JSON, masks or boxes outside the image, visible pixels
outside the amodal mask, polygons with fewer than 3 points, empty masks, duplicate ids, unknown
category or image ids, and annotations too malformed to read. Polygons are checked by
:func:`a3d_core.data.polygons.polygon_points`, the guard every polygon reader uses (numbers,
finite, an even count, at least 3 points).

Real annotations are drawn by hand, so two tolerances (:class:`ValidationSettings`) keep a
border pixel from discarding an instance: coordinates may lie ``boundary_slack`` pixels beyond the
image, and up to ``visible_outside_tolerance`` of the visible pixels may lie outside the amodal
mask (those pixels are clipped away, as :func:`a3d_core.data.canonical.amodal_annotation` does).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from a3d_core.data.canonical import AmodalSplit, decode_segmentation
from a3d_core.data.formats.base import SourceImage, SourceInstance
from a3d_core.data.polygons import PolygonError, ShortPolygonError, polygon_points
from a3d_core.data.problems import Problem, ProblemKind
from a3d_core.errors import InputError

OCCLUSION_BINS = 10


@dataclass(frozen=True)
class ValidationSettings:
    """Tolerances for hand-drawn annotations.

    ``boundary_slack``: pixels a polygon vertex or box edge may lie beyond the image border.
    ``visible_outside_tolerance``: fraction of the visible pixels that may lie outside the amodal
    mask before the annotation is a problem (below it they are clipped away).
    """

    boundary_slack: float = 1.0
    visible_outside_tolerance: float = 0.05

    def __post_init__(self) -> None:
        if not (math.isfinite(self.boundary_slack) and self.boundary_slack >= 0):
            raise ValueError(f"boundary_slack must be a finite number >= 0, got {self.boundary_slack}")
        if not 0.0 <= self.visible_outside_tolerance < 1.0:
            raise ValueError(f"visible_outside_tolerance must be in [0, 1), got {self.visible_outside_tolerance}")


# --------------------------------------------------------------------------------------- images
def check_image_file(image: SourceImage, image_dir: Path, file: Path) -> Problem | None:
    """Open only the header of ``image_dir / image.file_name`` and compare its size with the JSON."""
    from PIL import Image, UnidentifiedImageError

    path = image_dir / image.file_name
    if not path.is_file():
        return Problem(ProblemKind.MISSING_IMAGE, file, f"{path} not found", image_id=image.id)
    try:
        with Image.open(path) as handle:
            width, height = handle.size
    except (UnidentifiedImageError, OSError, ValueError) as error:
        return Problem(ProblemKind.UNREADABLE_IMAGE, file, f"{path}: {error}", image_id=image.id)
    if (width, height) != (image.width, image.height):
        return Problem(
            ProblemKind.IMAGE_SIZE,
            file,
            f"{path.name} is {width}x{height} (w x h), the JSON says {image.width}x{image.height}",
            image_id=image.id,
        )
    return None


# ------------------------------------------------------------------------------------ instances
@dataclass
class CheckedInstance:
    """The decoded masks of one instance, ``(H, W)`` uint8 each, and the problems found on it.

    ``visible`` is None when the layout marks the instance as unoccluded (visible = amodal).
    """

    amodal: np.ndarray | None = None
    visible: np.ndarray | None = None
    problems: list[Problem] = field(default_factory=list)
    visible_clipped: bool = False


def rle_string_counts(counts: str) -> list[int]:
    """COCO's compressed RLE string -> run lengths (the inverse of ``rleToString`` in maskApi.c).

    Each run is stored as 5-bit groups in characters offset by 48, with a continuation bit 0x20
    and a sign bit 0x10 on the last group; from the third run on, runs are stored as the
    difference to the run two places earlier.
    """
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(counts):
                raise ValueError("truncated RLE string")
            group = ord(counts[position]) - 48
            if not 0 <= group < 64:
                raise ValueError(f"character {counts[position]!r} is not RLE")
            value |= (group & 0x1F) << (5 * shift)
            more = bool(group & 0x20)
            position += 1
            shift += 1
            if not more and group & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


class _Malformed(Exception):
    """A segmentation the checks cannot read; turned into a :class:`Problem` by the caller."""

    def __init__(self, kind: ProblemKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_polygons(segmentation: list, height: int, width: int, slack: float) -> None:
    polygons = segmentation if segmentation and isinstance(segmentation[0], list) else [segmentation]
    for polygon in polygons:
        try:
            points = polygon_points(polygon)
        except ShortPolygonError as error:
            raise _Malformed(ProblemKind.SHORT_POLYGON, str(error)) from None
        except PolygonError as error:
            raise _Malformed(ProblemKind.MALFORMED, str(error)) from None
        (x_min, y_min), (x_max, y_max) = points.min(axis=0), points.max(axis=0)
        if x_min < -slack or x_max > width + slack or y_min < -slack or y_max > height + slack:
            raise _Malformed(
                ProblemKind.OUTSIDE_IMAGE,
                f"polygon spans x {x_min:g}..{x_max:g}, y {y_min:g}..{y_max:g} in a {width}x{height} image",
            )


def _check_rle(segmentation: Mapping[str, Any], height: int, width: int) -> None:
    size, counts = segmentation.get("size"), segmentation.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_number(s) for s in size)) or counts is None:
        raise _Malformed(ProblemKind.MALFORMED, "RLE needs 'size' (height, width) and 'counts'")
    if [int(size[0]), int(size[1])] != [height, width]:
        raise _Malformed(
            ProblemKind.OUTSIDE_IMAGE, f"RLE size {list(size)} (h, w) disagrees with the image [{height}, {width}]"
        )
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise _Malformed(ProblemKind.MALFORMED, "uncompressed RLE counts must be integers >= 0")
        runs = counts
    elif isinstance(counts, str):
        try:
            runs = rle_string_counts(counts)
        except ValueError as error:
            raise _Malformed(ProblemKind.MALFORMED, f"RLE counts string: {error}") from None
        if any(run < 0 for run in runs):
            raise _Malformed(ProblemKind.MALFORMED, "RLE counts string decodes to a negative run")
    else:
        raise _Malformed(ProblemKind.MALFORMED, f"RLE counts of type {type(counts).__name__}")
    if sum(runs) != height * width:
        raise _Malformed(ProblemKind.MALFORMED, f"RLE runs cover {sum(runs)} pixels, the image has {height * width}")


def _decode_checked(segmentation: Any, height: int, width: int, slack: float) -> np.ndarray:
    """Check a polygon list, one flat polygon, or RLE, then decode it to ``(H, W)`` uint8."""
    if isinstance(segmentation, Mapping):
        _check_rle(segmentation, height, width)
    elif isinstance(segmentation, list):
        if not segmentation:
            raise _Malformed(ProblemKind.EMPTY_MASK, "no polygon")
        _check_polygons(segmentation, height, width, slack)
    else:
        raise _Malformed(ProblemKind.MALFORMED, f"segmentation of type {type(segmentation).__name__}")
    try:
        return decode_segmentation(segmentation, height, width)
    except PolygonError as error:  # an outline too long to rasterise
        raise _Malformed(ProblemKind.MALFORMED, str(error)) from None


def _check_bbox(bbox: Any, height: int, width: int, slack: float) -> None:
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        raise _Malformed(ProblemKind.MALFORMED, f"bbox must be 4 numbers (x, y, w, h), got {bbox!r}")
    x, y, w, h = bbox
    if w < 0 or h < 0:
        raise _Malformed(ProblemKind.MALFORMED, f"bbox {bbox} has a negative size")
    if x < -slack or y < -slack or x + w > width + slack or y + h > height + slack:
        raise _Malformed(ProblemKind.OUTSIDE_IMAGE, f"bbox {bbox} leaves the {width}x{height} image")


def check_instance(
    instance: SourceInstance, image: SourceImage, file: Path, settings: ValidationSettings
) -> CheckedInstance:
    """Decode and check one instance's amodal mask, visible mask and box.

    The masks are ``(H, W)`` with ``H, W = image.height, image.width``. Problems stop the checks
    of the part they are found in; the instance is usable only if ``problems`` is empty.
    """
    checked = CheckedInstance()

    def problem(kind: ProblemKind, detail: str) -> None:
        checked.problems.append(Problem(kind, file, detail, annotation_id=instance.id, image_id=instance.image_id))

    height, width, slack = image.height, image.width, settings.boundary_slack
    for part, segmentation in (("amodal", instance.amodal), ("visible", instance.visible)):
        if part == "visible" and segmentation is None:
            continue
        try:
            mask = _decode_checked(segmentation, height, width, slack)
        except _Malformed as error:
            problem(error.kind, f"{part} mask: {error.detail}")
            continue
        if not mask.any():
            problem(ProblemKind.EMPTY_MASK, f"{part} mask has no pixels")
            continue
        setattr(checked, part, mask)
    if instance.bbox is not None:
        try:
            _check_bbox(instance.bbox, height, width, slack)
        except _Malformed as error:
            problem(error.kind, f"amodal box: {error.detail}")
    if checked.amodal is not None and checked.visible is not None:
        visible_pixels = int(np.count_nonzero(checked.visible))
        outside = int(np.count_nonzero(checked.visible > checked.amodal))  # both 0/1 uint8
        fraction = outside / visible_pixels
        if fraction > settings.visible_outside_tolerance:
            problem(
                ProblemKind.VISIBLE_OUTSIDE_AMODAL,
                f"{outside} of {visible_pixels} visible pixels ({fraction:.0%}) lie outside the amodal mask "
                f"(tolerance {settings.visible_outside_tolerance:.0%})",
            )
        checked.visible_clipped = outside > 0
    return checked


# --------------------------------------------------------------------------------------- report
@dataclass(frozen=True)
class CategoryCount:
    """Instances of one category in a prepared split, and their mean occlusion rate."""

    id: int
    name: str
    instances: int
    mean_occlusion: float


@dataclass
class ValidationReport:
    """What was kept, what was skipped and why: the content of ``a3d prepare``'s summary.

    ``occlusion_histogram[i]`` counts kept instances with occlusion rate in ``[i/10, (i+1)/10)``
    (the last bin includes 1.0). ``excluded`` counts entries left out on purpose (COCOA stuff
    regions), ``notes`` counts facts worth knowing that are not problems.
    """

    images: int
    instances: int
    skipped_images: int
    skipped_instances: int
    categories: list[CategoryCount]
    occlusion_histogram: list[int]
    problems: list[Problem]
    excluded: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def problem_counts(self) -> dict[ProblemKind, int]:
        counts = Counter(problem.kind for problem in self.problems)
        return {kind: counts[kind] for kind in ProblemKind if counts[kind]}

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "instances": self.instances,
            "skipped_images": self.skipped_images,
            "skipped_instances": self.skipped_instances,
            "occlusion_histogram": self.occlusion_histogram,
            "excluded": self.excluded,
            "notes": self.notes,
            "problems": [problem.to_json() for problem in self.problems],
        }


def occlusion_histogram(rates: Sequence[float], bins: int = OCCLUSION_BINS) -> list[int]:
    """Counts of occlusion rates in ``bins`` equal bins over ``[0, 1]`` (1.0 falls in the last).

    Rates are ratios of pixel counts, so a rate on a bin edge (``1 - 4000 / 10000``) is put in
    the bin it opens despite its rounding error (``np.histogram`` would put 0.6 below 0.6).
    """
    scaled = np.floor(np.asarray(rates, dtype=np.float64) * bins + 1e-9).astype(np.int64)
    return [int(c) for c in np.bincount(np.clip(scaled, 0, bins - 1), minlength=bins)]


def summarize(
    split: AmodalSplit,
    problems: Sequence[Problem],
    skipped_images: int,
    skipped_instances: int,
    excluded: Mapping[str, int] | None = None,
    notes: Mapping[str, int] | None = None,
) -> ValidationReport:
    """The report of a converted split: counts per category and the occlusion-rate histogram."""
    by_category: dict[int, list[float]] = {int(c["id"]): [] for c in split.categories}
    for annotation in split.annotations:
        by_category.setdefault(int(annotation["category_id"]), []).append(float(annotation["occlusion_rate"]))
    names = split.category_names
    categories = [
        CategoryCount(cid, names.get(cid, "?"), len(rates), float(np.mean(rates)) if rates else 0.0)
        for cid, rates in sorted(by_category.items())
    ]
    return ValidationReport(
        images=len(split.images),
        instances=len(split.annotations),
        skipped_images=skipped_images,
        skipped_instances=skipped_instances,
        categories=categories,
        occlusion_histogram=occlusion_histogram([a["occlusion_rate"] for a in split.annotations]),
        problems=list(problems),
        excluded=dict(excluded or {}),
        notes=dict(notes or {}),
    )


class StrictValidationError(InputError):
    """``--strict`` found problems; ``report`` holds them all, nothing was written."""

    def __init__(self, report: ValidationReport) -> None:
        first = report.problems[0].describe()
        count = len(report.problems)
        super().__init__(
            f"--strict: {count} problem{'s' if count != 1 else ''} found, nothing written (first: {first})"
        )
        self.report = report
