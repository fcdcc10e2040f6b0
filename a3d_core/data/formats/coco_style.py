"""The reader shared by the COCO-style amodal layouts (KINS, KINS 2020, D2SA, COCOA-cls).

They differ only in which annotation keys hold the amodal mask, the visible mask and the amodal
box, so one reader, configured by those key names, serves them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from a3d_core.data.formats.base import (
    Layout,
    ReadOptions,
    SourceAnnotations,
    SourceInstance,
    as_int,
    malformed,
    read_categories,
    read_images,
)

VISIBLE_ABSENT_NOTE = "visible mask absent: taken as unoccluded"


@dataclass(frozen=True)
class CocoStyleLayout(Layout):
    """A COCO file whose annotations carry an amodal and a visible segmentation.

    ``metadata_keys`` are copied into the canonical annotation's ``source`` dict when present.
    With ``visible_optional`` an annotation without ``visible_key`` is taken as unoccluded
    (counted in the report's notes); otherwise it is a malformed annotation.
    """

    name: str
    title: str
    amodal_key: str
    visible_key: str
    bbox_key: str
    expected: str
    metadata_keys: tuple[str, ...] = ()
    visible_optional: bool = False

    @property
    def signature(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({self.amodal_key, self.visible_key})

    def read(self, data: Mapping[str, Any], path: Path, options: ReadOptions) -> SourceAnnotations:
        source = SourceAnnotations(path, read_images(data, path), [], read_categories(data, path))
        required = ("id", "image_id", "category_id", self.amodal_key) + (
            () if self.visible_optional else (self.visible_key,)
        )
        for index, annotation in enumerate(data["annotations"]):
            if not isinstance(annotation, dict):
                source.problems.append(malformed(path, f"annotations[{index}] is not an object"))
                continue
            annotation_id = as_int(annotation.get("id"))
            missing = [key for key in required if key not in annotation]
            if missing:
                source.problems.append(
                    malformed(path, f"annotations[{index}] lacks {', '.join(repr(k) for k in missing)}", annotation_id)
                )
                continue
            image_id, category_id = as_int(annotation["image_id"]), as_int(annotation["category_id"])
            if annotation_id is None or image_id is None or category_id is None:
                source.problems.append(
                    malformed(
                        path,
                        f"annotations[{index}]: 'id', 'image_id' and 'category_id' must be integers",
                        annotation_id,
                    )
                )
                continue
            visible = annotation.get(self.visible_key)
            if visible is None:
                source.notes[VISIBLE_ABSENT_NOTE] += 1
            source.instances.append(
                SourceInstance(
                    id=annotation_id,
                    image_id=image_id,
                    category_id=category_id,
                    amodal=annotation[self.amodal_key],
                    visible=visible,
                    bbox=annotation.get(self.bbox_key),
                    iscrowd=as_int(annotation.get("iscrowd", 0)) or 0,
                    metadata={key: annotation[key] for key in self.metadata_keys if key in annotation},
                )
            )
        return source
