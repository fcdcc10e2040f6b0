"""Completers: a checkpoint's stage 2 on given instances, categories through the map or the predicted class;
the visible baseline; how instances were handled."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from a3d_core.data.category_map import CategoryMap
from a3d_core.errors import InputError
from a3d_core.model.a3d import load_a3d_from_checkpoint
from a3d_core.pipelines.completers import (
    CompleterRequest,
    HandlingCounts,
    VisibleCompleter,
    build_completer,
    load_checkpoint_completer,
)
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
    assert got["shape_labels"].tolist() == [2, 1]


def test_names_go_through_the_map_once_checked_for_the_whole_set(tmp_path: Path) -> None:
    checkpoint = write_pretrain_checkpoint(tmp_path / "pretrain.pt", ["car", "sofa"])
    completer = load_checkpoint_completer(checkpoint, CategoryMap(user={"pickup": "car"}), device="cpu")
    completer.check_categories(["pickup", "couch"])
    assert completer.decoders == {"pickup": "car", "couch": "sofa"}
    image, boxes, visible = _instances(1)
    only_couch = completer.complete([image], [boxes], [visible], [["couch"]])[0]  # a batch without the user map's class
    assert only_couch["amodal_masks"].shape == (1, 40, 48)
    refusing = load_checkpoint_completer(checkpoint, CategoryMap(user={"pickup": "car"}), "cpu", "refuse")
    with pytest.raises(InputError, match=r"no shape decoder for categories \['pedestrian'\] \(it has car, sofa\)"):
        refusing.check_categories(["pickup", "pedestrian"])


def _completer_predicting_chair(path: Path, unknown_category: str):
    """A car/chair checkpoint's completer whose classification branch predicts ``chair`` for anything,
    and whose chair decoder moves every vertex (so that the two decoders' meshes tell them apart)."""
    completer = load_checkpoint_completer(
        write_pretrain_checkpoint(path, ["car", "chair"]), device="cpu", unknown_category=unknown_category
    )
    with torch.no_grad():
        completer.stage2.classifier.linear.bias.copy_(torch.tensor([-50.0, 50.0]))
        completer.stage2.mask_branch.shape_decoder.decoder("chair").offsets.bias.add_(0.1)
    return completer


def test_a_category_without_a_decoder_is_completed_by_the_predicted_class(tmp_path: Path) -> None:
    completer = _completer_predicting_chair(tmp_path / "pretrain.pt", "predict")
    image, boxes, visible = _instances()
    completer.check_categories(["car", "cyclist"])
    got = completer.complete([image], [boxes], [visible], [["car", "cyclist"]])[0]
    as_car = completer.complete([image], [boxes], [visible], [["car", "car"]])[0]
    as_chair = completer.complete([image], [boxes], [visible], [["chair", "chair"]])[0]
    assert got["shape_labels"].tolist() == [1, 2]  # car by its own decoder, cyclist by the predicted chair
    assert torch.allclose(got["vertices"][0], as_car["vertices"][0], atol=1e-5)
    assert torch.allclose(got["vertices"][1], as_chair["vertices"][1], atol=1e-5)
    assert not torch.allclose(got["vertices"][1], as_car["vertices"][1], atol=1e-2)  # the decoders differ
    assert torch.allclose(got["amodal_masks"][1], as_chair["amodal_masks"][1], atol=1e-5)

    counts = HandlingCounts()
    counts.add(completer, ["car", "cyclist"], got["shape_labels"])
    assert (counts.own_prior, counts.mapped, counts.predicted_class, counts.visible_mask) == (1, 0, 1, 0)
    assert counts.predicted_decoders == {"cyclist": {"chair": 1}}
    assert counts.summary() == (
        "completed 2 instances: 1 by their category's prior, 0 mapped, 1 by the predicted class (cyclist: chair 1); "
        "0 as visible masks"
    )


def test_a_category_without_a_decoder_keeps_its_visible_mask_when_asked(tmp_path: Path) -> None:
    completer = _completer_predicting_chair(tmp_path / "pretrain.pt", "visible")
    image, boxes, visible = _instances()
    got = completer.complete([image], [boxes], [visible], [["cyclist", "car"]])[0]
    as_car = completer.complete([image], [boxes], [visible], [["car", "car"]])[0]
    assert got["shape_labels"].tolist() == [0, 1]
    assert torch.equal(got["amodal_masks"][0], visible[0])
    assert torch.allclose(got["amodal_masks"][1], as_car["amodal_masks"][1], atol=1e-5)
    assert not got["vertices"][0].any() and torch.allclose(got["vertices"][1], as_car["vertices"][1], atol=1e-5)
    nothing_completed = completer.complete([image], [boxes], [visible], [["cyclist", "cyclist"]])[0]
    assert torch.equal(nothing_completed["amodal_masks"], visible)
    counts = HandlingCounts()
    counts.add(completer, ["cyclist", "car"], got["shape_labels"])
    assert (counts.own_prior, counts.visible_mask, counts.instances) == (1, 1, 2)


def test_the_visible_baseline_returns_the_visible_masks_and_unknown_completers_are_refused() -> None:
    image, boxes, visible = _instances()
    baseline = VisibleCompleter().complete([image], [boxes], [visible], [["a", "b"]])[0]
    assert torch.equal(baseline["amodal_masks"], visible) and baseline["shape_labels"].tolist() == [0, 0]
    with pytest.raises(
        InputError, match=r"unknown completer 'oracle' \(known: checkpoint, visible, shapedict, deocclusion\)"
    ):
        build_completer("oracle", CompleterRequest())
    with pytest.raises(InputError, match=r"absent\.pt: checkpoint not found"):
        build_completer("checkpoint", CompleterRequest(checkpoint=Path("absent.pt")))
