"""The one pass over a single-object split and the two results derived from it."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from a3d_core.errors import InputError
from a3d_core.eval.instances import (
    CompletedInstances,
    collect_instances,
    evaluate_amodal,
    evenly_spaced,
    score_instances,
)


class Squares(Dataset):
    """4 x 4 instances: amodal = the left half; visible = its top-left quarter (0), all of it (1), ..."""

    def __init__(self, count: int = 5) -> None:
        self.amodal = torch.zeros(count, 1, 4, 4)
        self.amodal[:, :, :, :2] = 1
        self.visible = self.amodal.clone()
        self.visible[::2, :, 2:, :] = 0  # even instances: the bottom half is hidden
        self.category = torch.arange(count) % 2
        self.object_index = np.arange(count) // 2
        self.view_id = np.arange(count) % 2
        self.elevation = np.full(count, 30.0)
        self.azimuth = np.arange(count) * 15.0

    def __len__(self) -> int:
        return len(self.amodal)

    def __getitem__(self, index: int) -> dict:
        return {
            "rgb": torch.zeros(3, 4, 4),
            "visible": self.visible[index],
            "amodal": self.amodal[index],
            "category": self.category[index],
        }


class LeftColumn(nn.Module):
    """Predicts the first column only: IoU 1/2 against the left half; a camera per instance."""

    def forward(self, batch: dict) -> dict:
        mask = torch.zeros_like(batch["amodal"][:, 0])
        mask[:, :, 0] = 0.9
        count = len(mask)
        camera = SimpleNamespace(
            elevation=torch.full((count,), math.pi / 6), azimuth=torch.zeros(count), distance=torch.full((count,), 2.0)
        )
        return {"amodal_mask": mask, "viewpoint": camera, "vertices": torch.ones(count, 3, 3)}


def test_one_pass_scores_the_model_the_visible_mask_and_the_hidden_part() -> None:
    scores = score_instances(LeftColumn(), Squares(), device="cpu", batch_size=2, keep_meshes=True)
    assert scores.iou.tolist() == [0.5] * 5
    assert scores.visible_iou.tolist() == [0.5, 1.0, 0.5, 1.0, 0.5]
    # hidden part of even instances: the bottom-left 2 x 2; the prediction covers its first column
    assert scores.hidden_iou[::2].tolist() == [0.5] * 3 and scores.hidden_iou[1::2].isnan().all()
    assert scores.category.tolist() == [0, 1, 0, 1, 0]
    assert scores.elevation.tolist() == pytest.approx([30.0] * 5) and scores.vertices.shape == (5, 3, 3)


def test_evaluate_amodal_and_collect_instances_are_the_same_pass() -> None:
    model, dataset = LeftColumn().train(), Squares()
    evaluation = evaluate_amodal(
        model, dataset, ["cube", "ball"], split="val", device=torch.device("cpu"), batch_size=2
    )
    table = collect_instances(model, dataset, batch_size=3, keep_meshes=False)
    assert model.training  # each puts the model back in its former mode
    assert evaluation.instances == len(table) == 5
    assert evaluation.model.per_category == {"cube": 0.5, "ball": 0.5}
    assert evaluation.visible_baseline.per_category == {"cube": 0.5, "ball": 1.0}
    assert evaluation.as_metrics()["visible_baseline/miou"] == pytest.approx(0.75)
    assert table.iou.tolist() == [0.5] * 5 and table.vertices is None
    assert table.predicted_elevation.tolist() == pytest.approx([30.0] * 5)
    assert table.azimuth.tolist() == [0.0, 15.0, 30.0, 45.0, 60.0] and table.object_index.tolist() == [0, 0, 1, 1, 2]


def test_metadata_is_read_through_subsets_and_empty_splits_are_refused() -> None:
    table = collect_instances(LeftColumn(), evenly_spaced(Squares(), 3))
    assert table.azimuth.tolist() == [0.0, 30.0, 60.0] and table.view_id.tolist() == [0, 0, 0]
    with pytest.raises(InputError, match="'test' has no instances"):
        evaluate_amodal(LeftColumn(), Subset(Squares(), []), ["cube"], split="test", device=torch.device("cpu"))
    with pytest.raises(InputError, match="no instances to evaluate"):
        collect_instances(LeftColumn(), Subset(Squares(), []))


def test_completed_instances_score_each_instance_against_counted_pixels() -> None:
    amodal = torch.zeros(2, 4, 4)
    amodal[0, :2] = 1  # 8 pixels
    amodal[1, :, :1] = 1  # 4 pixels
    visible = amodal.clone()
    visible[0, 1] = 0  # row 1 of the first instance is hidden (4 pixels); the second is all visible
    predicted = torch.zeros(2, 4, 4)
    predicted[0, :3] = 0.9  # 12 pixels: all 8 of the amodal mask, 4 beyond it
    predicted[1, :2, :1] = 0.7  # 2 of its 4 pixels
    instances = CompletedInstances()
    instances(
        torch.zeros(3, 4, 4), {"amodal_masks": amodal, "masks": visible, "image_id": 7}, {"amodal_masks": predicted}
    )
    instances(
        torch.zeros(3, 4, 4),
        {"amodal_masks": amodal[:1], "masks": visible[:1], "image_id": 9},
        {"amodal_masks": amodal[:1]},
    )
    iou, hidden, image = instances.arrays()
    np.testing.assert_allclose(iou, [8 / 12, 2 / 4, 1.0])
    # hidden part: predicted minus visible (row 1 and row 2: 8 pixels) against the 4 hidden pixels
    np.testing.assert_allclose(hidden[[0, 2]], [4 / 8, 1.0])
    assert math.isnan(hidden[1])  # nothing of the second instance is hidden
    assert image.tolist() == [7, 7, 9]
    assert all(len(array) == 0 for array in CompletedInstances().arrays())
