"""Small binary-mask operations in numpy (no scipy): erosion and connected components.

Used by the scene composer to reject objects whose visible part is only slivers.
"""

from __future__ import annotations

import numpy as np


def erode(mask: np.ndarray) -> np.ndarray:
    """4-neighbour erosion of a bool ``(H, W)`` mask: a pixel stays when it and its 4 neighbours are set.

    Pixels outside the array count as unset, so the border row and column are always eroded.
    """
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, 1, constant_values=False)
    return mask & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]


def component_areas(mask: np.ndarray) -> list[int]:
    """Areas of the 4-connected components of a bool ``(H, W)`` mask, largest first.

    Works on horizontal runs: runs on adjacent rows whose column ranges overlap are joined
    (union-find over runs), so the cost grows with the number of runs, not of pixels.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"component_areas expects an (H, W) mask, got shape {mask.shape}")
    padded = np.pad(mask, ((0, 0), (1, 1)), constant_values=False).astype(np.int8)
    changes = np.diff(padded, axis=1)
    start_rows, start_cols = np.nonzero(changes == 1)
    _, end_cols = np.nonzero(changes == -1)  # both come out row-major, so run i is (start i, end i)
    if len(start_rows) == 0:
        return []
    parent = list(range(len(start_rows)))

    def find(run: int) -> int:
        while parent[run] != run:
            parent[run] = parent[parent[run]]
            run = parent[run]
        return run

    row_starts = np.searchsorted(start_rows, np.arange(mask.shape[0] + 1))
    for row in range(1, mask.shape[0]):
        above = range(row_starts[row - 1], row_starts[row])
        below = range(row_starts[row], row_starts[row + 1])
        i, j = above.start, below.start
        while i < above.stop and j < below.stop:
            if start_cols[i] < end_cols[j] and start_cols[j] < end_cols[i]:
                parent[find(i)] = find(j)
            if end_cols[i] < end_cols[j]:
                i += 1
            else:
                j += 1
    areas: dict[int, int] = {}
    for run, length in enumerate(end_cols - start_cols):
        root = find(run)
        areas[root] = areas.get(root, 0) + int(length)
    return sorted(areas.values(), reverse=True)
