"""Evaluation (paper 4.2): COCO AP/AR with pycocotools' exact numbers, mIoU, mIoU_occ, reports.

Entry points: :func:`a3d_core.eval.evaluate.evaluate_dataset` (what ``a3d evaluate`` runs) and
:func:`a3d_core.eval.coco_inputs.evaluate_coco` (``COCOeval`` on COCO JSON). See docs/evaluate.md.
"""
