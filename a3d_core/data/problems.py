"""What can be wrong with an image or an annotation of a source file, and where.

Layout readers (:mod:`a3d_core.data.formats`) report entries too malformed to read, and
:mod:`a3d_core.data.validate` everything it finds when it checks the rest against the images;
both speak of problems in these terms, which sit below them both.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any


class ProblemKind(str, Enum):
    """What can be wrong with an image or an annotation."""

    MISSING_IMAGE = "missing image"
    UNREADABLE_IMAGE = "unreadable image"
    IMAGE_SIZE = "image size disagrees"
    OUTSIDE_IMAGE = "outside the image"
    VISIBLE_OUTSIDE_AMODAL = "visible outside amodal"
    SHORT_POLYGON = "polygon with < 3 points"
    EMPTY_MASK = "empty mask"
    DUPLICATE_ID = "duplicate id"
    UNKNOWN_CATEGORY = "unknown category"
    UNKNOWN_IMAGE = "unknown image"
    MALFORMED = "malformed annotation"


@dataclass(frozen=True)
class Problem:
    """One problem, located by annotation file, annotation id and image id (either may be None)."""

    kind: ProblemKind
    file: Path
    detail: str
    annotation_id: int | None = None
    image_id: int | None = None

    def describe(self) -> str:
        where = [self.file.name]
        if self.annotation_id is not None:
            where.append(f"annotation {self.annotation_id}")
        if self.image_id is not None:
            where.append(f"image {self.image_id}")
        return f"{', '.join(where)}: {self.kind.value}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.name.lower(),
            "file": str(self.file),
            "annotation_id": self.annotation_id,
            "image_id": self.image_id,
            "detail": self.detail,
        }
