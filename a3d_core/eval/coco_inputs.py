"""COCO JSON (ground truth and results lists) -> the tables and IoUs of :mod:`a3d_core.eval.coco`.

Reading follows pycocotools exactly where it decides numbers:

- the evaluated images and categories are all of the ground truth's, in ascending id order;
- a ground truth's area range is decided by its ``area`` field; only ``iscrowd`` makes it ignored
  (``COCOeval._prepare`` overwrites any ``ignore`` field);
- detections get ids ``1..N`` in results order; as in ``COCO.loadRes``, when the FIRST result
  has a non-empty ``bbox`` every detection's area is ``w * h`` of its box (and a missing
  segmentation becomes the box polygon), otherwise its area is its mask's pixel count and its box
  the mask's tight box.

Bad input raises :class:`InputError` naming the entry: unknown image or category ids, NaN or
infinite scores, malformed or wrongly sized masks and boxes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils

from a3d_core.errors import InputError
from a3d_core.eval.coco import CocoEvaluation, CocoParams, DetectionTable, GroundTruthTable, Grouping, evaluate_tables
from a3d_core.eval.iou import box_iou, iou_from_counts
from a3d_core.eval.masks import compressed_counts_problem, rle_areas, rle_boxes, to_rle
from a3d_core.eval.rle_runs import CountsError, RunTable, parse_runs, run_intersections

IOU_TYPES = ("segm", "bbox")


@dataclass
class CocoGroundTruth:
    """A COCO ground-truth file, indexed for evaluation.

    Attributes:
        image_ids, category_ids: ascending ids; table indices refer to these positions.
        heights, widths: per image index.
        category_names: per category index.
        table: the :class:`GroundTruthTable` (CPU).
        boxes: ``(G, 4)`` float64 ``bbox`` fields. rles: compressed RLE per annotation, or
            ``None`` when built for boxes only.
        source, mask_key: name the file and the mask field in messages.
    """

    image_ids: list[int]
    category_ids: list[int]
    heights: list[int]
    widths: list[int]
    category_names: list[str]
    table: GroundTruthTable
    boxes: torch.Tensor
    rles: list[dict[str, Any]] | None
    source: str = "ground truth"
    mask_key: str = "segmentation"

    def describe(self, row: int) -> str:
        """``"<source> annotation <id>: bad '<mask_key>'"`` for table row ``row``, in messages."""
        return f"{self.source} annotation {int(self.table.ids[row])}: bad {self.mask_key!r}"


@dataclass
class CocoDetections:
    """A COCO results list, indexed against a :class:`CocoGroundTruth`.

    Attributes:
        table: the :class:`DetectionTable` (CPU). boxes: ``(D, 4)`` float64.
        rles: compressed RLE per detection, or ``None`` for box evaluation.
        source, mask_key: name the list and the mask field in messages.
    """

    table: DetectionTable
    boxes: torch.Tensor
    rles: list[dict[str, Any]] | None
    source: str = "predictions"
    mask_key: str = "segmentation"

    def describe(self, row: int) -> str:
        """``"<source> entry <row>: bad '<mask_key>'"`` (rows are results positions), in messages."""
        return f"{self.source} entry {row}: bad {self.mask_key!r}"


def parse_named_runs(
    rles: Sequence[Mapping[str, Any]], rows: Sequence[int], describe: Callable[[int], str]
) -> RunTable:
    """:func:`~a3d_core.eval.rle_runs.parse_runs` of ``rles[r]`` for ``r`` in ``rows``.

    Raises:
        InputError: ``describe(row)`` and the problem, for a malformed counts string.
    """
    try:
        return parse_runs([rles[r] for r in rows])
    except CountsError as error:
        raise InputError(f"{describe(rows[error.index])} ({error})") from None


def _number(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise InputError(f"{what}: {value!r} is not finite")
    return number


def _box(value: Any, what: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise InputError(f"{what}: bbox must be [x, y, w, h], got {value!r}")
    return [_number(v, what) for v in value]


def load_ground_truth(
    dataset: Mapping[str, Any],
    with_masks: bool = True,
    mask_key: str = "segmentation",
    area_key: str = "area",
    extra_ignore: Sequence[bool] | None = None,
    source: str = "ground truth",
) -> CocoGroundTruth:
    """Index a COCO ground-truth dict (``images``, ``annotations``, ``categories``).

    ``mask_key``/``area_key`` pick which mask and area are evaluated (the canonical format's
    ``visible_mask``/``visible_area`` for visible AP); ``extra_ignore`` marks annotations ignored in
    every area range on top of crowds (occluded AP).
    """
    images = sorted(dataset["images"], key=lambda image: int(image["id"]))
    image_ids = [int(image["id"]) for image in images]
    image_index = {image_id: i for i, image_id in enumerate(image_ids)}
    categories = sorted(dataset["categories"], key=lambda c: int(c["id"]))
    category_ids = [int(c["id"]) for c in categories]
    category_index = {category_id: k for k, category_id in enumerate(category_ids)}
    heights = [int(image["height"]) for image in images]
    widths = [int(image["width"]) for image in images]

    if extra_ignore is not None and len(extra_ignore) != len(dataset["annotations"]):
        raise ValueError("extra_ignore needs one flag per annotation")
    flags = [False] * len(dataset["annotations"]) if extra_ignore is None else [bool(f) for f in extra_ignore]
    evaluated = [i for i, a in enumerate(dataset["annotations"]) if int(a["category_id"]) in category_index]
    annotations = [dataset["annotations"][i] for i in evaluated]
    ignore_flags = [flags[i] for i in evaluated]

    rows_image, rows_category, areas, crowds, ids, boxes, rles = [], [], [], [], [], [], []
    for position, annotation in enumerate(annotations):
        what = f"{source} annotation {annotation.get('id', position)}"
        image = image_index.get(int(annotation["image_id"]))
        if image is None:
            raise InputError(f"{what}: image_id {annotation['image_id']} is not among the images")
        rows_image.append(image)
        rows_category.append(category_index[int(annotation["category_id"])])
        crowds.append(bool(annotation.get("iscrowd", 0)))
        ids.append(int(annotation["id"]))
        boxes.append(_box(annotation.get("bbox", [0, 0, 0, 0]), what))
        rle = None
        if with_masks:
            try:
                rle = to_rle(annotation[mask_key], heights[image], widths[image])
            except (KeyError, ValueError) as error:
                raise InputError(f"{what}: bad {mask_key!r} ({error})") from None
            rles.append(rle)
        if area_key in annotation:
            areas.append(_number(annotation[area_key], what))
        elif rle is not None:
            areas.append(float(rle_areas([rle])[0]))
        else:
            raise InputError(f"{what}: no {area_key!r}")

    crowd = torch.tensor(crowds, dtype=torch.bool)
    table = GroundTruthTable(
        image=torch.tensor(rows_image, dtype=torch.int64),
        category=torch.tensor(rows_category, dtype=torch.int64),
        area=torch.tensor(areas, dtype=torch.float64),
        crowd=crowd,
        ignore=crowd | torch.tensor(ignore_flags, dtype=torch.bool),
        ids=torch.tensor(ids, dtype=torch.int64),
    )
    return CocoGroundTruth(
        image_ids=image_ids,
        category_ids=category_ids,
        heights=heights,
        widths=widths,
        category_names=[str(c.get("name", c["id"])) for c in categories],
        table=table,
        boxes=torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
        rles=rles if with_masks else None,
        source=source,
        mask_key=mask_key,
    )


def load_detections(
    results: Sequence[Mapping[str, Any]],
    ground_truth: CocoGroundTruth,
    with_masks: bool = True,
    mask_key: str = "segmentation",
    source: str = "predictions",
) -> CocoDetections:
    """Index a COCO results list against ``ground_truth`` (see the module notes on areas).

    ``with_masks`` keeps the detections' RLEs (needed for mask IoU); ``mask_key`` names the mask
    field; ``source`` names the list in error messages.
    """
    if not isinstance(results, (list, tuple)):
        raise InputError(f"{source}: expected a list of results, got {type(results).__name__}")
    box_areas = bool(results) and isinstance(results[0], Mapping) and bool(results[0].get("bbox"))

    need_masks = with_masks or not box_areas
    columns = _plain_columns(results, ground_truth, box_areas, need_masks, mask_key)
    if columns is None:
        columns = _checked_columns(results, ground_truth, box_areas, with_masks, mask_key, source)
    images, categories, scores, boxes, rles = columns

    if box_areas:
        box_tensor = torch.as_tensor(np.asarray(boxes, dtype=np.float64)).reshape(-1, 4)
        area = box_tensor[:, 2] * box_tensor[:, 3]
    else:
        box_tensor = torch.from_numpy(rle_boxes(rles))
        given = [i for i, b in enumerate(boxes) if b is not None]
        if given:
            box_tensor[given] = torch.tensor([boxes[i] for i in given], dtype=torch.float64)
        area = torch.from_numpy(rle_areas(rles))
    table = DetectionTable(
        image=torch.as_tensor(np.asarray(images, dtype=np.int64)),
        category=torch.as_tensor(np.asarray(categories, dtype=np.int64)),
        score=torch.as_tensor(np.asarray(scores, dtype=np.float64)),
        area=area,
        ids=torch.arange(1, len(results) + 1, dtype=torch.int64),
    )
    return CocoDetections(
        table=table, boxes=box_tensor, rles=rles if with_masks else None, source=source, mask_key=mask_key
    )


def _checked_columns(
    results: Sequence[Any], ground_truth: CocoGroundTruth, box_areas: bool, with_masks: bool, mask_key: str, source: str
) -> tuple[list, list, list, list, list]:
    """Image and category indices, scores, boxes (``None`` where absent) and RLEs of a results
    list, entry by entry; the first bad entry raises :class:`InputError` naming it."""
    image_index = {image_id: i for i, image_id in enumerate(ground_truth.image_ids)}
    category_index = {category_id: k for k, category_id in enumerate(ground_truth.category_ids)}
    images, categories, scores, boxes, rles = [], [], [], [], []
    for position, result in enumerate(results):
        what = f"{source} entry {position}"
        if not isinstance(result, dict) and not isinstance(result, Mapping):  # dict first: fast path
            raise InputError(f"{what}: expected an object, got {type(result).__name__}")
        try:
            image = image_index.get(int(result["image_id"]))
            category = category_index.get(int(result["category_id"]))
            score = result["score"]
        except KeyError as error:
            raise InputError(f"{what}: missing {error.args[0]!r}") from None
        except (TypeError, ValueError):
            raise InputError(f"{what}: image_id and category_id must be integers") from None
        if image is None:
            raise InputError(f"{what}: image_id {result['image_id']} is not in the dataset")
        if category is None:
            raise InputError(f"{what}: category_id {result['category_id']} is not in the dataset")
        scores.append(_number(score, f"{what} score"))
        images.append(image)
        categories.append(category)
        box = _box(result["bbox"], what) if "bbox" in result else None
        if box_areas and box is None:
            raise InputError(f"{what}: no 'bbox' (the first entry has one, so all must)")
        if with_masks or not box_areas:
            segmentation = result.get(mask_key)
            if segmentation is None and box_areas:
                x, y, w, h = box
                segmentation = [[x, y, x, y + h, x + w, y + h, x + w, y]]
            if segmentation is None:
                raise InputError(f"{what}: no {mask_key!r}" + ("" if with_masks else " and no 'bbox'"))
            try:
                rles.append(to_rle(segmentation, ground_truth.heights[image], ground_truth.widths[image]))
            except ValueError as error:
                raise InputError(f"{what}: bad {mask_key!r} ({error})") from None
        boxes.append(box)
    return images, categories, scores, boxes, rles


def _plain_columns(
    results: Sequence[Any], ground_truth: CocoGroundTruth, box_areas: bool, need_masks: bool, mask_key: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any, list] | None:
    """What :func:`_checked_columns` returns, read column by column when every entry is plain:
    a dict with int ids of the dataset, int or float finite scores, ``[x, y, w, h]`` lists of
    finite numbers (when boxes decide areas, else no entry has a box) and compressed RLE dicts
    of their image's size. ``None`` when any entry is not (the checked reading then names it)."""
    count = len(results)
    try:
        if not set(map(type, results)) <= {dict}:
            return None
        image_ids = [r["image_id"] for r in results]
        category_ids = [r["category_id"] for r in results]
        scores = [r["score"] for r in results]
        boxes = [r["bbox"] for r in results] if box_areas else None
        segmentations = [r[mask_key] for r in results] if need_masks else []
        if not set(map(type, image_ids + category_ids)) <= {int} or not set(map(type, scores)) <= {int, float}:
            return None
        if not set(map(type, segmentations)) <= {dict}:
            return None
        sizes, counts = [m["size"] for m in segmentations], [m["counts"] for m in segmentations]
    except KeyError:
        return None
    images = _indices(image_ids, ground_truth.image_ids)
    categories = _indices(category_ids, ground_truth.category_ids)
    score = np.asarray(scores, dtype=np.float64)
    if images is None or categories is None or not np.isfinite(score).all():
        return None
    if box_areas:
        if not set(map(type, boxes)) <= {list}:
            return None
        try:
            boxes = np.asarray(boxes, dtype=np.float64)
        except (TypeError, ValueError):
            return None
        if boxes.shape != (count, 4) or not np.isfinite(boxes).all():
            return None
    elif any("bbox" in r for r in results):
        return None
    else:
        boxes = [None] * count
    rles = []
    if need_masks:
        image_sizes = [[h, w] for h, w in zip(ground_truth.heights, ground_truth.widths)]
        own_sizes = [image_sizes[i] for i in images.tolist()]
        if sizes != own_sizes:
            return None
        kinds = set(map(type, counts))
        if kinds == {str}:
            try:
                counts = [c.encode("ascii") for c in counts]
            except UnicodeEncodeError:
                return None
        elif kinds - {bytes}:
            return None
        if any(map(compressed_counts_problem, counts)):
            return None  # a malformed string: the checked reading names its entry
        rles = [{"size": size, "counts": c} for size, c in zip(own_sizes, counts)]
    return images, categories, score, boxes, rles


def _indices(ids: list[int], known: list[int]) -> np.ndarray | None:
    """Positions of ``ids`` in the ascending ``known`` ids, ``None`` when one is unknown."""
    try:
        ids_array, known_array = np.asarray(ids, dtype=np.int64), np.asarray(known, dtype=np.int64)
    except OverflowError:
        return None
    if not len(known_array):
        return None if len(ids_array) else np.zeros(0, np.int64)
    position = np.searchsorted(known_array, ids_array).clip(max=len(known_array) - 1)
    return position if (known_array[position] == ids_array).all() else None


class BoxPairIoU:
    """Box IoU of every (detection, ground truth) pair of a grouping (pycocotools ``bbIou``)."""

    def __init__(self, detection_boxes: torch.Tensor, gt_boxes: torch.Tensor, gt_crowd: torch.Tensor) -> None:
        self.detection_boxes, self.gt_boxes, self.gt_crowd = detection_boxes, gt_boxes, gt_crowd

    def __call__(self, grouping: Grouping) -> torch.Tensor:
        det, gt = grouping.pairs()
        iou = box_iou(
            self.detection_boxes[det].unsqueeze(1), self.gt_boxes[gt].unsqueeze(1), self.gt_crowd[gt].unsqueeze(1)
        )
        return iou.reshape(-1)


class MaskPairIoU:
    """Mask IoU of every pair of a grouping, equal to ``pycocotools.mask.iou`` on the RLEs.

    On the CPU each (image, category) block is ``pycocotools.mask.iou`` itself (C, ``rleIou``,
    one call per block). Elsewhere (``runs=True`` forces it on the CPU too), only pairs whose
    boxes overlap are computed (the others have IoU 0): their masks are parsed into foreground
    runs (:mod:`a3d_core.eval.rle_runs`) and intersected on ``device``, in batches of consecutive
    images holding at most ``pairs_per_batch`` overlapping pairs, so memory stays bounded whatever
    the number of images: a batch's run tables are freed before the next. Both give the same
    floats. A malformed counts string raises :class:`InputError` worded by ``describe_detection(row)``
    or ``describe_gt(row)`` (the loaders check counts already; this guards other callers' RLEs).
    """

    def __init__(
        self,
        detection_rles: Sequence[Mapping[str, Any]],
        gt_rles: Sequence[Mapping[str, Any]],
        gt_crowd: torch.Tensor,
        device: torch.device | str = "cpu",
        pairs_per_batch: int = 4_000,
        runs: bool | None = None,
        describe_detection: Callable[[int], str] = lambda row: f"detection {row}",
        describe_gt: Callable[[int], str] = lambda row: f"ground truth {row}",
    ) -> None:
        if pairs_per_batch < 1:
            raise ValueError(f"pairs_per_batch must be positive, got {pairs_per_batch}")
        self.detection_rles, self.gt_rles = list(detection_rles), list(gt_rles)
        self.device = torch.device(device)
        self.gt_crowd = gt_crowd.to(self.device)
        self.pairs_per_batch = pairs_per_batch
        self.runs = self.device.type != "cpu" if runs is None else runs
        self.describe_detection, self.describe_gt = describe_detection, describe_gt

    def _batches(self, pair_image: torch.Tensor) -> list[tuple[int, int]]:
        """Contiguous pair ranges (pairs are image-major) of about ``pairs_per_batch`` pairs."""
        total = len(pair_image)
        if total == 0:
            return []
        cuts = torch.arange(
            self.pairs_per_batch, max(total, self.pairs_per_batch), self.pairs_per_batch, device=pair_image.device
        )
        # move each cut to the start of its image so that no image is split
        cut_images = pair_image[cuts]
        starts = torch.searchsorted(pair_image, cut_images).tolist()
        edges = sorted({0, total, *starts})
        return list(zip(edges[:-1], edges[1:]))

    def __call__(self, grouping: Grouping) -> torch.Tensor:
        return self._by_runs(grouping) if self.runs else self._by_block(grouping)

    def _by_block(self, grouping: Grouping) -> torch.Tensor:
        """``pycocotools.mask.iou`` per (image, category) block, in the pair layout (row-major)."""
        det_rows, gt_rows, crowd = grouping.det_rows.tolist(), grouping.gt_rows.tolist(), self.gt_crowd.tolist()
        blocks = []
        for det_start, det_count, gt_start, gt_count in zip(
            grouping.det_start.tolist(),
            grouping.det_count.tolist(),
            grouping.gt_start.tolist(),
            grouping.gt_count.tolist(),
        ):
            if det_count and gt_count:
                gts = gt_rows[gt_start : gt_start + gt_count]
                detections = [self.detection_rles[r] for r in det_rows[det_start : det_start + det_count]]
                blocks.append(
                    np.asarray(
                        mask_utils.iou(detections, [self.gt_rles[r] for r in gts], [crowd[r] for r in gts])
                    ).reshape(-1)
                )
        return torch.from_numpy(np.concatenate(blocks) if blocks else np.zeros(0, np.float64)).to(self.device)

    def _by_runs(self, grouping: Grouping) -> torch.Tensor:
        """Run intersections of the box-overlapping pairs, in batches of whole images."""
        det_box = torch.from_numpy(rle_boxes(self.detection_rles)).to(self.device)
        gt_box = torch.from_numpy(rle_boxes(self.gt_rles)).to(self.device)
        det, gt = grouping.pairs()
        no_crowd = torch.zeros((len(gt), 1), dtype=torch.bool, device=self.device)
        overlap = torch.nonzero(
            box_iou(det_box[det].unsqueeze(1), gt_box[gt].unsqueeze(1), no_crowd).reshape(-1) > 0
        ).flatten()
        pair_group = torch.repeat_interleave(
            torch.arange(len(grouping.image), device=self.device), grouping.det_count * grouping.gt_count
        )
        pair_image = grouping.image[pair_group][overlap]
        out = torch.zeros(grouping.num_pairs, dtype=torch.float64, device=self.device)
        pixels = max((int(r["size"][0]) * int(r["size"][1]) for r in self.gt_rles), default=0)
        for first, last in self._batches(pair_image):
            chosen = overlap[first:last]
            det_rows, det_local = torch.unique(det[chosen], return_inverse=True)
            gt_rows, gt_local = torch.unique(gt[chosen], return_inverse=True)
            det_runs = parse_named_runs(self.detection_rles, det_rows.tolist(), self.describe_detection).to(self.device)
            gt_runs = parse_named_runs(self.gt_rles, gt_rows.tolist(), self.describe_gt).to(self.device)
            intersection = run_intersections(det_runs, gt_runs, det_local, gt_local, pixels)
            out[chosen] = iou_from_counts(
                intersection, det_runs.area[det_local], gt_runs.area[gt_local], self.gt_crowd[gt[chosen]]
            )
        return out


def evaluate_coco(
    ground_truth: CocoGroundTruth,
    detections: CocoDetections,
    iou_type: str = "segm",
    params: CocoParams | None = None,
    device: torch.device | str = "cpu",
) -> CocoEvaluation:
    """``COCOeval(gt, dt, iou_type)``'s evaluate + accumulate + summarize, in torch on ``device``."""
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    device = torch.device(device)
    gt = GroundTruthTable(**{k: v.to(device) for k, v in vars(ground_truth.table).items()})
    dt = DetectionTable(**{k: v.to(device) for k, v in vars(detections.table).items()})
    if iou_type == "bbox":
        pair_iou = BoxPairIoU(detections.boxes.to(device), ground_truth.boxes.to(device), gt.crowd)
    else:
        if ground_truth.rles is None or detections.rles is None:
            raise ValueError("segm evaluation needs masks: load with with_masks=True")
        pair_iou = MaskPairIoU(
            detections.rles,
            ground_truth.rles,
            ground_truth.table.crowd,
            device,
            describe_detection=detections.describe,
            describe_gt=ground_truth.describe,
        )
    return evaluate_tables(gt, dt, len(ground_truth.category_ids), pair_iou, params)
