"""`a3d pretrain` as a pure function and as a command, on toy parts that follow the stage-2 contracts."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from a3d_cli.main import app
from a3d_core.data.framing import FramedViews
from a3d_core.data.prepare_shapenet import PrepareShapeNetConfig, prepare_shapenet
from a3d_core.data.shapenet import ShapeNetAmodalDataset
from a3d_core.errors import InputError
from a3d_core.train import pretrain as pretrain_module
from a3d_core.train.checkpoint import load_checkpoint
from a3d_core.train.loop import TrainSettings
from a3d_core.train.pretrain import (
    ModelOptions,
    PretrainComponents,
    PretrainSettings,
    build_asm,
    pretrain,
    shapenet_components,
)
from tests.train.toys import ToyAmodalDataset, ToyAmodalModel

SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2, "test_newview": 3}


class PairRecordingToy(ToyAmodalModel):
    """Records which batch keys it was trained on."""

    def __init__(self, category_names, cross_view_weight, size):
        super().__init__(category_names, dropout=0.0, size=size)
        self.cross_view_weight = cross_view_weight
        self.trained_on_pairs: set[bool] = set()

    def forward(self, batch):
        if self.training:
            self.trained_on_pairs.add("rgb_pair" in batch and "amodal_pair" in batch)
        return super().forward(batch)


def toy_components(splits=tuple(SPLIT_SEEDS), built=None):
    built = [] if built is None else built

    def build_model(kind, category_names, options):
        model = PairRecordingToy(category_names, options.cross_view_weight, options.image_size)
        built.append((kind, category_names, options.image_size, options.cross_view_weight, model))
        return model

    return PretrainComponents(
        open_split=lambda root, split: ToyAmodalDataset(
            objects=8 if split == "train" else 4, views=2, seed=SPLIT_SEEDS[split]
        ),
        list_splits=lambda root: list(splits),
        build_model=build_model,
    )


def run_settings(tmp_path, **overrides):
    values = dict(
        data=tmp_path,
        out=tmp_path / "run",
        model="a3d",
        train=TrainSettings(
            lr=5e-2, batch_size=4, epochs=None, steps=60, log_every=10, progress=False, tensorboard=False
        ),
    )
    values.update(overrides)
    return PretrainSettings(**values)


def expected_visible_baseline(split):
    dataset = ToyAmodalDataset(objects=4, views=2, seed=SPLIT_SEEDS[split])
    ratios = dataset.visible.flatten(1).sum(1) / dataset.amodal.flatten(1).sum(1)  # visible inside amodal
    return {name: float(ratios[dataset.category == index].mean()) for index, name in enumerate(dataset.categories)}


def test_pretrain_beats_the_visible_baseline_on_both_test_splits_and_writes_results(tmp_path):
    built = []
    result = pretrain(run_settings(tmp_path), toy_components(built=built))

    kind, names, size, weight, model = built[0]
    assert (kind, names, size, weight) == ("a3d", ["cube", "ball"], 8, 1.0)
    assert model.trained_on_pairs == {True}  # cross-view is on for 3D kinds by default
    assert set(result.evaluations) == {"test", "test_newview"}
    for split, evaluation in result.evaluations.items():
        assert evaluation.instances == 8
        assert evaluation.visible_baseline.per_category == pytest.approx(expected_visible_baseline(split))
        assert evaluation.model.miou > evaluation.visible_baseline.miou + 0.1
    assert result.training.steps == 60
    # once per epoch: 16 items / 4
    assert [entry["step"] for entry in result.training.validation] == list(range(4, 61, 4))
    assert result.evaluated_checkpoint == tmp_path / "run" / "best.pt"

    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["evaluations"]["test"]["model"]["miou"] == pytest.approx(result.evaluations["test"].model.miou)
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    assert checkpoint["category_names"] == ["cube", "ball"]
    assert checkpoint["model_config"] == model.config()
    assert checkpoint["config"]["pretrain"]["cross_view"] is True


def test_the_2d_baseline_trains_without_pairs_and_refuses_cross_view(tmp_path):
    built = []
    pretrain(
        run_settings(
            tmp_path,
            model="2d",
            train=TrainSettings(batch_size=4, epochs=None, steps=2, progress=False, tensorboard=False),
        ),
        toy_components(built=built),
    )
    assert built[0][3] == 0.0 and built[0][4].trained_on_pairs == {False}
    with pytest.raises(ValueError, match="cross-view consistency needs a 3D model"):
        run_settings(tmp_path, model="2d", cross_view=True)


def test_without_val_and_test_splits_the_last_checkpoint_is_used_and_nothing_is_evaluated(tmp_path):
    result = pretrain(
        run_settings(tmp_path, train=TrainSettings(batch_size=4, epochs=1, progress=False, tensorboard=False)),
        toy_components(splits=("train",)),
    )
    assert result.evaluations == {} and result.training.validation == []
    assert result.evaluated_checkpoint == tmp_path / "run" / "last.pt"


def test_a_dataset_without_a_train_split_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no train split \\(has test\\)"):
        pretrain(run_settings(tmp_path), toy_components(splits=("test",)))


def test_resume_continues_the_run(tmp_path):
    short = TrainSettings(batch_size=4, epochs=None, steps=3, progress=False, tensorboard=False)
    pretrain(run_settings(tmp_path, train=short), toy_components())
    longer = TrainSettings(batch_size=4, epochs=None, steps=5, progress=False, tensorboard=False)
    result = pretrain(run_settings(tmp_path, train=longer, resume=True), toy_components())
    assert (result.training.start_step, result.training.steps) == (3, 5)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 5


def test_the_command_prints_the_comparison_table(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrain_module, "shapenet_components", toy_components)
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(
        app,
        [
            "pretrain",
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "run"),
            "--steps",
            "4",
            "--batch-size",
            "4",
            "--lr",
            "0.05",
            "--device",
            "cpu",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    header = result.output.split("┏")[1].split("┡")[0]
    assert header.count("test_newview") == 2 and header.count("visible mask") == 2
    assert "mIoU" in result.output and "cube" in result.output and "ball" in result.output
    assert (tmp_path / "run" / "results.json").is_file()


def test_the_command_passes_the_mesh_and_camera_options_to_the_network(tmp_path, monkeypatch):
    options_seen = []

    def recording_components():
        components = toy_components()
        build = components.build_model
        return dataclasses.replace(
            components,
            build_model=lambda kind, names, options: options_seen.append(options) or build(kind, names, options),
        )

    monkeypatch.setattr(pretrain_module, "shapenet_components", recording_components)
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(
        app,
        [
            "pretrain",
            "--data",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "run"),
            "--steps",
            "1",
            "--batch-size",
            "4",
            "--asymmetric",
            "--azimuth-hypotheses",
            "1",
            "--template-level",
            "1",
            "--view-cycle",
            "0.5",
            "--refine",
            "unet",
            "--deformation",
            "2",
            "--template",
            "parts",
            "--instance-warmup",
            "0.25",
        ],
    )
    assert result.exit_code == 0, result.output
    (options,) = options_seen
    assert (options.symmetric, options.azimuth_hypotheses, options.template_level) == (False, 1, 1)
    assert (options.view_cycle_weight, options.refine, options.deformation_weight) == (0.5, "unet", 2.0)
    assert (options.template, options.instance_warmup) == ("parts", 0.25)
    settings = build_asm("a3d", ["cube"], options).settings  # and the real network is built with them
    assert (settings.shape.symmetric, settings.viewpoint.azimuth_hypotheses, settings.template_level) == (False, 1, 1)
    assert (settings.losses.view_cycle_camera, settings.losses.view_cycle_shape) == (0.5, 0.5)
    assert settings.refine.architecture == "unet" and settings.losses.deformation == 2.0
    assert settings.template == "parts" and settings.shape.instance_warmup == 0.25
    network = build_asm("a3d", ["cube"], options)
    network.set_training_progress(0.125)  # what the training loop calls: half the warmup
    assert float(network.mask_branch.shape_decoder.instance_scale) == 0.5
    # the default
    assert build_asm("a3d", ["cube"], ModelOptions(image_size=16)).settings.viewpoint.azimuth_hypotheses == 4


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--data", "no-such-dataset"], "dataset 'no-such-dataset'"),
        (["--lr", "-1"], "lr must be a positive"),
        (["--model", "2d", "--cross-view"], "cross-view consistency needs a 3D model"),
        (["--model", "2d-unet", "--view-cycle", "1"], "the view cycle needs a 3D model"),
        (["--model", "2d", "--deformation", "1"], "the deformation prior needs a 3D model"),
        (["--model", "2d", "--template", "parts"], "a mesh template needs a 3D model"),
        (["--template", "torus"], "template must be one of sphere, parts"),
        (["--model", "2d-unet", "--instance-warmup", "0.5"], "the instance warmup needs a 3D model"),
        (["--amp", "fp8"], "amp must be one of"),
        (["--framing", "0.5"], "--framing must be 0 (keep the views as they are) or between 1 and 4"),
    ],
)
def test_the_command_reports_bad_input_on_one_line(tmp_path, monkeypatch, arguments, message):
    monkeypatch.setattr(pretrain_module, "shapenet_components", toy_components)
    (tmp_path / "data").mkdir()
    base = ["pretrain", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, base + arguments)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


@pytest.fixture(scope="module")
def prepared_shapes(tmp_path_factory):
    """A tiny dataset from the real `a3d prepare shapenet` pipeline (built-in shapes, 16 x 16)."""
    out = tmp_path_factory.mktemp("shapenet") / "data"
    prepare_shapenet(
        PrepareShapeNetConfig(
            out=out,
            categories=("chair", "table"),
            objects_per_category=4,
            views=4,
            image_size=16,
            split_fractions=(0.5, 0.25, 0.25),
            holdout_views=(18, 23),
            seed=1,
            min_amodal_pixels=4,
        )
    )
    return out


def test_pretrain_on_a_prepared_shapenet_dataset(prepared_shapes, tmp_path):
    components = dataclasses.replace(
        shapenet_components(),
        build_model=lambda kind, names, options: PairRecordingToy(names, options.cross_view_weight, options.image_size),
    )
    settings = run_settings(
        prepared_shapes,
        out=tmp_path / "run",
        train=TrainSettings(batch_size=4, epochs=None, steps=3, progress=False, tensorboard=False),
    )
    result = pretrain(settings, components)

    assert result.category_names == ["chair", "table"]
    assert set(result.evaluations) == {"test", "test_newview"}
    for split, evaluation in result.evaluations.items():
        dataset = FramedViews(ShapeNetAmodalDataset(prepared_shapes, split), settings.framing)  # evaluated as framed
        ious = []
        for index in range(len(dataset)):
            item = dataset[index]
            visible, amodal = item["visible"].bool(), item["amodal"].bool()
            ious.append(float((visible & amodal).sum() / (visible | amodal).sum()))
        by_category = {
            name: np.mean([iou for iou, category in zip(ious, dataset.category_index) if category == index])
            for index, name in enumerate(dataset.categories)
            if (dataset.category_index == index).any()
        }
        assert evaluation.instances == len(dataset)
        assert evaluation.visible_baseline.per_category == pytest.approx(by_category)
