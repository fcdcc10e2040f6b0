"""COCOA, the original class-agnostic release (Zhu et al., CVPR 2017).

Files ``COCO_amodal_{train,val,test}2014.json``; images are COCO train2014/val2014. Each entry of
``annotations`` covers one image: ``image_id``, ``size`` (number of regions) and ``regions``, each
with ``segmentation`` = ONE flat AMODAL polygon ``[x1, y1, ...]``, ``name`` (free text),
``area``, ``isStuff`` (0/1), ``order`` (1 = front), ``occlude_rate`` and, only when occluded,
``visible_mask``/``invisible_mask`` (RLE). An unoccluded region's visible mask is its amodal mask.

The canonical dataset is class-agnostic: one category, ``object`` (id 1). Regions have no ids of
their own: a region gets the id ``k`` when it is the ``k``-th region of the file (counting from 1,
stuff regions included, so ids do not depend on ``--keep-stuff``). ``order``, the region's
``name`` and ``isStuff`` are kept in the canonical annotation's ``source`` dict. ``isStuff``
regions (sky, grass, ...) are skipped unless ``ReadOptions.keep_stuff``.
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
    read_images,
)

OBJECT_CATEGORY = {"id": 1, "name": "object"}
STUFF_EXCLUDED = "stuff regions (isStuff; --keep-stuff keeps them)"


@dataclass(frozen=True)
class CocoaLayout(Layout):
    name: str = "cocoa"
    title: str = "COCOA"
    signature: frozenset[str] = frozenset({"regions"})
    expected: str = "one annotation per image with a 'regions' list (class-agnostic COCOA)"

    def read(self, data: Mapping[str, Any], path: Path, options: ReadOptions) -> SourceAnnotations:
        source = SourceAnnotations(path, read_images(data, path), [], [dict(OBJECT_CATEGORY)])
        region_id = 0
        for index, entry in enumerate(data["annotations"]):
            image_id = as_int(entry.get("image_id")) if isinstance(entry, dict) else None
            regions = entry.get("regions") if isinstance(entry, dict) else None
            if image_id is None or not isinstance(regions, list):
                source.problems.append(
                    malformed(path, f"annotations[{index}] needs an integer 'image_id' and a 'regions' list")
                )
                continue
            for position, region in enumerate(regions):
                region_id += 1
                if not isinstance(region, dict) or "segmentation" not in region:
                    source.problems.append(
                        malformed(
                            path, f"annotations[{index}].regions[{position}] has no 'segmentation'", region_id, image_id
                        )
                    )
                    continue
                is_stuff = int(bool(region.get("isStuff", 0)))
                if is_stuff and not options.keep_stuff:
                    source.excluded[STUFF_EXCLUDED] += 1
                    continue
                metadata = {"isStuff": is_stuff}
                if "order" in region:
                    metadata["order"] = region["order"]
                if isinstance(region.get("name"), str):
                    metadata["name"] = region["name"].strip()
                source.instances.append(
                    SourceInstance(
                        id=region_id,
                        image_id=image_id,
                        category_id=OBJECT_CATEGORY["id"],
                        amodal=region["segmentation"],
                        visible=region.get("visible_mask"),
                        metadata=metadata,
                    )
                )
        return source


COCOA = CocoaLayout()
