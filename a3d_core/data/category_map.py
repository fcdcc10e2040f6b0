"""Which ShapeNet / built-in category a real dataset's class reuses (paper 3.7, Table 3).

Stage 2's shape decoders are per category and transfer by NAME (:mod:`a3d_core.model.shape`).
The real datasets name their classes differently from the 13 ShapeNet renders of Kato et al.
and the built-in shape library (:data:`a3d_core.data.shapes.CATEGORIES`): COCO says ``couch``
and ``tv`` where ShapeNet says ``sofa`` and ``display``. :data:`DEFAULT_CATEGORY_MAPS` is the
shipped table, one per dataset, class name -> the category whose pretrained decoder it reuses.

The rule behind the table: a class is mapped to the ShapeNetCore category that would hold its
objects, when that category is one of the 13 (the ShapeNetCore "car" synset holds vans, minivans
and pick-ups, so KINS' ``van`` and ``truck`` reuse ``car``; a bus, tram or train has a
ShapeNetCore category of its own, not among the 13, so it starts fresh). Classes with no such
category (people, animals, food, D2SA's groceries) start fresh. Class-agnostic COCOA's single
``object`` maps to nothing: its decoder starts fresh, while everything shared (encoders,
viewpoint estimator, edge refine) still comes from the prior. docs/twostage.md compares the
overlap counts with the paper's Table 3.

A user map (``--category-map FILE.json``) is a JSON object ``{dataset class: pretrained
category}`` (``null`` = start fresh); its entries override the shipped ones, which
``--no-category-map`` switches off. A class that is itself a pretrained category matches it
before any shipped entry (the built-in scenes use the 13 names themselves).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Sequence

from a3d_core.data.canonical import read_json
from a3d_core.errors import InputError

_VEHICLES = {"car": "car", "van": "car", "truck": "car"}

DEFAULT_CATEGORY_MAPS: dict[str, dict[str, str]] = {
    # KINS' 7 classes (cyclist, pedestrian, car, tram, truck, van, misc); KINS 2020 adds rider.
    "kins": dict(_VEHICLES),
    "kins2020": dict(_VEHICLES),
    # COCO's 80 class names (COCOA-cls); the other 70 have no ShapeNetCore category among the 13.
    "cocoa-cls": {
        "airplane": "airplane",
        "bench": "bench",
        "boat": "watercraft",
        "car": "car",
        "truck": "car",
        "chair": "chair",
        "couch": "sofa",
        "dining table": "table",
        "tv": "display",
        "cell phone": "telephone",
    },
    # 60 grocery products (bottles, packs, fruit, vegetables): none is one of the 13.
    "d2sa": {},
    # class-agnostic: one category, "object".
    "cocoa": {},
}
"""Dataset -> {class name: ShapeNet / built-in category}; the built-in scenes need no entry."""


def default_category_map() -> dict[str, str]:
    """All shipped tables in one ``{class name: category}`` (they agree wherever names repeat)."""
    merged: dict[str, str] = {}
    for table in DEFAULT_CATEGORY_MAPS.values():
        merged.update(table)
    return merged


def read_category_map(path: str | os.PathLike) -> dict[str, str | None]:
    """A ``{dataset class: pretrained category or null}`` JSON object; anything else raises InputError."""
    values = read_json(path)
    if not isinstance(values, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in values.items()
    ):
        raise InputError(
            f"{path}: expected a JSON object mapping dataset class names to pretrained category names "
            '(or null for a fresh start), e.g. {"couch": "sofa"}'
        )
    return values


@dataclass(frozen=True)
class CategoryMap:
    """How dataset classes find pretrained categories.

    Attributes:
        shipped: the default table (:func:`default_category_map`) is used.
        user: entries of a ``--category-map`` file, over the shipped ones.
        source: that file, for messages.
    """

    shipped: bool = True
    user: Mapping[str, str | None] | None = None
    source: str = "--category-map"

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, shipped: bool = True) -> "CategoryMap":
        """The shipped map (unless ``shipped`` is False) overridden by the file at ``path``, if any."""
        return cls(
            shipped,
            read_category_map(path) if path is not None else None,
            str(path) if path is not None else "--category-map",
        )

    def resolve(self, names: Sequence[str], available: Sequence[str]) -> dict[str, str]:
        """``{name: available category}`` for each of ``names`` that has one, in the order of ``names``.

        A name that is an ``available`` category is itself, unless the user map says otherwise;
        else the user entry, else the shipped one, when it is ``available``.

        Raises:
            InputError: a user entry whose class is not one of ``names`` or whose category is
                not ``available`` (a typo in the file, most likely).
        """
        user = dict(self.user or {})
        unknown_names = [name for name in user if name not in names]
        unknown_targets = sorted({target for target in user.values() if target is not None and target not in available})
        if unknown_names or unknown_targets:
            problems = [
                f"{unknown_names} are not classes here ({', '.join(names)})" if unknown_names else "",
                f"{unknown_targets} are not pretrained categories ({', '.join(available)})" if unknown_targets else "",
            ]
            raise InputError(f"{self.source}: " + "; ".join(part for part in problems if part))
        shipped = default_category_map() if self.shipped else {}
        resolved: dict[str, str] = {}
        for name in names:
            if name in user:
                target = user[name]
            elif name in available:
                target = name
            else:
                target = shipped.get(name)
            if target is not None and target in available:
                resolved[name] = target
        return resolved
