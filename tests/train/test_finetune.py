"""a3d finetune: category transfer by name (paper 3.7), validation AP/mIoU, a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from a3d_cli.finetune import default_init
from a3d_cli.main import app
from a3d_core.data.canonical import read_dataset
from a3d_core.data.category_map import CategoryMap
from a3d_core.data.detection import AmodalDetectionDataset
from a3d_core.errors import InputError
from a3d_core.model.a3d import load_a3d_from_checkpoint
from a3d_core.model.asm import ASMSettings, build_stage2
from a3d_core.model.losses import LossSettings
from a3d_core.train.finetune import (
    FinetuneSettings,
    build_finetune_model,
    split_subset,
    transfer_categories,
    validation_metrics,
)
from tests.model.tiny_scenes import (
    tiny_stage1_settings,
    tiny_stage2_settings,
    write_pretrain_checkpoint,
    write_tiny_scenes,
)

CATEGORY_PREFIXES = ("classifier.", "mask_branch.shape_decoder.decoders.")


def _stage2(names: list[str], seed: int):
    torch.manual_seed(seed)
    return build_stage2("a3d", names, tiny_stage2_settings())


def test_transfer_copies_exactly_the_overlapping_and_mapped_categories() -> None:
    source = _stage2(["car", "sofa", "watercraft"], seed=1)
    target = _stage2(["chair", "car", "boat"], seed=2)
    fresh = {name: target.category_state(name) for name in target.category_names}
    before = {key: value.clone() for key, value in target.state_dict().items()}

    transferred = transfer_categories(target, source)  # the shipped map: COCO's boat -> watercraft

    assert transferred == {"car": "car", "boat": "watercraft"}
    for target_name, source_name in (("car", "car"), ("boat", "watercraft"), ("chair", None)):
        expected = source.category_state(source_name) if source_name else fresh[target_name]
        got = target.category_state(target_name)
        for part in ("classifier", "shape"):
            assert got[part].keys() == expected[part].keys()
            assert all(torch.equal(got[part][key], expected[part][key]) for key in got[part])
    source_state = source.state_dict()
    for key, value in target.state_dict().items():
        if key.startswith(CATEGORY_PREFIXES):
            continue
        assert torch.equal(value, source_state[key]), key  # shared parts come from the prior
    # the fresh category's own parameters did not move, and nothing else of the target was left behind
    chair = target.classifier.category_state("chair")
    assert torch.equal(chair["weight"], fresh["chair"]["classifier"]["weight"])
    assert any(not torch.equal(before[key], value) for key, value in target.state_dict().items())


def test_the_shipped_map_can_be_switched_off_and_overridden() -> None:
    source = _stage2(["car", "sofa"], seed=1)
    names = ["couch", "van", "car", "bus"]
    assert transfer_categories(_stage2(names, 2), source) == {"couch": "sofa", "van": "car", "car": "car"}
    assert transfer_categories(_stage2(names, 2), source, CategoryMap(shipped=False)) == {"car": "car"}
    user = CategoryMap(user={"bus": "car", "car": None, "couch": "car"})
    target = _stage2(names, 2)
    assert transfer_categories(target, source, user) == {"couch": "car", "van": "car", "bus": "car"}
    for name in ("couch", "bus"):  # two fine-tuning categories may start from the same pretrained one
        assert torch.equal(
            target.category_state(name)["shape"]["offsets.weight"],
            source.category_state("car")["shape"]["offsets.weight"],
        )


def test_transfer_refuses_a_map_naming_unknown_categories() -> None:
    source, target = _stage2(["car"], 1), _stage2(["boat"], 2)
    with pytest.raises(InputError, match=r"\['ship'\] are not pretrained categories"):
        transfer_categories(target, source, CategoryMap(user={"boat": "ship"}))
    with pytest.raises(InputError, match=r"\['canoe'\] are not classes here"):
        transfer_categories(target, source, CategoryMap(user={"canoe": "car"}))


class GroundTruthNetwork:
    """Predicts every ground-truth instance of the images it knows, with score 0.9 (or nothing)."""

    def __init__(self, dataset: AmodalDetectionDataset, empty: bool = False) -> None:
        self.by_size = {}
        for index in range(len(dataset)):
            image, target = dataset[index]
            self.by_size[float(image.sum())] = target
        self.empty = empty

    def __call__(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        outputs = []
        for image in images:
            target = self.by_size[float(image.sum())]
            keep = slice(0, 0) if self.empty else slice(None)
            count = len(target["labels"][keep])
            outputs.append(
                {
                    "boxes": target["boxes"][keep],
                    "labels": target["labels"][keep],
                    "scores": torch.full((count,), 0.9),
                    "amodal_masks": target["amodal_masks"][keep].float(),
                    "visible_masks": target["masks"][keep].float(),
                }
            )
        return outputs


def test_validation_scores_perfect_and_empty_predictions(tmp_path: Path) -> None:
    folder = write_tiny_scenes(tmp_path / "data", train_images=1, val_images=3)
    dataset = AmodalDetectionDataset(folder, "val")
    split = split_subset(dataset.split, 3)
    perfect = validation_metrics(GroundTruthNetwork(dataset), dataset, split, torch.device("cpu"))
    assert perfect["ap"] == pytest.approx(1.0) and perfect["miou"] == pytest.approx(1.0) and perfect["detections"] == 6
    nothing = validation_metrics(GroundTruthNetwork(dataset, empty=True), dataset, split, torch.device("cpu"))
    assert nothing["ap"] == 0.0 and nothing["miou"] == 0.0 and nothing["detections"] == 0
    assert len(split_subset(dataset.split, 2).annotations) == 4  # two images, two instances each


@pytest.mark.parametrize("framing, crop_scale, expected", [(1.6, None, 1.6), (1.6, 1.2, 1.2), (None, None, 1.1)])
def test_instances_are_cropped_as_the_prior_was_pretrained_unless_told_otherwise(
    tmp_path: Path, framing, crop_scale, expected
) -> None:
    init = write_pretrain_checkpoint(tmp_path / "pretrain.pt", ["car"], input_framing=framing)
    settings = FinetuneSettings(
        dataset=tmp_path, out=tmp_path / "run", init=init, crop_scale=crop_scale, stage1=tiny_stage1_settings()
    )
    network, _, _ = build_finetune_model(settings, ["car"])
    assert network.settings.crop_scale == expected and network.stage2.settings.input_framing == expected


def test_pretraining_only_terms_are_off_in_the_fine_tuned_network(tmp_path: Path) -> None:
    cycle = LossSettings(view_cycle_camera=1.0, view_cycle_shape=0.5)
    init = write_pretrain_checkpoint(tmp_path / "pretrain.pt", ["car"], cross_view_weight=1.0, losses=cycle)
    settings = FinetuneSettings(dataset=tmp_path, out=tmp_path / "run", init=init, stage1=tiny_stage1_settings())
    network, _, _ = build_finetune_model(settings, ["car"])
    stage2 = network.stage2.settings
    assert stage2.cross_view_weight == 0.0
    assert (stage2.losses.view_cycle_camera, stage2.losses.view_cycle_shape) == (0.0, 0.0)
    assert stage2.losses.reconstruction == cycle.reconstruction  # the paper's terms are kept
    fresh = FinetuneSettings(
        dataset=tmp_path, out=tmp_path / "fresh", stage1=tiny_stage1_settings(), stage2=ASMSettings(image_size=32)
    )  # no init: the default view cycle is off in fine-tuning too
    losses = build_finetune_model(fresh, ["car"])[0].stage2.settings.losses
    assert (losses.view_cycle_camera, losses.view_cycle_shape) == (0.0, 0.0)


def test_a_camera_supervised_prior_fine_tunes_without_its_term_and_an_oracle_one_is_refused(tmp_path: Path) -> None:
    encoder = {"channels": [8, 8, 16, 16, 16], "fc_dims": [32, 32, 32]}
    supervised = write_pretrain_checkpoint(
        tmp_path / "supervised.pt", ["car"], viewpoint={"encoder": encoder, "camera": "supervised"}
    )
    settings = FinetuneSettings(dataset=tmp_path, out=tmp_path / "run", init=supervised, stage1=tiny_stage1_settings())
    network, _, _ = build_finetune_model(settings, ["car"])
    stage2 = network.stage2.settings
    assert stage2.viewpoint.camera == "supervised" and stage2.losses.camera_supervision == 0.0  # it predicts the camera
    oracle = write_pretrain_checkpoint(
        tmp_path / "oracle.pt", ["car"], viewpoint={"encoder": encoder, "camera": "oracle", "azimuth_hypotheses": 1}
    )
    with pytest.raises(InputError, match="oracle.pt: pretrained with the oracle camera .*fine-tuning has no cameras"):
        build_finetune_model(FinetuneSettings(dataset=tmp_path, out=tmp_path / "o", init=oracle), ["car"])


def test_finetune_end_to_end_on_tiny_scenes(tmp_path: Path) -> None:
    write_tiny_scenes(tmp_path / "data", train_images=2, val_images=1)
    init = write_pretrain_checkpoint(tmp_path / "pretrain.pt", ["car", "sofa", "watercraft"], input_framing=1.4)
    (tmp_path / "map.json").write_text(json.dumps({"chair": "watercraft"}))
    args = [
        "finetune",
        "--dataset",
        str(tmp_path / "data"),
        "--init",
        str(init),
        "--out",
        str(tmp_path / "run"),
        "--category-map",
        str(tmp_path / "map.json"),
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--val-every",
        "2",
        "--min-size",
        "48",
        "--max-size",
        "64",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "pretrained 'watercraft' (watercraft <- chair)" in result.output and "pretrained 'car'" in result.output

    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["transferred"] == {"chair": "watercraft", "car": "car"}  # category ids 4 (car) < 9 (chair)
    assert results["category_names"] == ["car", "chair"] and results["fresh"] == []
    validation = results["validation"][-1]
    assert validation["step"] == 2 and 0.0 <= validation["ap"] <= 1.0 and 0.0 <= validation["miou"] <= 1.0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(r["split"] == "val" and "ap" in r and "miou" in r for r in records)
    model = load_a3d_from_checkpoint(tmp_path / "run" / "best.pt")
    assert model.category_names == ["car", "chair"] and model.stage2.settings.image_size == 32
    assert model.settings.crop_scale == 1.4  # instances are cropped as the prior's views were framed
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=True)["category_ids"] == [4, 9]

    evaluated = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--dataset",
            str(tmp_path / "data"),
            "--split",
            "val",
            "--checkpoint",
            str(tmp_path / "run" / "best.pt"),
            "--kind",
            "amodal",
            "--json",
            str(tmp_path / "report.json"),
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads((tmp_path / "report.json").read_text())
    best = next(r for r in results["validation"] if r["step"] == results["best_step"])
    # the same predictions as validation
    assert max(report["coco"]["amodal"]["stats"]["AP"], 0.0) == pytest.approx(best["ap"])
    assert report["miou"]["miou"] == pytest.approx(best["miou"])

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and "--resume" in again.output  # a finished run is not overwritten
    assert read_dataset(tmp_path / "data").splits == ["train", "val"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--anchor-sizes", "16,32,abc"], "--anchor-sizes: expected comma-separated whole numbers"),
        (["--anchor-sizes", "16,32,64"], "anchor_sizes must be 5 increasing positive sides"),
        (["--stage1-lr", "0"], "stage1_lr must be positive"),
    ],
)
def test_bad_stage1_options_are_one_line_errors(tmp_path: Path, arguments: list[str], message: str) -> None:
    write_tiny_scenes(tmp_path / "data", train_images=1, val_images=1)
    result = CliRunner().invoke(
        app, ["finetune", "--dataset", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *arguments]
    )
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # nothing was written


@pytest.mark.parametrize(
    "arguments",
    [["--stage1-norm", "layer"], ["--backbone", "vgg"], ["--model", "3d"], ["--amp", "fp8"], ["--template", "x"]],
)
def test_unknown_choices_and_retired_options_are_usage_errors(tmp_path: Path, arguments: list[str]) -> None:
    result = CliRunner().invoke(app, ["finetune", "--dataset", "d2sa", "--out", str(tmp_path / "run"), *arguments])
    assert result.exit_code == 2 and arguments[0] in result.output
    assert not (tmp_path / "run").exists()


def test_the_help_lists_the_choices() -> None:
    result = CliRunner().invoke(app, ["finetune", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for choice in ("a3d-no-refine", "resnet50-fpn", "mobilenet_v3-fpn", "group", "bf16", "--runs-root", "--data-root"):
        assert choice in result.output
    assert "--template " not in result.output


def test_the_starting_point_is_looked_up_under_the_runs_root_given(tmp_path: Path) -> None:
    pretraining = tmp_path / "runs" / "pretrain"
    pretraining.mkdir(parents=True)
    model = build_stage2("2d", ["car"], ASMSettings(image_size=16))
    torch.save(
        {"model": model.state_dict(), "model_config": model.config(), "category_names": ["car"]},
        pretraining / "last.pt",
    )
    assert default_init(tmp_path / "out", resume=False, runs_root=tmp_path / "runs") == pretraining / "last.pt"
    assert default_init(tmp_path / "out", resume=False, runs_root=tmp_path / "elsewhere") is None
