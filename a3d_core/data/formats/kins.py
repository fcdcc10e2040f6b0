"""KINS (Qi et al., CVPR 2019): ``instances_train.json`` and ``instances_val.json``.

Images are KITTI object ``training/image_2`` (train) and ``testing/image_2`` (val). Each
annotation: ``segmentation`` = AMODAL polygons, ``bbox`` = amodal box, ``inmodal_seg`` = VISIBLE
mask (RLE), ``inmodal_bbox``, ``area``, ``iscrowd``, ``category_id``, ``image_id``, ``id``.
Unknown fields (some files carry an image-level ``amodal_full``) are ignored. Categories as in the
file: 1 cyclist, 2 pedestrian, 4 car, 5 tram, 6 truck, 7 van, 8 misc.
"""

from a3d_core.data.formats.coco_style import CocoStyleLayout

KINS = CocoStyleLayout(
    name="kins",
    title="KINS",
    amodal_key="segmentation",
    visible_key="inmodal_seg",
    bbox_key="bbox",
    expected="annotations with 'segmentation' (amodal polygons) and 'inmodal_seg' (visible RLE)",
)
