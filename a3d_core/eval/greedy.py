"""COCO's greedy matching, solved for many matching problems at once in rounds (paper 4.2).

``COCOeval.evaluateImg`` matches, for every (image, category, area range, IoU threshold), the
detections one by one in score order: each takes the free ground truth it prefers most (highest
IoU at or above the threshold, regular before ignored, the later one on equal IoU); a crowd stays
free after a match. Run literally, that is a loop over detections. Here the problems are lists of
*candidate* (detection, ground truth) pairs only, and they are solved in rounds:

1. every unresolved detection picks its preferred candidate among the still free ones;
2. a detection is a *conflict* when an earlier unresolved detection of its problem picked the
   same non-crowd ground truth; every detection ranked before the problem's first conflict keeps
   its pick: the earlier ones took other ground truths, and removing candidates a detection did
   not pick does not change its pick, so the picks are those of the sequential loop;
3. their non-crowd picks are taken; resolved detections and taken candidates are dropped.

Every round resolves at least the first unresolved detection of each problem, and a detection left
without candidates is unmatched, so the rounds end; there are at most as many as the longest
chain of detections in one problem that each want the ground truth the one before took (a few on
COCO data), each a handful of vectorised operations over the remaining candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_REGULAR_BIT = 1 << 62  # above the bits of any float64 in [0, 1]
_NO_RANK = 1 << 62  # above any rank: "no taker yet", "no conflict"


def preference_keys(iou: torch.Tensor, regular: torch.Tensor) -> torch.Tensor:
    """int64 keys ordered as ``evaluateImg`` prefers candidates: regular before ignored ground
    truth, then higher IoU. Non-negative float64 bit patterns are ordered like their values.

    Args:
        iou: ``(E,)`` float64 in ``[0, 1]``. regular: ``(E,)`` bool, the ground truth is not ignored.
    """
    bits = torch.where(iou > 0, iou, torch.zeros_like(iou)).view(torch.int64)  # -0.0 keys as 0.0
    return bits + regular.to(torch.int64) * _REGULAR_BIT


@dataclass
class Candidates:
    """Candidate pairs of many matching problems, ``E`` of them.

    Problems are (instance, group) pairs: an instance is one (area range, threshold) setting and a
    group one (image, category). Detection ``slot`` (``S`` of them) belongs to group
    ``slot_group[slot]`` at rank ``slot_rank[slot]`` in its score order; ground truth ``g`` (``G``
    of them, numbered in annotation order) is a crowd when ``crowd[g]``.

    Attributes:
        detection: ``(E,)`` int64 ``instance * S + slot``, non-decreasing.
        ground_truth: ``(E,)`` int64 ``g``; candidates are pairs whose IoU clears the instance's
            threshold.
        key: ``(E,)`` int64 preference (:func:`preference_keys`).
        slot_group, slot_rank: ``(S,)`` int64. crowd: ``(G,)`` bool.
        num_groups: number of groups.
    """

    detection: torch.Tensor
    ground_truth: torch.Tensor
    key: torch.Tensor
    slot_group: torch.Tensor
    slot_rank: torch.Tensor
    crowd: torch.Tensor
    num_groups: int

    def keep(self, chosen: torch.Tensor) -> None:
        """Drop every candidate but the ``chosen`` ones (a bool mask)."""
        self.detection, self.ground_truth, self.key = (
            self.detection[chosen],
            self.ground_truth[chosen],
            self.key[chosen],
        )


def solve(candidates: Candidates, num_instances: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The greedy matches of every problem (``candidates`` are consumed).

    Returns:
        ``(M,)`` detection ids (``instance * S + slot``) that matched and ``(M,)`` the ground
        truth each took; detections not listed are unmatched.
    """
    device = candidates.key.device
    num_slots, num_gt = len(candidates.slot_group), len(candidates.crowd)
    taken = torch.zeros(num_instances * num_gt, dtype=torch.bool, device=device)
    first_taker = torch.full((num_instances * num_gt,), _NO_RANK, dtype=torch.int64, device=device)
    first_conflict = torch.full((num_instances * candidates.num_groups,), _NO_RANK, dtype=torch.int64, device=device)
    matched, chosen = [], []
    while candidates.key.numel():
        detections, inverse = torch.unique_consecutive(candidates.detection, return_inverse=True)
        count = len(detections)
        best = torch.full((count,), -1, dtype=torch.int64, device=device).scatter_reduce(
            0, inverse, candidates.key, "amax"
        )
        is_best = candidates.key == best[inverse]
        latest = torch.full((count,), -1, dtype=torch.int64, device=device).scatter_reduce(
            0, inverse[is_best], candidates.ground_truth[is_best], "amax"
        )  # on equal keys the later ground truth
        instance, slot = detections // num_slots, detections % num_slots
        gt = instance * num_gt + latest
        problem = instance * candidates.num_groups + candidates.slot_group[slot]
        rank = candidates.slot_rank[slot]
        takes = ~candidates.crowd[latest]
        first_taker.scatter_reduce_(0, gt[takes], rank[takes], "amin")
        conflict = takes & (rank > first_taker[gt])
        first_conflict.scatter_reduce_(0, problem[conflict], rank[conflict], "amin")
        resolved = rank < first_conflict[problem]
        first_taker[gt[takes]] = _NO_RANK
        first_conflict[problem[conflict]] = _NO_RANK
        matched.append(detections[resolved])
        chosen.append(latest[resolved])
        taken[gt[resolved & takes]] = True
        element_instance = candidates.detection // num_slots
        candidates.keep(~resolved[inverse] & ~taken[element_instance * num_gt + candidates.ground_truth])
    if not matched:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return empty, empty
    return torch.cat(matched), torch.cat(chosen)
