"""COCO AP and AR in torch, with pycocotools ``COCOeval``'s exact semantics (paper 4.2).

The protocol, step by step as ``COCOeval`` runs it (``evaluate``, ``evaluateImg``,
``accumulate``, ``summarize``), vectorised:

1. Group ground truth and detections by (image, category). Within a group, ground truth keeps
   its annotation order and detections are sorted by score, descending, with a stable sort (ties
   keep their order in the results list), and cut to the largest ``max_detections``.
2. A ground truth is ignored in area range ``a`` when it is a crowd (or ignored by the caller's
   own rule) or its ``area`` field lies outside ``a`` (bounds inclusive).
3. Greedy matching, detections in score order, for every IoU threshold ``t`` (capped at
   ``1 - 1e-10``): a detection takes the ground truth with the highest IoU ``>= t`` among the
   not-ignored ones still free; only when there is none, among the ignored ones (crowds stay free
   after a match). Equal IoUs go to the later ground truth, as in ``evaluateImg``'s loop. A
   detection matched to an ignored ground truth is ignored; an unmatched one whose area is outside
   the range is ignored too.
4. Per category, area range and detection cap ``m``: the first ``m`` detections of every image,
   concatenated in image-id order and stably sorted by score; cumulative true and false positives
   give recall ``tp / npig`` and precision ``tp / (tp + fp + eps)``; precision is made monotone
   from the right and read at the 101 recall thresholds (``searchsorted``, left); recall
   thresholds beyond the last recall read 0. Categories without not-ignored ground truth are -1.
5. The 12 stats average the valid (``> -1``) entries.

All IoUs and ratios are float64 computed with the same operations as pycocotools, so the stats
agree with ``COCOeval.stats`` to rounding of the final means. Step 3 is solved for all problems at
once in rounds (:mod:`a3d_core.eval.greedy`, :func:`match_all`), step 4 only at the true
positives (:func:`accumulate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from a3d_core.eval.greedy import Candidates, preference_keys, solve

STAT_NAMES = (
    "AP", "AP50", "AP75", "APs", "APm", "APl",
    "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
)  # fmt: skip

_FLOAT_EPS = float(np.spacing(1))


def _linspace(start: float, stop: float, count: int) -> tuple[float, ...]:
    """``np.linspace`` values, so thresholds are the very floats pycocotools compares with."""
    return tuple(float(v) for v in np.linspace(start, stop, count, endpoint=True))


@dataclass(frozen=True)
class CocoParams:
    """The COCO detection protocol's settings (pycocotools ``Params.setDetParams``)."""

    iou_thresholds: tuple[float, ...] = field(default_factory=lambda: _linspace(0.5, 0.95, 10))
    recall_thresholds: tuple[float, ...] = field(default_factory=lambda: _linspace(0.0, 1.0, 101))
    max_detections: tuple[int, ...] = (1, 10, 100)
    area_ranges: tuple[tuple[float, float], ...] = ((0.0, 1e10), (0.0, 1024.0), (1024.0, 9216.0), (9216.0, 1e10))
    area_labels: tuple[str, ...] = ("all", "small", "medium", "large")

    def __post_init__(self) -> None:
        if not self.iou_thresholds or any(not 0.0 <= t <= 1.0 for t in self.iou_thresholds):
            raise ValueError(f"iou_thresholds must be non-empty and within [0, 1], got {self.iou_thresholds}")
        if not self.recall_thresholds or list(self.recall_thresholds) != sorted(self.recall_thresholds):
            raise ValueError("recall_thresholds must be non-empty and ascending")
        if (
            not self.max_detections
            or list(self.max_detections) != sorted(self.max_detections)
            or self.max_detections[0] < 1
        ):
            raise ValueError(f"max_detections must be ascending positive integers, got {self.max_detections}")
        if len(self.area_ranges) != len(self.area_labels):
            raise ValueError("area_ranges and area_labels must have the same length")
        if any(low > high for low, high in self.area_ranges):
            raise ValueError(f"area ranges must have low <= high, got {self.area_ranges}")

    @property
    def summary_ready(self) -> bool:
        """Whether the 12 standard stats are defined for these settings."""
        return (
            len(self.max_detections) >= 3
            and {"all", "small", "medium", "large"} <= set(self.area_labels)
            and 0.5 in self.iou_thresholds
            and 0.75 in self.iou_thresholds
        )


@dataclass
class GroundTruthTable:
    """Every ground-truth instance of an evaluation, one row each (``G`` rows).

    Attributes:
        image: ``(G,)`` int64 index of the image, in ascending image-id order.
        category: ``(G,)`` int64 index of the category, in ascending category-id order.
        area: ``(G,)`` float64, the annotation's ``area`` field (decides the area range).
        crowd: ``(G,)`` bool ``iscrowd``.
        ignore: ``(G,)`` bool, ignored in every area range (crowds, or a caller's rule such as
            occluded AP's "not occluded enough").
        ids: ``(G,)`` int64 annotation ids.
    """

    image: torch.Tensor
    category: torch.Tensor
    area: torch.Tensor
    crowd: torch.Tensor
    ignore: torch.Tensor
    ids: torch.Tensor

    def __len__(self) -> int:
        return int(self.image.shape[0])


@dataclass
class DetectionTable:
    """Every detection of an evaluation, one row each (``D`` rows), in results-file order.

    Attributes:
        image, category: ``(D,)`` int64 indices as in :class:`GroundTruthTable`.
        score: ``(D,)`` float64 confidence.
        area: ``(D,)`` float64 area (decides whether an unmatched detection is ignored).
        ids: ``(D,)`` int64 ids (pycocotools: position in the results list + 1).
    """

    image: torch.Tensor
    category: torch.Tensor
    score: torch.Tensor
    area: torch.Tensor
    ids: torch.Tensor

    def __len__(self) -> int:
        return int(self.image.shape[0])


@dataclass
class Grouping:
    """Ground truth and detections grouped by (image, category): ``N`` groups, image-major.

    Attributes:
        image, category: ``(N,)`` int64 of each group.
        gt_rows: ground-truth rows ordered by group, annotation order kept within a group.
        gt_start, gt_count: ``(N,)`` slice of each group in ``gt_rows``.
        det_rows: detection rows ordered by group, then score (stable, descending); only the
            first ``max_detections[-1]`` of each group are kept.
        det_start, det_count: ``(N,)`` slice of each group in ``det_rows``.
        det_rank: ``(len(det_rows),)`` position of each kept detection within its group.
        pair_start: ``(N,)`` offset of each group's ``det_count x gt_count`` IoU block (row-major)
            in the flat pair layout; ``num_pairs`` in all.
    """

    image: torch.Tensor
    category: torch.Tensor
    gt_rows: torch.Tensor
    gt_start: torch.Tensor
    gt_count: torch.Tensor
    det_rows: torch.Tensor
    det_start: torch.Tensor
    det_count: torch.Tensor
    det_rank: torch.Tensor
    pair_start: torch.Tensor
    num_pairs: int

    def pair_slots(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The flat pair layout as ``(group (P,), detection slot (P,), ground-truth slot (P,))``;
        slots index ``det_rows`` and ``gt_rows``."""
        sizes = self.det_count * self.gt_count
        group = torch.repeat_interleave(torch.arange(len(sizes), device=sizes.device), sizes)
        local = torch.arange(self.num_pairs, device=sizes.device) - self.pair_start[group]
        columns = self.gt_count[group]
        return group, self.det_start[group] + local // columns, self.gt_start[group] + local % columns

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The flat pair layout as ``(detection rows (P,), ground-truth rows (P,))``."""
        _, det_slot, gt_slot = self.pair_slots()
        return self.det_rows[det_slot], self.gt_rows[gt_slot]


PairIoU = Callable[[Grouping], torch.Tensor]
"""Computes the IoU ``(num_pairs,)`` float64 of every pair of a :class:`Grouping`."""


def _segments(keys: torch.Tensor, num_keys: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and count per key of a key-sorted array."""
    count = torch.bincount(keys, minlength=num_keys)
    start = torch.cumsum(count, 0) - count
    return start, count


def group_instances(gt: GroundTruthTable, dt: DetectionTable, num_categories: int, max_detections: int) -> Grouping:
    """Group by (image, category), sort detections by score, keep the top ``max_detections``."""
    device = gt.image.device
    gt_key = gt.image * num_categories + gt.category
    dt_key = dt.image * num_categories + dt.category
    gt_rows = torch.sort(gt_key, stable=True).indices
    by_score = torch.sort(-dt.score, stable=True).indices
    det_rows = by_score[torch.sort(dt_key[by_score], stable=True).indices]

    keys = torch.unique(torch.cat([gt_key, dt_key]))
    gt_group = torch.searchsorted(keys, gt_key[gt_rows])
    det_group = torch.searchsorted(keys, dt_key[det_rows])
    gt_start, gt_count = _segments(gt_group, len(keys))
    det_start, det_count = _segments(det_group, len(keys))
    det_rank = torch.arange(len(det_rows), device=device) - det_start[det_group]

    kept = det_rank < max_detections
    det_rows, det_group, det_rank = det_rows[kept], det_group[kept], det_rank[kept]
    det_start, det_count = _segments(det_group, len(keys))
    sizes = det_count * gt_count
    pair_start = torch.cumsum(sizes, 0) - sizes
    return Grouping(
        image=keys // num_categories,
        category=keys % num_categories,
        gt_rows=gt_rows,
        gt_start=gt_start,
        gt_count=gt_count,
        det_rows=det_rows,
        det_start=det_start,
        det_count=det_count,
        det_rank=det_rank,
        pair_start=pair_start,
        num_pairs=int(sizes.sum()),
    )


def greedy_match(
    iou: torch.Tensor,
    gt_crowd: torch.Tensor,
    gt_ignored: torch.Tensor,
    thresholds: torch.Tensor,
) -> torch.Tensor:
    """``evaluateImg``'s greedy matching for a batch of groups, all area ranges and thresholds.

    Args:
        iou: ``(N, D, G)`` float64, detections in score order; padding entries are ``-1``.
        gt_crowd: ``(N, G)`` bool.
        gt_ignored: ``(N, A, G)`` bool, ignored in area range ``a``.
        thresholds: ``(T,)`` float64 IoU thresholds.

    Returns:
        ``(N, A, T, D)`` int64: the group-local ground-truth index each detection matched, ``-1``
        for none.
    """
    n, num_det, num_gt = iou.shape
    num_areas, num_thr = gt_ignored.shape[1], len(thresholds)
    capped = thresholds.clamp(max=1 - 1e-10).view(1, -1, 1, 1, 1)
    above = (iou.view(1, 1, n, num_det, num_gt) >= capped).expand(num_areas, num_thr, n, num_det, num_gt)
    area, threshold, group, det, gt = torch.nonzero(above).unbind(1)  # sorted by (area, threshold, group, det)
    slots = torch.arange(n * num_det, device=iou.device)
    candidates = Candidates(
        detection=(area * num_thr + threshold) * (n * num_det) + group * num_det + det,
        ground_truth=group * num_gt + gt,
        key=preference_keys(iou[group, det, gt], ~gt_ignored[group, area, gt]),
        slot_group=slots // num_det,
        slot_rank=slots % num_det,
        crowd=gt_crowd.reshape(-1),
        num_groups=n,
    )
    matched, chosen = solve(candidates, num_areas * num_thr)
    matches = torch.full((num_areas, num_thr, n, num_det), -1, dtype=torch.int64, device=iou.device)
    matches.view(-1)[matched] = chosen % num_gt
    return matches.permute(2, 0, 1, 3)


@dataclass
class MatchResult:
    """Per kept detection (``len(grouping.det_rows)`` of them) and area range ``A``, threshold ``T``.

    Attributes:
        matched: ``(A, T, K)`` bool, a true positive candidate (matched a ground truth; as in
            pycocotools, a match to a ground truth whose id is 0 does not count).
        ignored: ``(A, T, K)`` bool.
        matched_gt: ``(A, T, K)`` int64 ground-truth row, ``-1`` for none.
    """

    matched: torch.Tensor
    ignored: torch.Tensor
    matched_gt: torch.Tensor


def _budget_ranges(weight: torch.Tensor, budget: int) -> list[tuple[int, int]]:
    """Consecutive ranges ``[first, last)`` of items whose ``weight`` sums stay near ``budget``
    (a single item may exceed it); every item is in one range."""
    total = len(weight)
    if total == 0:
        return []
    running = torch.cumsum(weight, 0)
    cuts = torch.searchsorted(
        running, torch.arange(budget, max(int(running[-1]), budget), budget, device=weight.device), right=True
    )
    edges = sorted({0, total, *cuts.clamp(max=total).tolist()})
    return list(zip(edges[:-1], edges[1:]))


def _equivalent_problems(
    grouping: Grouping, gt_regular: torch.Tensor, pair_group: torch.Tensor, above: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each group, the first threshold and the first area range whose matching problem is the
    same: ``(T, N)`` and ``(A, N)`` int64 (an index equal to its own position is solved, the
    others copy it).

    Thresholds passed by the same number of the group's candidate pairs pass the same pairs (the
    sets are nested). Area ranges that split the group's ground truth into the same regular and
    ignored ones match alike, and so do ranges where all of it is ignored and all is regular
    (the preference order is the same).

    Args:
        gt_regular: ``(A, G rows)`` bool. pair_group: ``(P,)`` group of each candidate pair.
        above: ``(T, P)`` bool, the pair's IoU clears the threshold.
    """
    device, num_groups = above.device, len(grouping.image)
    passing = torch.zeros((len(above), num_groups), dtype=torch.int64, device=device).index_add_(
        1, pair_group, above.to(torch.int64)
    )
    same_threshold = (passing.unsqueeze(0) == passing.unsqueeze(1)).to(torch.int8).argmax(0)  # first equal
    gt_group = torch.empty(gt_regular.shape[1], dtype=torch.int64, device=device)
    gt_group[grouping.gt_rows] = torch.repeat_interleave(torch.arange(num_groups, device=device), grouping.gt_count)
    regular_count = torch.zeros((len(gt_regular), num_groups), dtype=torch.int64, device=device).index_add_(
        1, gt_group, gt_regular.to(torch.int64)
    )
    split = gt_regular | (regular_count == 0)[:, gt_group]  # all ignored counts as all regular
    differ = (split.unsqueeze(0) != split.unsqueeze(1)).to(torch.int64)  # (A, A, G)
    mismatches = torch.zeros((len(split), len(split), num_groups), dtype=torch.int64, device=device).index_add_(
        2, gt_group, differ
    )
    same_area = (mismatches == 0).to(torch.int8).argmax(0)
    return same_threshold, same_area


def match_all(
    grouping: Grouping,
    gt: GroundTruthTable,
    dt: DetectionTable,
    pair_iou: torch.Tensor,
    params: CocoParams,
    budget: int = 2**22,
) -> MatchResult:
    """Greedy matching of every group, area range and threshold (:mod:`a3d_core.eval.greedy`).

    Only pairs whose IoU clears a threshold are candidates there; they are solved in chunks of
    whole groups holding about ``budget`` (pair, area range, threshold) candidates, to bound memory.
    """
    device = pair_iou.device
    area_low = torch.tensor([r[0] for r in params.area_ranges], dtype=torch.float64, device=device)
    area_high = torch.tensor([r[1] for r in params.area_ranges], dtype=torch.float64, device=device)
    gt_out = (gt.area.unsqueeze(0) < area_low.unsqueeze(1)) | (gt.area.unsqueeze(0) > area_high.unsqueeze(1))
    gt_regular = ~(gt_out | gt.ignore.unsqueeze(0))  # (A, G rows)
    capped = torch.tensor(params.iou_thresholds, dtype=torch.float64, device=device).clamp(max=1 - 1e-10)
    num_areas, num_thr, kept, num_groups = (
        len(params.area_ranges),
        len(capped),
        len(grouping.det_rows),
        len(grouping.image),
    )
    matched_gt = torch.full((num_areas, num_thr, kept), -1, dtype=torch.int64, device=device)

    group, det_slot, gt_slot = grouping.pair_slots()
    candidate = torch.nonzero(pair_iou >= capped.min()).flatten()
    group, det_slot, gt_row, iou = (
        group[candidate],
        det_slot[candidate],
        grouping.gt_rows[gt_slot[candidate]],
        pair_iou[candidate],
    )
    above = iou.unsqueeze(0) >= capped.unsqueeze(1)  # (T, candidate pairs)
    slot_group = torch.repeat_interleave(torch.arange(num_groups, device=device), grouping.det_count)
    same_threshold, same_area = _equivalent_problems(grouping, gt_regular, group, above)
    group_weight = torch.zeros(num_groups, dtype=torch.int64, device=device).index_add_(
        0, group, above.sum(0) * num_areas
    )
    for first_group, last_group in _budget_ranges(group_weight, budget):
        first, last = torch.searchsorted(group, torch.tensor([first_group, last_group], device=device)).tolist()
        threshold, pair = torch.nonzero(above[:, first:last]).unbind(1)  # threshold-major, pairs in order
        pair = pair + first
        keep = same_threshold[threshold, group[pair]] == threshold
        threshold, pair = threshold[keep], pair[keep]
        area, element = torch.nonzero(
            same_area[:, group[pair]] == torch.arange(num_areas, device=device).unsqueeze(1)
        ).unbind(1)
        threshold, pair = threshold[element], pair[element]
        rows = gt_row[pair]
        candidates = Candidates(
            detection=(area * num_thr + threshold) * kept + det_slot[pair],  # sorted by (area, threshold, slot)
            ground_truth=rows,  # within a group, rows are in annotation order
            key=preference_keys(iou[pair], gt_regular[area, rows]),
            slot_group=slot_group,
            slot_rank=grouping.det_rank,
            crowd=gt.crowd,
            num_groups=num_groups,
        )
        matched, chosen = solve(candidates, num_areas * num_thr)
        matched_gt.view(-1)[matched] = chosen
    source = (same_area[:, slot_group].unsqueeze(1) * num_thr + same_threshold[:, slot_group].unsqueeze(0)) * kept
    matched_gt = matched_gt.view(-1)[source + torch.arange(kept, device=device)]  # copy to the equivalent problems

    has_match = matched_gt >= 0
    if len(gt):
        safe = matched_gt.clamp(min=0)
        matched = has_match & (gt.ids[safe] != 0)
        ignored_gt = has_match & ~gt_regular.gather(1, safe.reshape(num_areas, -1)).reshape(safe.shape)
    else:
        matched, ignored_gt = has_match, has_match
    det_area = dt.area[grouping.det_rows]
    det_out = (det_area.unsqueeze(0) < area_low.unsqueeze(1)) | (det_area.unsqueeze(0) > area_high.unsqueeze(1))
    ignored = ignored_gt | (~matched & det_out.unsqueeze(1))
    return MatchResult(matched=matched, ignored=ignored, matched_gt=matched_gt)


@dataclass
class Accumulated:
    """``COCOeval.eval``'s arrays.

    Attributes:
        precision: ``(T, R, K, A, M)`` float64, -1 where a category has no not-ignored ground truth.
        recall: ``(T, K, A, M)`` float64, -1 likewise.
    """

    precision: torch.Tensor
    recall: torch.Tensor


def _suffix_max(values: torch.Tensor) -> torch.Tensor:
    """Running maximum from the right along the last dim (``flip.cummax.flip``, by doubling: a few
    elementwise maxima, faster than ``cummax`` on CPU)."""
    values, step = values.clone(), 1
    while step < values.shape[-1]:
        values[..., :-step] = torch.maximum(values[..., :-step], values[..., step:])
        step *= 2
    return values


def accumulate(
    grouping: Grouping,
    gt: GroundTruthTable,
    dt: DetectionTable,
    result: MatchResult,
    num_categories: int,
    params: CocoParams,
    budget: int = 2**22,
) -> Accumulated:
    """``COCOeval.accumulate``: precision at the recall thresholds and final recall.

    Each category's detections (the first ``m`` per image, by score) are one segment. pycocotools
    reads, at each recall threshold, the right-to-left running maximum of precision at the first
    detection whose recall reaches it. Recall only grows and precision only falls between two
    true positives, so that is the largest precision among the *true positives* whose recall
    reaches the threshold (0 when none does). So precision is computed at the true positives only
    (``tp / (tp + fp + eps)``, the false positives before each from one ``cumsum``), goes into
    the bin of the highest threshold its recall ``tp / npig`` reaches (a table holds the bin of
    every possible ``tp``), and a scatter maximum per bin then a running maximum over the bins,
    from the right, give the same floats, in the (cap, area, threshold, category) rows that have
    a true positive; the others are 0, or -1 without ground truth. Categories are processed in
    chunks of about ``budget`` (area range, threshold, detection) entries.
    """
    device = result.matched.device
    num_areas, num_thr = len(params.area_ranges), len(params.iou_thresholds)
    num_rec, num_max = len(params.recall_thresholds), len(params.max_detections)
    recall_thresholds = torch.tensor(params.recall_thresholds, dtype=torch.float64, device=device)
    area_low = torch.tensor([r[0] for r in params.area_ranges], dtype=torch.float64, device=device)
    area_high = torch.tensor([r[1] for r in params.area_ranges], dtype=torch.float64, device=device)
    gt_counted = ~(
        gt.ignore.unsqueeze(0)
        | (gt.area.unsqueeze(0) < area_low.unsqueeze(1))
        | (gt.area.unsqueeze(0) > area_high.unsqueeze(1))
    )
    npig = torch.zeros((num_areas, num_categories), dtype=torch.float64, device=device)
    npig.index_add_(1, gt.category, gt_counted.to(torch.float64))
    valid = npig > 0  # (A, K); the others stay -1
    positives = torch.where(valid, npig, torch.ones_like(npig))

    rows = grouping.det_rows
    category, score, rank = dt.category[rows], dt.score[rows], grouping.det_rank
    order = torch.arange(len(rows), device=device)
    for key in (-score, category):  # category first, then score; ties keep (image, rank) order
        order = order[torch.sort(key[order], stable=True).indices]
    # Recall is tp / npig with tp in 0..npig: the recall bin of every possible (area, category, tp)
    # is looked up in a small table instead of searching each detection's recall.
    table_size = torch.where(valid, npig.to(torch.int64) + 1, torch.ones_like(npig, dtype=torch.int64)).reshape(-1)
    table_start = torch.cumsum(table_size, 0) - table_size
    table_owner = torch.repeat_interleave(torch.arange(len(table_size), device=device), table_size)
    table_tp = torch.arange(len(table_owner), device=device) - table_start[table_owner]
    # 0: below all
    recall_bin = torch.searchsorted(recall_thresholds, table_tp / positives.reshape(-1)[table_owner], right=True)
    table_start = table_start.view(num_areas, num_categories)

    cells = num_areas * num_thr  # rows (tp and fp per area range and threshold) over detection columns
    counted = ~result.ignored.reshape(cells, -1)
    flags = torch.cat([result.matched.reshape(cells, -1) & counted, ~result.matched.reshape(cells, -1) & counted])
    flags = flags.T.contiguous().index_select(0, order).T.contiguous()  # (2 cells, kept), columns in `order`
    ordered_rank, ordered_category = rank[order], category[order]
    bin_stride = num_rec + 1
    # Precision is 0 (a category with ground truth) or -1 except in rows (cap, area, threshold,
    # category) that have a true positive; recall is tp / npig (or -1).
    blank = torch.where(valid, 0.0, -1.0).to(torch.float64).view(1, num_areas, 1, num_categories, 1)
    precision = blank.expand(num_max, -1, num_thr, -1, num_rec).contiguous()  # (M, A, T, K, R), permuted at the end
    recall = torch.zeros((num_max, num_areas, num_thr, num_categories), dtype=torch.float64, device=device)

    for m_index, max_det in enumerate(params.max_detections):
        columns = torch.nonzero(ordered_rank < max_det).flatten()  # the first m of each image, same order
        within = flags if len(columns) == len(order) else flags.index_select(1, columns)
        categories = ordered_category[columns]
        cat_start, cat_count = _segments(categories, num_categories)
        for first, last in _budget_ranges(cat_count * cells, budget):
            low, high = int(cat_start[first]), int(cat_start[last - 1] + cat_count[last - 1])
            cats, count = categories[low:high] - first, last - first
            fp_sum = within[cells:, low:high].cumsum(-1)  # (cells, n) int64; restarted per category below
            start = cat_start[first:last] - low
            fp_before = (
                torch.where(start > 0, fp_sum[:, (start - 1).clamp(min=0)], 0)
                if high > low
                else fp_sum.new_zeros((cells, count))
            )
            cell, position = torch.nonzero(within[:cells, low:high]).unbind(1)  # true positives, by (cell, position)
            group = cell * count + cats[position]  # (cell, category), non-decreasing
            tp_count = torch.bincount(group, minlength=cells * count)
            tp = torch.arange(len(group), device=device) - (torch.cumsum(tp_count, 0) - tp_count)[group] + 1
            fp = fp_sum[cell, position] - fp_before[cell, cats[position]]
            tp_float = tp.to(torch.float64)
            pr = tp_float / (fp.to(torch.float64) + tp_float + _FLOAT_EPS)
            reached = recall_bin[table_start[cell // num_thr, first + cats[position]] + tp]
            rows = torch.nonzero(tp_count).flatten()  # (cell, category) rows with a true positive
            compact = torch.cumsum(tp_count > 0, 0) - 1
            best = torch.zeros(len(rows) * bin_stride, dtype=torch.float64, device=device)
            best.scatter_reduce_(0, compact[group] * bin_stride + reached, pr, "amax")
            precision_rows = (m_index * cells + rows // count) * num_categories + first + rows % count
            precision.view(-1, num_rec)[precision_rows] = _suffix_max(best.view(len(rows), bin_stride)[:, 1:])
            recall[m_index, :, :, first:last] = tp_count.view(num_areas, num_thr, count).to(torch.float64)
    recall = torch.where(valid.view(1, num_areas, 1, -1), recall / positives.view(1, num_areas, 1, -1), -1.0)
    precision, recall = precision.permute(2, 4, 3, 1, 0).contiguous(), recall.permute(2, 3, 1, 0).contiguous()
    return Accumulated(precision=precision, recall=recall)


def _stat_sums(accumulated: Accumulated, params: CocoParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Per category, the sum and the number of the valid (``> -1``) entries each of the 12 stats
    averages: two ``(K, 12)`` tensors, float64 and int64, in ``STAT_NAMES`` order."""
    if not params.summary_ready:
        raise ValueError("the 12 COCO stats need max_detections of 3 caps, all/small/medium/large and IoU 0.5, 0.75")
    area = [params.area_labels.index(label) for label in ("all", "small", "medium", "large")]
    top = len(params.max_detections) - 1
    at_thresholds = [params.iou_thresholds.index(0.5), params.iou_thresholds.index(0.75)]
    precision = accumulated.precision[..., top]  # (T, R, K, A)
    recall = accumulated.recall  # (T, K, A, M)
    sums, counts = [], []
    for values, dims in ((precision, (0, 1)), (precision[at_thresholds][..., area[0]], (1,)), (recall, (0,))):
        valid = values > -1
        sums.append(torch.where(valid, values, torch.zeros_like(values)).sum(dims))
        counts.append(valid.sum(dims))

    def columns(per_area: torch.Tensor, per_threshold: torch.Tensor, per_cap: torch.Tensor) -> torch.Tensor:
        ap = [per_area[:, area[0]], per_threshold[0], per_threshold[1], *(per_area[:, a] for a in area[1:])]
        ar = [per_cap[:, area[0], 0], per_cap[:, area[0], 1], *(per_cap[:, a, top] for a in area)]
        return torch.stack(ap + ar, dim=1)

    return columns(*sums), columns(*counts)


def _means(sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    return torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, -1.0))


def summarize(accumulated: Accumulated, params: CocoParams, per_category: bool = False) -> torch.Tensor:
    """``COCOeval.summarize``'s 12 stats: ``(12,)``, or ``(K, 12)`` with ``per_category``.

    Stats are in ``STAT_NAMES`` order; a stat with nothing to average is -1, as in pycocotools.
    """
    sums, counts = _stat_sums(accumulated, params)
    return _means(sums, counts) if per_category else _means(sums.sum(0), counts.sum(0))


@dataclass
class CocoEvaluation:
    """The outcome of one COCO evaluation.

    Attributes:
        stats: the 12 stats by name (``STAT_NAMES``), as ``COCOeval.stats``.
        per_category: category index -> its 12 stats.
        accumulated: precision ``(T, R, K, A, M)`` and recall ``(T, K, A, M)`` arrays.
        grouping, pair_iou, matches: the groups, IoU ``(num_pairs,)`` and matches behind them.
    """

    stats: dict[str, float]
    per_category: dict[int, dict[str, float]]
    accumulated: Accumulated
    grouping: Grouping
    pair_iou: torch.Tensor
    matches: MatchResult
    params: CocoParams


def evaluate_tables(
    gt: GroundTruthTable,
    dt: DetectionTable,
    num_categories: int,
    pair_iou: PairIoU,
    params: CocoParams | None = None,
) -> CocoEvaluation:
    """The whole COCO protocol on tables already on their device; ``pair_iou`` supplies IoUs."""
    params = params or CocoParams()
    grouping = group_instances(gt, dt, num_categories, params.max_detections[-1])
    ious = pair_iou(grouping)
    matches = match_all(grouping, gt, dt, ious, params)
    accumulated = accumulate(grouping, gt, dt, matches, num_categories, params)
    stats = dict(zip(STAT_NAMES, summarize(accumulated, params).tolist()))
    table = summarize(accumulated, params, per_category=True).tolist()
    per_category = {k: dict(zip(STAT_NAMES, row)) for k, row in enumerate(table)}
    return CocoEvaluation(stats, per_category, accumulated, grouping, ious, matches, params)
