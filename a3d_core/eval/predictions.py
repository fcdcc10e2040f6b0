"""The two-stage network's predictions as COCO results, the format ``a3d evaluate --predictions`` reads.

Data flows formats -> records -> datasets -> model -> predictions -> eval / io: the conversion
sits here, below both training (fine-tuning validates on these results) and the ``predict``
pipeline (which writes them to ``predictions.json``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from a3d_core.data.canonical import encode_mask


def detections_to_results(
    detections: Mapping[str, torch.Tensor],
    image_id: int,
    category_id_of_label: Sequence[int],
    score_threshold: float = 0.0,
    mask_threshold: float = 0.5,
) -> list[dict[str, Any]]:
    """One image's eval-mode output of the two-stage network -> COCO results entries.

    Args:
        detections: ``boxes`` ``(K, 4)`` xyxy, ``labels`` ``(K,)`` in ``1..C``, ``scores`` ``(K,)``,
            ``amodal_masks`` and ``visible_masks`` ``(K, H, W)`` probabilities.
        category_id_of_label: ``category_id_of_label[l - 1]`` is the category id of label ``l``.
        score_threshold: detections scoring below it are left out.
        mask_threshold: probabilities above it are inside a mask.

    Returns:
        per kept detection ``image_id``, ``category_id``, ``score``, ``bbox`` (amodal
        ``[x, y, w, h]``), ``segmentation`` (amodal RLE), ``visible_mask`` (RLE), in score order.
    """
    results = []
    scores = detections["scores"].detach().cpu()
    boxes = detections["boxes"].detach().cpu()
    labels = detections["labels"].detach().cpu()
    amodal = (detections["amodal_masks"].detach() > mask_threshold).cpu().numpy()
    visible = (detections["visible_masks"].detach() > mask_threshold).cpu().numpy()
    for k in torch.argsort(scores, descending=True, stable=True).tolist():
        score = float(scores[k])
        if score < score_threshold:
            continue
        x0, y0, x1, y1 = (float(v) for v in boxes[k])
        results.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_id_of_label[int(labels[k]) - 1]),
                "score": round(score, 6),
                "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                "segmentation": encode_mask(amodal[k]),
                "visible_mask": encode_mask(visible[k]),
            }
        )
    return results
