"""Who occludes whom: the pairwise occlusion relation and a depth order from amodal and visible masks.

Amodal and visible masks together say which instance hides which: the hidden part of ``j``
(amodal and not visible) lies behind something, and where another instance ``i`` is VISIBLE over
it, ``i`` is in front of ``j``. :func:`occlusion_relation` counts, for every ordered pair, the
pixels of ``j``'s hidden part that ``i``'s visible mask covers, and decides each pair by comparing
the two directions, as Deocclusion does (Zhan et al., CVPR 2020: ``infer_gt_order`` on amodal and
modal masks, ``infer_order`` on its completions). The relation may hold cycles (three instances
each hiding a bit of the next); :func:`depth_order` turns it into one front-to-back order that
keeps every relation of an acyclic graph and breaks a cycle at its weakest instance.

:func:`order_accuracy` is Deocclusion's pairwise order accuracy: over the pairs of ground-truth
instances that occlude each other, the share whose predicted relation points the right way. The
true order of a pair comes from the annotations a3d keeps (:func:`ground_truth_depths`):
``depth_order`` of the built-in scenes (0 = front), COCOA's ``order`` (1 = front) and KINS 2020's
``ico_id`` (within one ``oco_id`` cluster, the lower in front; 0 = overlaps nothing), the last two
in the canonical annotation's ``source``.

All functions work on the device of their input and loop only over instances, never pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils

from a3d_core.errors import InputError
from a3d_core.eval.masks import to_rle

ORDER_SOURCES = ("depth_order", "cocoa order", "kins2020 ico_id")
"""The order annotations :func:`ground_truth_depths` reads, as :attr:`OrderAccuracy.source` names them."""


@dataclass(frozen=True)
class OcclusionRelation:
    """The pairwise occlusion relation of one image's ``K`` instances.

    Attributes:
        covered: ``(K, K)`` int64: ``covered[i, j]`` pixels of ``j``'s hidden part (amodal and not
            visible) that ``i``'s visible mask covers.
        occludes: ``(K, K)`` bool: ``occludes[i, j]``: ``i`` is in front of ``j``
            (``covered[i, j] > covered[j, i]`` and ``covered[i, j] >= min_pixels``); never both ways.
        confidence: ``(K, K)`` float32 in ``[0.5, 1]`` where ``occludes``, else 0:
            ``covered[i, j] / (covered[i, j] + covered[j, i])``, 1 when nothing contradicts it.
    """

    covered: torch.Tensor
    occludes: torch.Tensor
    confidence: torch.Tensor

    def pairs(self) -> list[tuple[int, int, float, int]]:
        """``(front, behind, confidence, covered pixels)`` of every occluding pair, front index first."""
        front, behind = torch.nonzero(self.occludes, as_tuple=True)
        return [
            (int(i), int(j), float(self.confidence[i, j]), int(self.covered[i, j]))
            for i, j in zip(front.tolist(), behind.tolist())
        ]


def occlusion_relation(amodal: torch.Tensor, visible: torch.Tensor, min_pixels: int = 1) -> OcclusionRelation:
    """The pairwise relation of ``K`` instances (see the module docstring).

    Args:
        amodal, visible: ``(K, H, W)`` masks (bool, or probabilities: ``> 0.5`` is inside).
        min_pixels: ``i`` occludes ``j`` only when it covers at least this many of ``j``'s hidden pixels.

    Returns:
        :class:`OcclusionRelation` with ``(K, K)`` tensors on the masks' device.
    """
    if amodal.shape != visible.shape or amodal.dim() != 3:
        raise ValueError(
            f"amodal and visible must both be (K, H, W), got {tuple(amodal.shape)} and {tuple(visible.shape)}"
        )
    if min_pixels < 1:
        raise ValueError(f"min_pixels must be at least 1, got {min_pixels}")
    seen = _binary(visible).flatten(1)
    hidden = _binary(amodal).flatten(1) & ~seen
    covered = _overlaps(seen, hidden)
    against = covered.T
    occludes = (covered > against) & (covered >= min_pixels)
    total = (covered + against).clamp(min=1).float()
    confidence = torch.where(occludes, covered.float() / total, torch.zeros_like(total))
    return OcclusionRelation(covered, occludes, confidence)


def depth_order(relation: OcclusionRelation) -> torch.Tensor:
    """A front-to-back order of the instances consistent with ``relation``.

    Greedy topological sort: the next instance is one that nothing left in front of it occludes
    (the lowest index among those covering the most pixels of the others left); when the ones
    left form a cycle, the one whose occluders cover the fewest of its pixels beyond what it
    covers of theirs goes next, so a cycle is broken where its evidence is weakest.

    Returns:
        ``(K,)`` int64: instance indices, front-most first (``depth_rank`` is its inverse).
    """
    weight = torch.where(relation.occludes, relation.covered - relation.covered.T, 0).cpu()
    left = list(range(weight.shape[0]))
    order: list[int] = []
    while left:
        rows = torch.tensor(left)
        sub = weight[rows][:, rows]
        behind_of = sub.sum(dim=0)
        in_front_of = sub.sum(dim=1)
        free = torch.nonzero(behind_of == 0).flatten()
        candidates = free if len(free) else torch.arange(len(left))
        margin = in_front_of[candidates] - behind_of[candidates]
        chosen = int(candidates[int(torch.argmax(margin))])
        order.append(left.pop(chosen))
    return torch.tensor(order, dtype=torch.long, device=relation.occludes.device)


def depth_rank(order: torch.Tensor) -> torch.Tensor:
    """``(K,)`` int64: each instance's place in ``order`` ``(K,)`` (0 = front-most)."""
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device)
    return rank


def relation_record(relation: OcclusionRelation) -> dict[str, Any]:
    """The JSON-ready relation of one image: occluding ``pairs`` (``front``, ``behind``,
    ``confidence``, ``pixels``), ``depth_order`` (indices front to back) and ``depth_rank``
    (each instance's place in it, 0 = front)."""
    order = depth_order(relation)
    return {
        "instances": int(relation.occludes.shape[0]),
        "pairs": [
            {"front": i, "behind": j, "confidence": round(confidence, 4), "pixels": pixels}
            for i, j, confidence, pixels in relation.pairs()
        ],
        "depth_order": order.tolist(),
        "depth_rank": depth_rank(order).tolist(),
    }


# ------------------------------------------------------------------------------ evaluation
def ground_truth_depths(annotations: Sequence[Mapping[str, Any]]) -> tuple[str, list[tuple[int, float]] | None]:
    """The order annotation of one image's canonical annotations, as ``(source, depths)``.

    ``depths[k]`` is ``(group, depth)`` of annotation ``k``: only annotations of one group are
    ordered, the lower depth in front; ``None`` where an annotation has no order. ``source`` is
    one of :data:`ORDER_SOURCES`, or ``""`` when no annotation of the image has an order.
    """
    if any("depth_order" in a for a in annotations):
        return ORDER_SOURCES[0], [(0, float(a["depth_order"])) if "depth_order" in a else None for a in annotations]
    sources = [a.get("source") if isinstance(a.get("source"), Mapping) else {} for a in annotations]
    if any("order" in s for s in sources):
        return ORDER_SOURCES[1], [(0, float(s["order"])) if "order" in s else None for s in sources]
    if any("ico_id" in s for s in sources):
        depths = [
            (int(s.get("oco_id", 0)), float(s["ico_id"])) if int(s.get("ico_id", 0)) > 0 else None for s in sources
        ]
        return ORDER_SOURCES[2], depths
    return "", [None] * len(annotations)


def true_pairs(
    amodal: torch.Tensor, visible: torch.Tensor, depths: Sequence[tuple[int, float] | None]
) -> list[tuple[int, int]]:
    """The ground-truth ``(front, behind)`` pairs: instances that occlude each other (one's visible
    mask covers part of the other's hidden part, :func:`occlusion_relation`) and whose order is
    annotated (same group, different depths); the direction is the annotation's.

    Args:
        amodal, visible: ``(K, H, W)`` ground-truth masks; ``depths``: ``K`` entries of
            :func:`ground_truth_depths`.
    """
    covered = occlusion_relation(amodal, visible).covered
    touching = (covered + covered.T) > 0
    pairs = []
    for i, j in torch.nonzero(torch.triu(touching, diagonal=1)).tolist():
        if depths[i] is None or depths[j] is None or depths[i][0] != depths[j][0] or depths[i][1] == depths[j][1]:
            continue
        pairs.append((i, j) if depths[i][1] < depths[j][1] else (j, i))
    return pairs


@dataclass
class OrderAccuracy:
    """Pairwise order accuracy (Deocclusion's measure) over a split.

    Attributes:
        source: the order annotation scored against (one of :data:`ORDER_SOURCES`).
        pairs: ground-truth pairs that occlude each other and have an annotated order.
        matched: those whose two instances both have a matched prediction (amodal IoU >= 0.5).
        correct: matched pairs whose predicted relation points the annotated way.
        unordered: matched pairs with no predicted relation either way (counted as wrong).
    """

    source: str
    pairs: int = 0
    matched: int = 0
    correct: int = 0
    unordered: int = 0

    @property
    def accuracy(self) -> float:
        """``correct / matched``; -1 with no matched pair."""
        return self.correct / self.matched if self.matched else -1.0

    @property
    def accuracy_all_pairs(self) -> float:
        """``correct / pairs``: a pair with an unmatched instance counts as wrong; -1 with no pair."""
        return self.correct / self.pairs if self.pairs else -1.0

    def add(self, pairs: Sequence[tuple[int, int]], match: Sequence[int | None], occludes: torch.Tensor) -> None:
        """Count one image: ``pairs`` (front, behind) of ground truth, ``match[k]`` the prediction
        (row of ``occludes`` ``(P, P)``) matched to ground truth ``k``, or ``None``."""
        for front, behind in pairs:
            self.pairs += 1
            p, q = match[front], match[behind]
            if p is None or q is None:
                continue
            self.matched += 1
            self.correct += int(occludes[p, q])
            self.unordered += int(not occludes[p, q] and not occludes[q, p])


def match_instances(iou: torch.Tensor, threshold: float = 0.5) -> list[int | None]:
    """Greedy one-to-one matching, predictions taken in their (score) order, each taking the free
    ground truth it overlaps most if that IoU reaches ``threshold``.

    Args:
        iou: ``(P, G)`` amodal mask IoU of every prediction with every ground truth.

    Returns:
        ``G`` entries: the index of the prediction matched to each ground truth, or ``None``.
    """
    match: list[int | None] = [None] * iou.shape[1]
    taken = torch.zeros(iou.shape[1], dtype=torch.bool)
    for p in range(iou.shape[0] if iou.shape[1] else 0):
        candidates = torch.where(taken, -1.0, iou[p].double())
        g = int(torch.argmax(candidates))
        if candidates[g] >= threshold:
            taken[g] = True
            match[g] = p
    return match


def order_accuracy(
    images: Sequence[Mapping[str, Any]],
    annotations: Sequence[Mapping[str, Any]],
    predictions: Sequence[Mapping[str, Any]],
) -> OrderAccuracy | str:
    """Pairwise order accuracy of ``predictions`` (COCO results with ``segmentation``: amodal and
    ``visible_mask``) against a canonical split's ``images`` and ``annotations``.

    Per image, each non-crowd ground-truth instance is matched to a prediction of any category
    (:func:`match_instances` on pycocotools' mask IoU, predictions by score), the relation of the
    matched predictions is computed from their amodal and visible masks
    (:func:`occlusion_relation`) and every true pair (:func:`true_pairs`) is checked against it.

    Returns:
        :class:`OrderAccuracy`, or the reason it is unavailable (no order annotation in the split,
        predictions without ``visible_mask``).
    """
    by_image: dict[int, list[Mapping[str, Any]]] = {}
    for annotation in annotations:
        if not annotation.get("iscrowd", 0):
            by_image.setdefault(int(annotation["image_id"]), []).append(annotation)
    sources = {ground_truth_depths(group)[0] for group in by_image.values()} - {""}
    if not sources:
        return "the ground truth has no occlusion order (depth_order, COCOA's order or KINS 2020's ico_id)"
    missing = next((k for k, p in enumerate(predictions) if "visible_mask" not in p), None)
    if missing is not None:
        return f"predictions have no 'visible_mask' (entry {missing}): the relation needs amodal and visible masks"
    predicted: dict[int, list[tuple[int, Mapping[str, Any]]]] = {}
    for index, prediction in enumerate(predictions):
        predicted.setdefault(int(prediction["image_id"]), []).append((index, prediction))
    result = OrderAccuracy(source=", ".join(sorted(sources)))
    for image in images:
        group = by_image.get(int(image["id"]), [])
        source, depths = ground_truth_depths(group)
        if not source:
            continue
        height, width = int(image["height"]), int(image["width"])
        truth_rles = [_rle(a["segmentation"], height, width, f"ground truth annotation {a.get('id')}") for a in group]
        truth_visible = [
            _rle(a["visible_mask"], height, width, f"ground truth annotation {a.get('id')}") for a in group
        ]
        pairs = true_pairs(_dense(truth_rles, height, width), _dense(truth_visible, height, width), depths)
        entries = sorted(predicted.get(int(image["id"]), []), key=lambda item: -float(item[1]["score"]))
        amodal = [_rle(entry["segmentation"], height, width, f"predictions entry {k}") for k, entry in entries]
        iou = mask_utils.iou(amodal, truth_rles, [0] * len(truth_rles)) if amodal and truth_rles else []
        match = match_instances(torch.as_tensor(np.asarray(iou, np.float64)).reshape(len(amodal), len(truth_rles)))
        rows = sorted(p for p in match if p is not None)
        visible = [
            _rle(entries[p][1]["visible_mask"], height, width, f"predictions entry {entries[p][0]}") for p in rows
        ]
        relation = occlusion_relation(_dense([amodal[p] for p in rows], height, width), _dense(visible, height, width))
        place = {p: k for k, p in enumerate(rows)}
        result.add(pairs, [None if p is None else place[p] for p in match], relation.occludes)
    return result


def _rle(segmentation: Any, height: int, width: int, where: str) -> dict[str, Any]:
    try:
        return to_rle(segmentation, height, width)
    except (TypeError, ValueError) as error:
        raise InputError(f"{where}: bad mask for the occlusion order ({error})") from None


def _dense(rles: Sequence[Mapping[str, Any]], height: int, width: int) -> torch.Tensor:
    """``(K, H, W)`` bool masks of ``rles`` (``(0, height, width)`` when there are none)."""
    if not rles:
        return torch.zeros(0, height, width, dtype=torch.bool)
    return torch.from_numpy(mask_utils.decode(list(rles))).permute(2, 0, 1).bool()


def _overlaps(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """``(A, B)`` int64 pixel counts of ``first[a] & second[b]`` for bool ``(A, N)`` and ``(B, N)``:
    one float32 matrix product (float64 from ``N = 2**24`` on, where float32 stops counting exactly)."""
    dtype = torch.float32 if first.shape[1] < 2**24 else torch.float64
    return (first.to(dtype) @ second.to(dtype).T).round().long()


def _binary(masks: torch.Tensor) -> torch.Tensor:
    return masks if masks.dtype == torch.bool else masks > 0.5
