"""Builders for tiny annotation files in the five real layouts, written by the tests themselves.

Rectangles keep expected values computable by hand: pycocotools rasterises the polygon of a
rectangle with integer corners ``(x0, y0)-(x1, y1)`` to exactly the pixels ``x0..x1-1`` by
``y0..y1-1``, the same pixels :func:`rect` sets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils


def rect(height: int, width: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """``(H, W)`` uint8 mask with ones on columns ``x0..x1-1`` and rows ``y0..y1-1``."""
    mask = np.zeros((height, width), np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def rect_polygon(x0: int, y0: int, x1: int, y1: int) -> list[float]:
    """The flat polygon of the rectangle whose pixels :func:`rect` sets."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def rle_string(mask: np.ndarray) -> dict[str, Any]:
    """Compressed RLE (string counts), as the released files store it."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_list(mask: np.ndarray) -> dict[str, Any]:
    """Uncompressed RLE: column-major run lengths, starting with a (possibly empty) run of zeros."""
    flat = mask.flatten(order="F").astype(np.int64)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0] == 1:
        runs = [0] + runs
    return {"size": list(mask.shape), "counts": runs}


def blank_image(path: Path, height: int, width: int) -> Path:
    """A black PNG of ``height x width`` (only its header is read by a3d)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (width, height)).save(path)
    return path


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


# --------------------------------------------------------------------------------- KINS (2019)
KINS_H, KINS_W = 375, 1242
KINS_CATEGORIES = [
    {"id": 1, "name": "cyclist"},
    {"id": 2, "name": "pedestrian"},
    {"id": 4, "name": "car"},
    {"id": 5, "name": "tram"},
    {"id": 6, "name": "truck"},
    {"id": 7, "name": "van"},
    {"id": 8, "name": "misc"},
]


def kins_annotation(ann_id, image_id, category_id, amodal_polygons, visible, bbox, **extra):
    annotation = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": amodal_polygons,
        "bbox": bbox,
        "inmodal_seg": visible,
        "inmodal_bbox": [0, 0, 1, 1],
        "area": 1.0,
        "iscrowd": 0,
    }
    annotation.update(extra)
    return annotation


def kins_files(root: Path) -> tuple[Path, Path]:
    """A KINS file over two blank 375x1242 KITTI-sized images; returns (json, image folder).

    Annotation 11 (car): amodal 200x100 box at (100, 150), visible its left half (RLE string).
    Annotation 12 (pedestrian): amodal 40x120 at (600, 100), unoccluded (visible = uncompressed RLE).
    Annotation 13 (cyclist, image 2): amodal two 20x20 squares, visible the left one.
    """
    images = root / "image_2"
    blank_image(images / "000001.png", KINS_H, KINS_W)
    blank_image(images / "000002.png", KINS_H, KINS_W)
    annotations = [
        kins_annotation(
            11,
            1,
            4,
            [rect_polygon(100, 150, 300, 250)],
            rle_string(rect(KINS_H, KINS_W, 100, 150, 200, 250)),
            [100, 150, 200, 100],
        ),
        kins_annotation(
            12,
            1,
            2,
            [rect_polygon(600, 100, 640, 220)],
            rle_list(rect(KINS_H, KINS_W, 600, 100, 640, 220)),
            [600, 100, 40, 120],
        ),
        kins_annotation(
            13,
            2,
            1,
            [rect_polygon(10, 10, 30, 30), rect_polygon(50, 10, 70, 30)],
            rle_string(rect(KINS_H, KINS_W, 10, 10, 30, 30)),
            [10, 10, 60, 20],
        ),
    ]
    data = {
        "images": [
            {"id": 1, "file_name": "000001.png", "width": KINS_W, "height": KINS_H, "amodal_full": [[1, 2]]},
            {"id": 2, "file_name": "000002.png", "width": KINS_W, "height": KINS_H},
        ],
        "annotations": annotations,
        "categories": KINS_CATEGORIES,
    }
    return write_json(root / "instances_train.json", data), images


# ---------------------------------------------------------------------------------- KINS 2020
def kins2020_files(root: Path) -> tuple[Path, Path]:
    """A KINS 2020 file: polygons for both masks, occlusion cluster/order ids.

    Annotation 5 (van): amodal 100x50 at (200, 200), visible its top 100x20 strip.
    Annotation 6 (tram): amodal 30x30 at (0, 0), visible = amodal.
    """
    images = root / "image_2"
    blank_image(images / "000007.png", KINS_H, KINS_W)
    annotations = [
        {
            "id": 5,
            "image_id": 7,
            "category_id": 7,
            "a_segm": [rect_polygon(200, 200, 300, 250)],
            "i_segm": [rect_polygon(200, 200, 300, 220)],
            "a_bbox": [200, 200, 100, 50],
            "i_bbox": [200, 200, 100, 20],
            "a_area": 5000,
            "i_area": 2000,
            "oco_id": 3,
            "ico_id": 2,
        },
        {
            "id": 6,
            "image_id": 7,
            "category_id": 5,
            "a_segm": [rect_polygon(0, 0, 30, 30)],
            "i_segm": [rect_polygon(0, 0, 30, 30)],
            "a_bbox": [0, 0, 30, 30],
            "i_bbox": [0, 0, 30, 30],
            "oco_id": 4,
            "ico_id": 0,
        },
    ]
    data = {
        "images": [{"id": 7, "file_name": "000007.png", "width": KINS_W, "height": KINS_H}],
        "annotations": annotations,
        "categories": KINS_CATEGORIES,
    }
    return write_json(root / "update_train_2020.json", data), images


# ------------------------------------------------------------------------------ D2SA, COCOA-cls
D2SA_H, D2SA_W = 1440, 1920
D2SA_CATEGORIES = [{"id": 1, "name": "adelholzener_alpenquelle_classic_075"}, {"id": 9, "name": "apple_red"}]


def d2sa_files(root: Path) -> tuple[Path, Path, Path]:
    """D2SA rot0 and augmented files whose image and annotation ids collide (both start at 1).

    rot0, image 1: annotation 1 (cat 1) amodal 400x300 at (100, 200) as RLE string, visible its
    left 100 columns as polygons; annotation 2 (cat 9) amodal 50x50 at (1000, 1000), no
    visible_mask (unoccluded).
    augmented, image 1 (file aug_1.png): annotation 1 (cat 9) amodal 200x200 at (0, 0) as
    uncompressed RLE, visible the 200x50 top strip as RLE string.
    """
    images = root / "images"
    blank_image(images / "D2S_000001.png", D2SA_H, D2SA_W)
    blank_image(images / "aug_1.png", D2SA_H, D2SA_W)
    rot0 = {
        "images": [{"id": 1, "file_name": "D2S_000001.png", "width": D2SA_W, "height": D2SA_H}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "segmentation": rle_string(rect(D2SA_H, D2SA_W, 100, 200, 500, 500)),
                "bbox": [100, 200, 400, 300],
                "visible_mask": [rect_polygon(100, 200, 200, 500)],
                "invisible_mask": {},
                "occlude_rate": 0.75,
                "occl_depth": [1],
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 9,
                "segmentation": rle_string(rect(D2SA_H, D2SA_W, 1000, 1000, 1050, 1050)),
                "bbox": [1000, 1000, 50, 50],
                "amodal_region": 1,
            },
        ],
        "categories": D2SA_CATEGORIES,
    }
    augmented = {
        "images": [{"id": 1, "file_name": "aug_1.png", "width": D2SA_W, "height": D2SA_H}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 9,
                "segmentation": rle_list(rect(D2SA_H, D2SA_W, 0, 0, 200, 200)),
                "bbox": [0, 0, 200, 200],
                "visible_mask": rle_string(rect(D2SA_H, D2SA_W, 0, 0, 200, 50)),
                "occlude_rate": 0.75,
            },
        ],
        "categories": D2SA_CATEGORIES,
    }
    return (
        write_json(root / "D2S_amodal_training_rot0.json", rot0),
        write_json(root / "D2S_amodal_augmented.json", augmented),
        images,
    )


COCO_H, COCO_W = 480, 640


def cocoa_cls_files(root: Path) -> tuple[Path, Path]:
    """A COCOA-cls file: annotation 40 (person) amodal 100x200 at (50, 60) as uncompressed RLE,
    visible its 100x150 top as RLE string; annotation 41 (car) amodal polygon 60x40 at (300, 300),
    visible the same polygon."""
    images = root / "train2014"
    name = "COCO_train2014_000000000009.jpg"
    blank_image(images / name, COCO_H, COCO_W)
    data = {
        "images": [{"id": 9, "file_name": name, "width": COCO_W, "height": COCO_H}],
        "annotations": [
            {
                "id": 40,
                "image_id": 9,
                "category_id": 1,
                "segmentation": rle_list(rect(COCO_H, COCO_W, 50, 60, 150, 260)),
                "bbox": [50, 60, 100, 200],
                "visible_mask": rle_string(rect(COCO_H, COCO_W, 50, 60, 150, 210)),
                "iscrowd": 0,
            },
            {
                "id": 41,
                "image_id": 9,
                "category_id": 3,
                "segmentation": [rect_polygon(300, 300, 360, 340)],
                "bbox": [300, 300, 60, 40],
                "visible_mask": [rect_polygon(300, 300, 360, 340)],
                "iscrowd": 0,
            },
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
    }
    return write_json(root / "COCO_amodal_train2014_with_classes.json", data), images


# -------------------------------------------------------------------------------------- COCOA
def cocoa_files(root: Path) -> tuple[Path, Path]:
    """A COCOA file with one image and three regions (ids 1, 2, 3 in file order).

    Region 1 ("dog "): amodal 100x100 at (100, 100), order 2, occluded: visible its left 40
    columns (RLE string). Region 2 ("sofa"): amodal 200x50 at (0, 400), order 1, unoccluded (no
    visible_mask). Region 3 ("sky"): stuff, amodal 640x50 at the top.
    """
    images = root / "val2014"
    name = "COCO_val2014_000000000042.jpg"
    blank_image(images / name, COCO_H, COCO_W)
    regions = [
        {
            "segmentation": rect_polygon(100, 100, 200, 200),
            "name": "dog ",
            "area": 10000.0,
            "isStuff": 0,
            "order": 2,
            "occlude_rate": 0.6,
            "visible_mask": rle_string(rect(COCO_H, COCO_W, 100, 100, 140, 200)),
            "invisible_mask": rle_string(rect(COCO_H, COCO_W, 140, 100, 200, 200)),
        },
        {
            "segmentation": rect_polygon(0, 400, 200, 450),
            "name": "sofa",
            "area": 10000.0,
            "isStuff": 0,
            "order": 1,
            "occlude_rate": 0.0,
        },
        {
            "segmentation": rect_polygon(0, 0, 640, 50),
            "name": "sky",
            "area": 32000.0,
            "isStuff": 1,
            "order": 3,
            "occlude_rate": 0.0,
        },
    ]
    data = {
        "images": [{"id": 42, "file_name": name, "width": COCO_W, "height": COCO_H}],
        "annotations": [{"image_id": 42, "size": 3, "regions": regions, "depth_constraint": "1-2"}],
    }
    return write_json(root / "COCO_amodal_val2014.json", data), images


# ------------------------------------------------------------------------------- shared checks
CANONICAL_KEYS = {
    "id",
    "image_id",
    "category_id",
    "segmentation",
    "bbox",
    "area",
    "visible_mask",
    "visible_bbox",
    "visible_area",
    "occlusion_rate",
    "iscrowd",
}


def decoded(rle: dict[str, Any]) -> np.ndarray:
    """A canonical RLE (string counts) decoded with stock pycocotools."""
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})


def stock_cocoeval_ap(split_json: Path) -> float:
    """Segm AP of the split's own amodal masks as predictions, with stock pycocotools."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ground_truth = COCO(str(split_json))
    predictions = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": a["segmentation"], "score": 1.0}
        for a in ground_truth.dataset["annotations"]
    ]
    evaluator = COCOeval(ground_truth, ground_truth.loadRes(predictions), "segm")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return float(evaluator.stats[0])
