"""COCO segmentations as pycocotools RLEs, their areas and boxes.

pycocotools' ``COCO.annToRLE`` turns every annotation into a compressed RLE before ``COCOeval``
compares masks: polygons are rasterised with ``frPyObjects`` and their parts merged, RLE with
integer counts is compressed. :func:`to_rle` does the same, so areas and IoUs computed from its
output are those COCOeval computes.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from a3d_core.data.polygons import guard_polygons


def to_rle(segmentation: Any, height: int, width: int) -> dict[str, Any]:
    """A COCO segmentation (polygons, integer-count RLE or compressed RLE) -> compressed RLE.

    Polygons pass :func:`a3d_core.data.polygons.guard_polygons` first (one far outside the image
    is clipped). Raises ``ValueError`` with the problem when the segmentation is malformed (a bad
    polygon raises its ``PolygonError``), its RLE size is not ``[height, width]``, or its
    compressed counts hold characters pycocotools never writes or end inside a number (checked
    here, one C-speed pass per string, so that the run parser of :mod:`a3d_core.eval.rle_runs`
    never meets them and the caller can name the entry).
    """
    if isinstance(segmentation, list):
        polygons = segmentation if segmentation and isinstance(segmentation[0], list) else [segmentation]
        polygons = guard_polygons([p for p in polygons if p], height, width)
        if not polygons:
            return mask_utils.encode(np.zeros((height, width, 1), np.uint8, order="F"))[0]
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    if not isinstance(segmentation, dict) and not isinstance(segmentation, Mapping):
        raise ValueError(f"segmentation of type {type(segmentation).__name__} (expected RLE dict or polygons)")
    size, counts = segmentation.get("size"), segmentation.get("counts")
    if size is None or counts is None:
        raise ValueError("RLE lacks 'size' or 'counts'")
    if len(size) != 2 or [int(s) for s in size] != [height, width]:
        raise ValueError(f"mask size {list(size)} differs from the image size [{height}, {width}]")
    if isinstance(counts, list):
        return mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    if isinstance(counts, str):
        if not counts.isascii():
            raise ValueError(_OUTSIDE_ALPHABET)
        counts = counts.encode("ascii")
    if not isinstance(counts, bytes):
        raise ValueError(f"RLE counts of type {type(counts).__name__}")
    problem = compressed_counts_problem(counts)
    if problem:
        raise ValueError(problem)
    return {"size": [height, width], "counts": counts}


def compressed_counts_problem(counts: bytes) -> str | None:
    """What is wrong with a compressed counts string, or ``None``: characters outside the
    alphabet, or an end inside a number (pycocotools would decode either into garbage)."""
    if counts.translate(None, _COMPRESSED_ALPHABET):
        return _OUTSIDE_ALPHABET
    if counts and (counts[-1] - 48) & 0x20:
        return "RLE counts string ends inside a number (truncated?)"
    return None


_COMPRESSED_ALPHABET = bytes(range(48, 48 + 64))
"""pycocotools' compressed counts write each 5-bit group (plus a continuation bit) as ``48 + value``."""
_OUTSIDE_ALPHABET = "RLE counts hold characters outside the compressed alphabet ('0' to 'o')"


# pycocotools 2.0.x ``mask.area`` sizes an internal array with a uint8 under NumPy 2: more than
# 255 RLEs per call overflow, so areas are asked for in batches of this size.
_AREA_BATCH = 255


def rle_areas(rles: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Pixel counts ``(N,)`` float64 of compressed RLEs (pycocotools ``mask.area``)."""
    rles = list(rles)
    areas = [
        np.asarray(mask_utils.area(rles[i : i + _AREA_BATCH]), np.float64) for i in range(0, len(rles), _AREA_BATCH)
    ]
    return np.concatenate(areas) if areas else np.zeros(0, np.float64)


def rle_boxes(rles: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Tight boxes ``(N, 4)`` float64 ``[x, y, w, h]`` of compressed RLEs (``mask.toBbox``)."""
    if not rles:
        return np.zeros((0, 4), np.float64)
    return np.asarray(mask_utils.toBbox(list(rles)), np.float64).reshape(-1, 4)
