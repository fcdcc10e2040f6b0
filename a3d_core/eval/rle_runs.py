"""Masks as foreground runs, and exact mask intersections from runs, in torch.

A COCO RLE lists alternating background/foreground run lengths over the column-major flattened
mask (pixel ``p = x * H + y``). Intersecting two masks from their runs costs time in the number of
runs (about the mask's width) rather than its area, which is what makes pycocotools' ``rleIou``
fast; this module does the same in vectorised torch, for millions of pairs at once:

``|a ∩ b| = Σ_i F_b(end_i) - F_b(start_i)`` over the runs ``[start_i, end_i)`` of ``a``, where
``F_b(p)`` is the number of foreground pixels of ``b`` before ``p`` (a ``searchsorted`` over
``b``'s run starts plus a prefix sum of its run lengths). All arithmetic is on int64.

The compressed ``counts`` strings are parsed with NumPy, vectorised over all masks: each count is
a little-endian sequence of 5-bit groups (``char - 48``, bit 0x20 = more follows, bit 0x10 of
the last group = negative), and counts from the third on are stored as differences to the count
two places before (pycocotools ``rleFrString``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

_PARSE_BATCH = 512  # masks parsed per NumPy pass: large passes fall out of cache


@dataclass
class RunTable:
    """Foreground runs of ``M`` masks, ``R`` runs in all, ordered by mask then position.

    Attributes:
        start: ``(R,)`` int64 first pixel of each run (column-major flat index).
        length: ``(R,)`` int64 run length (> 0).
        mask: ``(R,)`` int64 mask of each run.
        first: ``(M,)`` int64 index of each mask's first run; count: ``(M,)`` its number of runs.
        area: ``(M,)`` int64 foreground pixels per mask.
        before: ``(R + 1,)`` int64 foreground pixels of all runs before run ``r`` (global prefix).
    """

    start: torch.Tensor
    length: torch.Tensor
    mask: torch.Tensor
    first: torch.Tensor
    count: torch.Tensor
    area: torch.Tensor
    before: torch.Tensor

    def to(self, device: torch.device | str) -> "RunTable":
        return RunTable(**{name: value.to(device) for name, value in vars(self).items()})


def _chain_sums(values: np.ndarray, chain: np.ndarray) -> np.ndarray:
    """Running sums of ``values`` restarting wherever ``chain`` (sorted) changes."""
    running = np.cumsum(values)
    starts = np.flatnonzero(np.concatenate(([True], chain[1:] != chain[:-1]))) if chain.size else np.zeros(0, np.int64)
    before = (running - values)[starts]
    return running - np.repeat(before, np.diff(np.append(starts, chain.size)))


class CountsError(ValueError):
    """A malformed compressed counts string; ``index`` is its position in the list parsed."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def _decode_counts(strings: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compressed counts strings -> all counts concatenated, the string of each count and its
    position within its string.

    Raises:
        CountsError: naming the first malformed string (found only once one is known to be there).
    """
    lengths = np.fromiter((len(s) for s in strings), dtype=np.int64, count=len(strings))
    chars = np.frombuffer(b"".join(strings), dtype=np.uint8) - np.uint8(48)  # uint8: one byte per pass
    if chars.size and chars.max() > 63:
        first_bad = np.flatnonzero(chars > 63)[0]
        raise CountsError(
            "RLE counts hold characters outside the compressed alphabet",
            int(np.searchsorted(np.cumsum(lengths), first_bad, side="right")),
        )
    ends = (chars & 0x20) == 0
    string_end = np.cumsum(lengths) - 1
    nonempty = np.flatnonzero(lengths > 0)
    if not ends[string_end[nonempty]].all():
        raise CountsError("RLE counts string ends inside a number", int(nonempty[~ends[string_end[nonempty]]][0]))
    last_char = np.flatnonzero(ends)
    first_char = np.concatenate(([0], last_char[:-1] + 1))
    token_chars = last_char - first_char + 1
    values = np.zeros(last_char.size, np.int64)
    for k in range(int(token_chars.max()) if token_chars.size else 0):
        longer = np.flatnonzero(token_chars > k)
        values[longer] |= (chars[first_char[longer] + k] & 0x1F).astype(np.int64) << (5 * k)
    negative = (chars[last_char] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * token_chars[negative])

    cum_ends = np.concatenate(([0], np.cumsum(ends)))
    tokens_per_string = cum_ends[np.cumsum(lengths)] - cum_ends[np.cumsum(lengths) - lengths]
    if (tokens_per_string == 0).any():
        raise CountsError("empty RLE counts string", int(np.flatnonzero(tokens_per_string == 0)[0]))
    string_of_token = np.repeat(np.arange(len(strings)), tokens_per_string)
    position = np.arange(values.size) - (np.cumsum(tokens_per_string) - tokens_per_string)[string_of_token]
    # counts[m] = values[m] + counts[m - 2] for m > 2: running sums along the odd positions from
    # m = 1 and the even positions from m = 2, per string; counts[0] stands alone.
    counts = values.copy()
    for parity, first in ((1, 1), (0, 2)):
        chained = np.flatnonzero((position >= first) & (position % 2 == parity))
        counts[chained] = _chain_sums(values[chained], string_of_token[chained])
    if (counts < 0).any():
        raise CountsError(
            "RLE counts decode to a negative run length", int(string_of_token[np.flatnonzero(counts < 0)[0]])
        )
    return counts, string_of_token, position


def parse_runs(rles: Sequence[Mapping[str, Any]]) -> RunTable:
    """Compressed RLEs (``counts`` as bytes) -> their foreground :class:`RunTable` (CPU).

    Raises:
        CountsError: a malformed counts string, with its position in ``rles``.
    """
    starts, lengths, masks, areas = [], [], [], []
    for batch_start in range(0, len(rles), _PARSE_BATCH):
        batch = rles[batch_start : batch_start + _PARSE_BATCH]
        strings = [r["counts"] if isinstance(r["counts"], bytes) else str(r["counts"]).encode("ascii") for r in batch]
        try:
            counts, string_of_count, position = _decode_counts(strings)
        except CountsError as error:
            raise CountsError(str(error), batch_start + error.index) from None
        exclusive = np.cumsum(counts) - counts
        run_start = exclusive - exclusive[np.flatnonzero(position == 0)][string_of_count] if counts.size else exclusive
        foreground = np.flatnonzero((position & 1).astype(bool) & (counts > 0))
        owner = string_of_count[foreground]
        starts.append(run_start[foreground])
        lengths.append(counts[foreground])
        masks.append(owner + batch_start)
        areas.append(np.bincount(owner, weights=counts[foreground], minlength=len(batch)).astype(np.int64))
    start = torch.from_numpy(np.concatenate(starts) if starts else np.zeros(0, np.int64))
    length = torch.from_numpy(np.concatenate(lengths) if lengths else np.zeros(0, np.int64))
    mask = torch.from_numpy(np.concatenate(masks) if masks else np.zeros(0, np.int64))
    count = torch.bincount(mask, minlength=len(rles))
    first = torch.cumsum(count, 0) - count
    before = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(length, 0)])
    area = torch.from_numpy(np.concatenate(areas) if areas else np.zeros(0, np.int64))
    return RunTable(start=start, length=length, mask=mask, first=first, count=count, area=area, before=before)


def run_intersections(
    a: RunTable, b: RunTable, a_index: torch.Tensor, b_index: torch.Tensor, pixels: int, chunk: int = 2**22
) -> torch.Tensor:
    """Exact ``|a_i ∩ b_j|`` for pairs of masks given by their runs.

    Only runs of one mask between the first and last foreground pixel of the other can meet it;
    each pair walks whichever of its two masks has fewer such runs and looks them up in the other.

    Args:
        a, b: run tables (on the same device as the indices).
        a_index, b_index: ``(P,)`` int64, pair ``p`` intersects mask ``a_index[p]`` of ``a`` with
            mask ``b_index[p]`` of ``b`` (same image size).
        pixels: an upper bound on any mask's pixel count (``H * W``), to key runs by mask.
        chunk: at most about this many runs are expanded at once (bounds memory).

    Returns:
        ``(P,)`` int64 intersection pixel counts.
    """
    out = torch.zeros(len(a_index), dtype=torch.int64, device=a_index.device)
    if len(a_index) == 0:
        return out
    stride = int(pixels) + 1
    a_keys, b_keys = a.mask * stride + a.start, b.mask * stride + b.start
    a_low, a_count = _runs_within(a, a_keys, a_index, b, b_index, stride)
    b_low, b_count = _runs_within(b, b_keys, b_index, a, a_index, stride)
    walk_a = a_count <= b_count
    out[walk_a] = _walk(a, b, b_keys, a_low[walk_a], a_count[walk_a], b_index[walk_a], stride, chunk)
    out[~walk_a] = _walk(b, a, a_keys, b_low[~walk_a], b_count[~walk_a], a_index[~walk_a], stride, chunk)
    return out


def _runs_within(
    a: RunTable, a_keys: torch.Tensor, a_index: torch.Tensor, b: RunTable, b_index: torch.Tensor, stride: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """First run and number of runs of mask ``a_index[p]`` inside the extent of ``b_index[p]``."""
    if len(b.start) == 0 or len(a.start) == 0:
        return torch.zeros_like(a_index), torch.zeros_like(a_index)
    b_has = b.count[b_index] > 0
    b_first = b.first[b_index].clamp(max=len(b.start) - 1)
    b_last = (b.first[b_index] + b.count[b_index] - 1).clamp(min=0)
    a_base = a_index * stride
    low = torch.searchsorted(a_keys + a.length, a_base + b.start[b_first], right=True)
    high = torch.searchsorted(a_keys, a_base + b.start[b_last] + b.length[b_last], right=False)
    return low, torch.where(b_has, (high - low).clamp(min=0), torch.zeros_like(low))


def _walk(
    a: RunTable,
    b: RunTable,
    b_keys: torch.Tensor,
    low: torch.Tensor,
    count: torch.Tensor,
    b_index: torch.Tensor,
    stride: int,
    chunk: int,
) -> torch.Tensor:
    """Intersections walking runs ``low[p] .. low[p] + count[p]`` of ``a`` and looking them up in
    mask ``b_index[p]`` of ``b``."""
    device = low.device
    out = torch.zeros(len(low), dtype=torch.int64, device=device)
    if len(low) == 0:
        return out
    pair_end = torch.cumsum(count, 0)
    targets = torch.arange(chunk, max(int(pair_end[-1]), chunk), chunk, device=device)
    cuts = torch.searchsorted(pair_end, targets, right=True)
    edges = sorted({0, len(low), *cuts.tolist()})
    for first_pair, last_pair in zip(edges[:-1], edges[1:]):
        pairs = torch.arange(first_pair, last_pair, device=device)
        sizes = count[pairs]
        owner = torch.repeat_interleave(pairs, sizes)
        local = torch.arange(len(owner), device=device) - torch.repeat_interleave(torch.cumsum(sizes, 0) - sizes, sizes)
        run = low[owner] + local
        run_start = b_index[owner] * stride + a.start[run]
        covered = _cumulative(b, b_keys, torch.cat([run_start + a.length[run], run_start]))
        out.index_add_(0, owner, covered[: len(run)] - covered[len(run) :])
    return out


def _cumulative(b: RunTable, b_keys: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Foreground pixels of all of ``b``'s runs before key ``query = mask * stride + pixel``.

    Differences of two queries on the same mask give that mask's foreground between them: runs
    of earlier masks lie entirely before any query on a later mask, so they cancel.
    """
    run = torch.searchsorted(b_keys, query, right=True) - 1
    safe = run.clamp(min=0)
    partial = (query - b_keys[safe]).clamp(min=0).minimum(b.length[safe])
    return torch.where(run >= 0, b.before[safe] + partial, torch.zeros_like(query))
