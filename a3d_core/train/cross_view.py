"""Pairs of views of one object, for the cross-view consistency loss (paper 3.7).

:class:`CrossViewPairs` wraps a single-object dataset (items with ``rgb``, ``visible``,
``amodal``, ``category``; a ``object_index`` array over items) and adds to each item another
view of the same object as ``rgb_pair``, ``visible_pair``, ``amodal_pair`` and
``category_pair`` (and ``elevation_pair``, ``azimuth_pair`` where the items carry their true
camera, for the camera sources that read it, and ``occluder_pair`` where they carry their
occluder mask, for ``ASMSettings.occluder_input``). The network renders the shape seen in the
first view with the viewpoint it predicts from the second and compares it with the second view's
amodal mask.

The partner of item ``i`` in epoch ``e`` is drawn from a generator seeded with
``(seed, e, i)``: the pairing is reproducible, independent of DataLoader workers and of the
order items are read in (so a resumed run pairs as the uninterrupted one did), and changes
from epoch to epoch through :meth:`CrossViewPairs.set_epoch`, which the training loop calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch.utils.data import Dataset

from a3d_core.errors import InputError
from a3d_core.train.distributed import set_dataset_epoch

PAIRED_KEYS = ("rgb", "visible", "amodal", "category")
PAIRED_OPTIONAL_KEYS = ("elevation", "azimuth", "occluder")


class CrossViewPairs(Dataset):
    """Each item of ``dataset`` with another view of the same object under ``<key>_pair``.

    Args:
        dataset: items are dicts holding :data:`PAIRED_KEYS`; ``dataset.object_index`` is an
            integer array of shape ``(len(dataset),)`` naming each item's object.
        seed: seeds the choice of partners.

    An object seen in a single view is paired with itself (the cross-view term then equals the
    single-view reconstruction term).
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        if seed < 0:
            raise ValueError(f"CrossViewPairs: seed must be >= 0, got {seed}")
        object_index = getattr(dataset, "object_index", None)
        if object_index is None:
            raise InputError(f"{type(dataset).__name__}: cross-view pairs need an object_index array over the items")
        object_index = np.asarray(object_index)
        if object_index.shape != (len(dataset),):
            raise InputError(
                f"{type(dataset).__name__}: object_index has shape {object_index.shape}, expected ({len(dataset)},)"
            )
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0
        order = np.argsort(object_index, kind="stable")
        objects, starts, counts = np.unique(object_index[order], return_index=True, return_counts=True)
        self._views_of_object = {
            int(obj): order[start : start + count] for obj, start, count in zip(objects, starts, counts)
        }
        self._object_index = object_index

    @property
    def categories(self) -> list[str]:
        return self.dataset.categories

    @property
    def object_index(self) -> np.ndarray:
        return self._object_index

    def set_epoch(self, epoch: int) -> None:
        """Draw new partners for ``epoch`` (and pass the epoch on to the wrapped dataset)."""
        self.epoch = epoch
        set_dataset_epoch(self.dataset, epoch)

    def partner(self, index: int) -> int:
        """The item paired with ``index`` in the current epoch: another view of the same object."""
        views = self._views_of_object[int(self._object_index[index])]
        others = views[views != index]
        if len(others) == 0:
            return index
        generator = np.random.default_rng([self.seed, self.epoch, index])
        return int(others[generator.integers(len(others))])

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        partner = self.dataset[self.partner(index)]
        for key in PAIRED_KEYS:
            item[f"{key}_pair"] = partner[key]
        for key in PAIRED_OPTIONAL_KEYS:
            if key in partner:
                item[f"{key}_pair"] = partner[key]
        return item
