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
agree with ``COCOeval.stats`` to rounding of the final means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

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
        if not self.max_detections or list(self.max_detections) != sorted(self.max_detections) or self.max_detections[0] < 1:
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

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The flat pair layout as ``(detection rows (P,), ground-truth rows (P,))``."""
        sizes = self.det_count * self.gt_count
        group = torch.repeat_interleave(torch.arange(len(sizes), device=sizes.device), sizes)
        local = torch.arange(self.num_pairs, device=sizes.device) - self.pair_start[group]
        columns = self.gt_count[group]
        det = self.det_rows[self.det_start[group] + local // columns]
        gt = self.gt_rows[self.gt_start[group] + local % columns]
        return det, gt


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


def _last_argmax(values: torch.Tensor, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the LAST maximum of ``values`` over the allowed entries of the last dim, and whether any."""
    scored = torch.where(allowed, values, torch.full_like(values, -torch.inf))
    last = scored.shape[-1] - 1 - torch.argmax(scored.flip(-1), dim=-1)
    return last, allowed.any(-1)


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
    num_areas = gt_ignored.shape[1]
    capped = thresholds.clamp(max=1 - 1e-10).view(1, 1, -1, 1)
    taken = torch.zeros((n, num_areas, len(thresholds), num_gt), dtype=torch.bool, device=iou.device)
    matches = torch.full((n, num_areas, len(thresholds), num_det), -1, dtype=torch.int64, device=iou.device)
    columns = torch.arange(num_gt, device=iou.device)
    free_crowd = gt_crowd.view(n, 1, 1, num_gt)
    ignored = gt_ignored.unsqueeze(2)
    for d in range(num_det):
        row = iou[:, d, :].view(n, 1, 1, num_gt)
        candidate = (row >= capped) & (free_crowd | ~taken)
        regular, has_regular = _last_argmax(row, candidate & ~ignored)
        fallback, has_fallback = _last_argmax(row, candidate & ignored)
        chosen = torch.where(has_regular, regular, torch.where(has_fallback, fallback, torch.full_like(regular, -1)))
        matches[..., d] = chosen
        taken |= columns == chosen.unsqueeze(-1)
    return matches


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


def _chunks(det_count: torch.Tensor, gt_count: torch.Tensor, per_pair: int, budget: int) -> list[torch.Tensor]:
    """Groups with both detections and ground truth, sorted by size and cut into chunks whose
    padded ``groups x D x G x per_pair`` stays under ``budget`` (a single group may exceed it)."""
    active = torch.nonzero((det_count > 0) & (gt_count > 0)).flatten()
    dets, gts = det_count[active], gt_count[active]
    order = torch.argsort(dets * (int(gts.max()) + 1 if len(gts) else 1) + gts)
    active, dets, gts = active[order], dets[order].tolist(), gts[order].tolist()
    chunks, start, widest_d, widest_g = [], 0, 0, 0
    for i, (d, g) in enumerate(zip(dets, gts)):
        widest_d, widest_g = max(widest_d, d), max(widest_g, g)
        if i > start and (i + 1 - start) * widest_d * widest_g * per_pair > budget:
            chunks.append(active[start:i])
            start, widest_d, widest_g = i, d, g
    if start < len(dets):
        chunks.append(active[start:])
    return chunks


def match_all(
    grouping: Grouping,
    gt: GroundTruthTable,
    dt: DetectionTable,
    pair_iou: torch.Tensor,
    params: CocoParams,
    budget: int = 2**24,
) -> MatchResult:
    """Run :func:`greedy_match` over all groups, in chunks of similar size to bound memory.

    ``budget`` caps ``groups x D x G x A x T`` per chunk (the size of the matching state).
    """
    device = pair_iou.device
    area_low = torch.tensor([r[0] for r in params.area_ranges], dtype=torch.float64, device=device)
    area_high = torch.tensor([r[1] for r in params.area_ranges], dtype=torch.float64, device=device)
    gt_out = (gt.area.unsqueeze(0) < area_low.unsqueeze(1)) | (gt.area.unsqueeze(0) > area_high.unsqueeze(1))
    gt_ignored = gt_out | gt.ignore.unsqueeze(0)  # (A, G rows)
    thresholds = torch.tensor(params.iou_thresholds, dtype=torch.float64, device=device)
    num_areas, num_thr, kept = len(params.area_ranges), len(thresholds), len(grouping.det_rows)
    matched_gt = torch.full((num_areas, num_thr, kept), -1, dtype=torch.int64, device=device)

    # Only detections with some IoU >= the lowest threshold can match; the others change no state,
    # so each group's matching loop runs over its matchable detections alone (order kept).
    det_group = torch.repeat_interleave(torch.arange(len(grouping.det_count), device=device), grouping.det_count)
    pair_det, _ = grouping.pairs()
    slot_of_row = torch.empty(len(dt), dtype=torch.int64, device=device)
    slot_of_row[grouping.det_rows] = torch.arange(kept, device=device)
    best = torch.full((kept,), -1.0, dtype=torch.float64, device=device).scatter_reduce(
        0, slot_of_row[pair_det], pair_iou, reduce="amax", include_self=True
    )
    matchable = torch.nonzero(best >= thresholds.min().clamp(max=1 - 1e-10)).flatten()  # det slots, group order
    match_group = det_group[matchable]
    match_start, match_count = _segments(match_group, len(grouping.det_count))
    match_rank = torch.arange(len(matchable), device=device) - match_start[match_group]
    position = torch.full((len(grouping.det_count),), -1, dtype=torch.int64, device=device)

    for groups in _chunks(match_count, grouping.gt_count, num_areas * num_thr, budget):
        num_det = int(match_count[groups].max())
        num_gt = int(grouping.gt_count[groups].max())
        position[groups] = torch.arange(len(groups), device=device)
        in_chunk = position[match_group] >= 0
        slots = torch.full((len(groups), num_det), -1, dtype=torch.int64, device=device)  # (n, D) det slots
        slots[position[match_group[in_chunk]], match_rank[in_chunk]] = matchable[in_chunk]
        position[groups] = -1
        det_valid = slots >= 0
        d_local = grouping.det_rank[slots.clamp(min=0)]  # position within the group's kept detections
        g_local = torch.arange(num_gt, device=device)
        gt_valid = g_local.unsqueeze(0) < grouping.gt_count[groups].unsqueeze(1)  # (n, G)
        gt_slot = (grouping.gt_start[groups].unsqueeze(1) + g_local).clamp(max=max(len(grouping.gt_rows) - 1, 0))
        gt_row = grouping.gt_rows[gt_slot]
        pair = (
            grouping.pair_start[groups].view(-1, 1, 1)
            + d_local.unsqueeze(2) * grouping.gt_count[groups].view(-1, 1, 1)
            + g_local.view(1, 1, -1)
        )
        valid = det_valid.unsqueeze(2) & gt_valid.unsqueeze(1)
        iou = torch.where(valid, pair_iou[pair.clamp(max=max(grouping.num_pairs - 1, 0))], torch.full_like(pair, -1, dtype=torch.float64))
        ignored = gt_ignored[:, gt_row].permute(1, 0, 2)  # (n, A, G)
        local = greedy_match(iou, gt.crowd[gt_row] & gt_valid, ignored, thresholds)
        rows = torch.where(local >= 0, gt_row.unsqueeze(1).unsqueeze(1).expand(-1, num_areas, num_thr, -1).gather(3, local.clamp(min=0)), -1)
        matched_gt[:, :, slots[det_valid]] = rows.permute(1, 2, 0, 3)[:, :, det_valid]

    has_match = matched_gt >= 0
    if len(gt):
        safe = matched_gt.clamp(min=0)
        matched = has_match & (gt.ids[safe] != 0)
        ignored_gt = has_match & gt_ignored.gather(1, safe.reshape(num_areas, -1)).reshape(safe.shape)
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


def accumulate(
    grouping: Grouping,
    gt: GroundTruthTable,
    dt: DetectionTable,
    result: MatchResult,
    num_categories: int,
    params: CocoParams,
    budget: int = 2**24,
) -> Accumulated:
    """``COCOeval.accumulate``: precision at the recall thresholds and final recall.

    Categories are processed in chunks whose padded ``(A, T, categories, detections)`` arrays
    stay under ``budget`` elements.
    """
    device = result.matched.device
    num_areas, num_thr = len(params.area_ranges), len(params.iou_thresholds)
    num_rec, num_max = len(params.recall_thresholds), len(params.max_detections)
    recall_thresholds = torch.tensor(params.recall_thresholds, dtype=torch.float64, device=device)
    precision = torch.full((num_thr, num_rec, num_categories, num_areas, num_max), -1.0, dtype=torch.float64, device=device)
    recall = torch.full((num_thr, num_categories, num_areas, num_max), -1.0, dtype=torch.float64, device=device)

    area_low = torch.tensor([r[0] for r in params.area_ranges], dtype=torch.float64, device=device)
    area_high = torch.tensor([r[1] for r in params.area_ranges], dtype=torch.float64, device=device)
    gt_counted = ~(gt.ignore.unsqueeze(0) | (gt.area.unsqueeze(0) < area_low.unsqueeze(1)) | (gt.area.unsqueeze(0) > area_high.unsqueeze(1)))
    npig = torch.zeros((num_areas, num_categories), dtype=torch.float64, device=device)
    npig.index_add_(1, gt.category, gt_counted.to(torch.float64))

    rows = grouping.det_rows
    category, score, rank = dt.category[rows], dt.score[rows], grouping.det_rank
    order = torch.arange(len(rows), device=device)
    for key in (-score, category):  # category first, then score; ties keep (image, rank) order
        order = order[torch.sort(key[order], stable=True).indices]
    true_pos = result.matched & ~result.ignored
    false_pos = ~result.matched & ~result.ignored

    for m_index, max_det in enumerate(params.max_detections):
        chosen = order[rank[order] < max_det]
        chosen_cat = category[chosen]
        cat_start, cat_count = _segments(chosen_cat, num_categories)
        column = torch.arange(len(chosen), device=device) - cat_start[chosen_cat]
        longest = max(int(cat_count.max()) if num_categories else 0, 1)
        per_category = num_areas * num_thr * longest
        step = max(1, budget // per_category)
        for first in range(0, num_categories, step):
            last = min(first + step, num_categories)
            in_chunk = (chosen_cat >= first) & (chosen_cat < last)
            dets, cats, cols = chosen[in_chunk], chosen_cat[in_chunk] - first, column[in_chunk]
            shape = (num_areas, num_thr, last - first, longest)
            tp = torch.zeros(shape, dtype=torch.float64, device=device)
            fp = torch.zeros(shape, dtype=torch.float64, device=device)
            tp[:, :, cats, cols] = true_pos[:, :, dets].to(torch.float64)
            fp[:, :, cats, cols] = false_pos[:, :, dets].to(torch.float64)
            tp, fp = tp.cumsum(-1), fp.cumsum(-1)
            count = cat_count[first:last].view(1, 1, -1, 1)
            present = torch.arange(longest, device=device).view(1, 1, 1, -1) < count
            positives = npig[:, first:last].view(num_areas, 1, -1, 1)
            rc = torch.where(present, tp / positives, torch.full_like(tp, torch.inf))
            pr = torch.where(present, tp / (fp + tp + _FLOAT_EPS), torch.zeros_like(tp))
            envelope = pr.flip(-1).cummax(-1).values.flip(-1)
            where = torch.searchsorted(rc.reshape(-1, longest), recall_thresholds.expand(rc.numel() // longest, -1).contiguous(), side="left")
            where = where.view(num_areas, num_thr, last - first, num_rec)
            q = envelope.gather(3, where.clamp(max=longest - 1))
            q = torch.where(where < count, q, torch.zeros_like(q))
            final_tp = tp.gather(3, (count - 1).clamp(min=0).expand(num_areas, num_thr, -1, 1)).squeeze(3)
            final_tp = torch.where(count.squeeze(3) > 0, final_tp, torch.zeros_like(final_tp))
            valid = npig[:, first:last] > 0  # (A, k)
            rec = torch.where(valid.unsqueeze(1), final_tp / positives.squeeze(3), torch.full_like(final_tp, -1.0))
            prec = torch.where(valid.view(num_areas, 1, -1, 1), q, torch.full_like(q, -1.0))
            precision[:, :, first:last, :, m_index] = prec.permute(1, 3, 2, 0)
            recall[:, first:last, :, m_index] = rec.permute(1, 2, 0)
    return Accumulated(precision=precision, recall=recall)


def _mean_valid(values: torch.Tensor, category_dim: int) -> torch.Tensor:
    """Mean of the entries ``> -1`` per category (``-1`` when none): ``(K,)`` float64."""
    values = values.movedim(category_dim, 0).reshape(values.shape[category_dim], -1)
    valid = values > -1
    count = valid.sum(1)
    total = torch.where(valid, values, torch.zeros_like(values)).sum(1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, -1.0))


def summarize(accumulated: Accumulated, params: CocoParams, per_category: bool = False) -> torch.Tensor:
    """``COCOeval.summarize``'s 12 stats: ``(12,)``, or ``(K, 12)`` with ``per_category``.

    Stats are in ``STAT_NAMES`` order; a stat with nothing to average is -1, as in pycocotools.
    """
    if not params.summary_ready:
        raise ValueError("the 12 COCO stats need max_detections of 3 caps, all/small/medium/large and IoU 0.5, 0.75")
    precision, recall = accumulated.precision, accumulated.recall
    area = {label: i for i, label in enumerate(params.area_labels)}
    top = len(params.max_detections) - 1
    t50 = params.iou_thresholds.index(0.5)
    t75 = params.iou_thresholds.index(0.75)

    def ap(area_label: str = "all", threshold: int | None = None) -> torch.Tensor:
        s = precision[:, :, :, area[area_label], top]
        s = s if threshold is None else s[threshold : threshold + 1]
        return _mean_valid(s, 2) if per_category else _mean_valid(s.reshape(1, -1), 0)

    def ar(max_index: int, area_label: str = "all") -> torch.Tensor:
        s = recall[:, :, area[area_label], max_index]
        return _mean_valid(s, 1) if per_category else _mean_valid(s.reshape(1, -1), 0)

    values = (
        ap(), ap(threshold=t50), ap(threshold=t75), ap("small"), ap("medium"), ap("large"),
        ar(0), ar(1), ar(top), ar(top, "small"), ar(top, "medium"), ar(top, "large"),
    )  # fmt: skip
    stacked = torch.stack(values, dim=-1)
    return stacked if per_category else stacked[0]


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
