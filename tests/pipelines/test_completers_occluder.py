"""A checkpoint completer with an occluder-aware stage 2: every instance of the image hides the others,
completed or kept as its visible mask."""

from __future__ import annotations

from pathlib import Path

import torch

from a3d_core.pipelines.completers import load_checkpoint_completer
from tests.model.tiny_scenes import write_pretrain_checkpoint
from tests.pipelines.test_completers import _instances


def test_an_instance_kept_as_its_visible_mask_still_hides_the_completed_one(tmp_path: Path) -> None:
    checkpoint = write_pretrain_checkpoint(tmp_path / "pretrain.pt", ["car", "chair"], occluder_input=True)
    completer = load_checkpoint_completer(checkpoint, device="cpu", unknown_category="visible")
    batches = []
    completer.stage2.register_forward_pre_hook(lambda _module, inputs: batches.append(inputs[0]))
    image, boxes, visible = _instances()
    completer.complete([image], [boxes], [visible], [["car", "car"]])
    completer.complete([image], [boxes], [visible], [["cyclist", "car"]])
    both, only_car = batches
    assert both["occluder"].shape == (2, 1, 32, 32) and only_car["occluder"].shape == (1, 1, 32, 32)
    assert only_car["occluder"][0].any()  # the cyclist's visible mask reaches into the car's crop
    assert torch.equal(only_car["occluder"][0], both["occluder"][1])
