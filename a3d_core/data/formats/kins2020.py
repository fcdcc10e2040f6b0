"""KINS 2020 update: ``update_train_2020.json`` and ``update_test_2020.json``.

Each annotation: ``a_segm`` (AMODAL polygons), ``a_bbox``, ``i_segm`` (VISIBLE polygons),
``i_bbox``, ``a_area``/``i_area``, ``oco_id`` (occlusion cluster id), ``ico_id`` (depth order
inside the cluster; 0 = overlaps nothing), ``category_id``, ``image_id``, ``id``. ``oco_id`` and
``ico_id`` are kept in the canonical annotation's ``source`` dict.
"""

from a3d_core.data.formats.coco_style import CocoStyleLayout

KINS2020 = CocoStyleLayout(
    name="kins2020",
    title="KINS 2020",
    amodal_key="a_segm",
    visible_key="i_segm",
    bbox_key="a_bbox",
    expected="annotations with 'a_segm' (amodal polygons) and 'i_segm' (visible polygons)",
    metadata_keys=("oco_id", "ico_id"),
)
