"""Readers for the external amodal layouts, looked up by name in a lazy catalog.

``get_layout("kins")`` imports ``a3d_core.data.formats.kins`` only when asked (detectron2's
``DatasetCatalog`` idea: a name maps to a loader, no if-chain over names). Each layout turns one
annotation file into :class:`~a3d_core.data.formats.base.SourceAnnotations`: the file's images,
instances with their masks exactly as the file stores them, and categories. :func:`check_layout`
refuses a file of another layout, naming the one it looks like. Decoding, checking and writing
the canonical format happen in :mod:`a3d_core.data.prepare_real`.

Layouts (facts in ``FORMATS.md``)::

    kins        KINS (2019): amodal polygons ``segmentation``, visible RLE ``inmodal_seg``
    kins2020    KINS 2020 update: amodal ``a_segm`` and visible ``i_segm`` polygons
    d2sa        D2S amodal: ``segmentation`` (amodal) and ``visible_mask``
    cocoa-cls   COCOA with the 80 COCO classes: the D2SA layout
    cocoa       COCOA (Zhu et al.): per-image ``regions``, class-agnostic
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from a3d_core.data.formats.base import Layout, annotation_keys
from a3d_core.errors import InputError


@dataclass(frozen=True)
class LayoutEntry:
    """A catalog entry: enough to describe a layout without importing its reader."""

    name: str
    title: str
    target: str  # "module:attribute" of the Layout instance
    summary: str


_CATALOG: dict[str, LayoutEntry] = {
    entry.name: entry
    for entry in (
        LayoutEntry(
            "kins",
            "KINS",
            "a3d_core.data.formats.kins:KINS",
            "KINS (instances_train.json / instances_val.json; images: KITTI object image_2)",
        ),
        LayoutEntry(
            "kins2020",
            "KINS 2020",
            "a3d_core.data.formats.kins2020:KINS2020",
            "KINS 2020 update (update_train_2020.json / update_test_2020.json; images: KITTI image_2)",
        ),
        LayoutEntry(
            "d2sa",
            "D2SA",
            "a3d_core.data.formats.d2sa:D2SA",
            "D2S amodal (D2S_amodal_training_rot0.json, D2S_amodal_augmented.json, D2S_amodal_validation.json)",
        ),
        LayoutEntry(
            "cocoa-cls",
            "COCOA-cls",
            "a3d_core.data.formats.d2sa:COCOA_CLS",
            "COCOA with classes (COCO_amodal_{train,val}2014_with_classes.json; images: COCO 2014)",
        ),
        LayoutEntry(
            "cocoa",
            "COCOA",
            "a3d_core.data.formats.cocoa:COCOA",
            "COCOA, class-agnostic (COCO_amodal_{train,val,test}2014.json; images: COCO 2014)",
        ),
    )
}


def layout_names() -> list[str]:
    """The names of all known layouts, in catalog order."""
    return list(_CATALOG)


def layout_entry(name: str) -> LayoutEntry:
    """The catalog entry of ``name``; an unknown name raises :class:`InputError` listing the known."""
    try:
        return _CATALOG[name]
    except KeyError:
        raise InputError(f"unknown layout {name!r} (known: {', '.join(_CATALOG)})") from None


@lru_cache(maxsize=None)
def get_layout(name: str) -> Layout:
    """The reader of layout ``name``, imported on first use."""
    module_name, attribute = layout_entry(name).target.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def detect_layouts(data: Mapping[str, Any]) -> list[str]:
    """Names of the layouts whose annotation keys a parsed annotation file carries."""
    return [name for name in _CATALOG if get_layout(name).recognises(data)]


def check_layout(layout: Layout, data: Any, path: Path) -> None:
    """Raise :class:`InputError` naming ``path`` unless ``data`` is a file of ``layout``; when it
    is not, the message names the layout the file looks like (and its ``a3d prepare`` command)."""
    if not isinstance(data, dict):
        raise InputError(
            f"{path}: not a {layout.title} annotation file: the JSON is a {type(data).__name__}, "
            f"expected an object with 'images' and 'annotations' ({layout.expected})"
        )
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise InputError(
                f"{path}: not a {layout.title} annotation file: no '{key}' list (expected {layout.expected})"
            )
    if not data["annotations"] or layout.recognises(data):
        return
    others = [name for name in detect_layouts(data) if name != layout.name]
    if others:
        hint = f"it looks like a {get_layout(others[0]).title} file (use `a3d prepare {others[0]}`)"
    else:
        hint = f"its annotations have the keys {', '.join(sorted(annotation_keys(data)))}"
    raise InputError(f"{path}: not a {layout.title} annotation file: expected {layout.expected}; {hint}")
