"""Completers: a checkpoint's stage 2 on given instances, categories through the map; the visible baseline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from a3d_core.data.category_map import CategoryMap
from a3d_core.errors import InputError
from a3d_core.model.a3d import load_a3d_from_checkpoint
from a3d_core.pipelines.completers import CompleterRequest, VisibleCompleter, build_completer, load_checkpoint_completer
from tests.model.tiny_scenes import write_pretrain_checkpoint, write_two_stage_checkpoint


def _instances(count: int = 2):
    image = torch.rand(3, 40, 48, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[4.0, 5.0, 30.0, 28.0], [20.0, 10.0, 44.0, 36.0]])[:count]
    visible = torch.zeros(count, 40, 48)
    visible[0, 8:20, 6:20] = 1.0
    if count > 1:
        visible[1, 14:30, 24:40] = 1.0
    return image, boxes, visible


def test_a_fine_tuned_checkpoint_completes_as_its_network_does(tmp_path: Path) -> None:
    checkpoint = write_two_stage_checkpoint(tmp_path / "model.pt", ["car", "chair"])
    completer = load_checkpoint_completer(checkpoint, device="cpu")
    image, boxes, visible = _instances()
    got = completer.complete([image], [boxes], [visible], [["chair", "car"]])[0]
    network = load_a3d_from_checkpoint(checkpoint).eval()
    with torch.no_grad():
        expected = network.complete([image], [boxes], [visible], [torch.tensor([2, 1])])[0]
    assert torch.equal(got["amodal_masks"], expected["amodal_masks"]) and torch.equal(
        got["vertices"], expected["vertices"]
    )
    assert torch.all(got["amodal_masks"] >= visible)  # the visible part is kept


def test_names_go_through_the_map_once_checked_for_the_whole_set(tmp_path: Path) -> None:
    checkpoint = write_pretrain_checkpoint(tmp_path / "pretrain.pt", ["car", "sofa"])
    completer = load_checkpoint_completer(checkpoint, CategoryMap(user={"pickup": "car"}), device="cpu")
    completer.check_categories(["pickup", "couch"])
    assert completer.decoders == {"pickup": "car", "couch": "sofa"}
    image, boxes, visible = _instances(1)
    only_couch = completer.complete([image], [boxes], [visible], [["couch"]])[0]  # a batch without the user map's class
    assert only_couch["amodal_masks"].shape == (1, 40, 48)
    with pytest.raises(InputError, match=r"no shape decoder for categories \['pedestrian'\] \(it has car, sofa\)"):
        completer.check_categories(["pickup", "pedestrian"])


def test_the_visible_baseline_returns_the_visible_masks_and_unknown_completers_are_refused() -> None:
    image, boxes, visible = _instances()
    assert torch.equal(
        VisibleCompleter().complete([image], [boxes], [visible], [["a", "b"]])[0]["amodal_masks"], visible
    )
    with pytest.raises(InputError, match=r"unknown completer 'oracle' \(known: checkpoint, visible, shapedict\)"):
        build_completer("oracle", CompleterRequest())
    with pytest.raises(InputError, match=r"absent\.pt: checkpoint not found"):
        build_completer("checkpoint", CompleterRequest(checkpoint=Path("absent.pt")))
