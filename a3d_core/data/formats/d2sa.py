"""D2SA (D2S amodal, Follmann et al.) and COCOA-cls: the same annotation layout.

D2SA files: ``D2S_amodal_training_rot0.json``, ``D2S_amodal_augmented.json`` (merge both into
one training split), ``D2S_amodal_validation.json`` (the test set of the literature); 60
classes. COCOA-cls: ``COCO_amodal_{train,val}2014_with_classes.json`` over the 80 COCO classes.

Each annotation: ``segmentation`` = AMODAL mask (RLE, polygons accepted), ``bbox`` = amodal box,
``visible_mask`` (RLE or polygons), ``invisible_mask``, ``occlude_rate``, ``category_id``. Extra
keys (``occl_depth``, ``amodal_region``, ``amodal_base``, ...) are ignored. An annotation without
``visible_mask`` is taken as unoccluded (as COCOA does), and counted in the report's notes.
"""

from a3d_core.data.formats.coco_style import CocoStyleLayout

_EXPECTED = "annotations with 'segmentation' (amodal mask) and 'visible_mask'"

D2SA = CocoStyleLayout(
    name="d2sa",
    title="D2SA",
    amodal_key="segmentation",
    visible_key="visible_mask",
    bbox_key="bbox",
    expected=_EXPECTED,
    visible_optional=True,
)

COCOA_CLS = CocoStyleLayout(
    name="cocoa-cls",
    title="COCOA-cls",
    amodal_key="segmentation",
    visible_key="visible_mask",
    bbox_key="bbox",
    expected=_EXPECTED,
    visible_optional=True,
)
