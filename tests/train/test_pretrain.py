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
from a3d_core.model.asm import ASMSettings, build_stage2, settings_for_kind
from a3d_core.train import pretrain as pretrain_module
from a3d_core.train.checkpoint import load_checkpoint
from a3d_core.train.loop import TrainSettings
from a3d_core.train.pretrain import PretrainComponents, PretrainSettings, pretrain, shapenet_components
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

    def build_model(kind, category_names, settings):
        model = PairRecordingToy(category_names, settings.cross_view_weight, settings.image_size)
        built.append((kind, category_names, settings.image_size, settings.cross_view_weight, model))
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
        stage2_kind="a3d",
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


def toy_data_with_real_networks():
    """The toy splits with :func:`build_stage2` itself, which refuses what does not apply to a kind."""
    return dataclasses.replace(toy_components(), build_model=build_stage2)


def test_the_2d_baseline_trains_without_pairs_and_refuses_cross_view(tmp_path):
    built = []
    pretrain(
        run_settings(
            tmp_path,
            stage2_kind="2d",
            train=TrainSettings(batch_size=4, epochs=None, steps=2, progress=False, tensorboard=False),
        ),
        toy_components(built=built),
    )
    assert built[0][3] == 0.0 and built[0][4].trained_on_pairs == {False}
    refused = run_settings(tmp_path, out=tmp_path / "refused", stage2_kind="2d", cross_view=True)
    with pytest.raises(InputError, match="--model 2d: cross-view consistency needs the 3D branch"):
        pretrain(refused, toy_data_with_real_networks())
    assert not (tmp_path / "refused").exists()


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
            "--dataset",
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


def recording_components(settings_seen):
    def components():
        toy = toy_components()
        build = toy.build_model
        return dataclasses.replace(
            toy,
            build_model=lambda kind, names, settings: settings_seen.append(settings) or build(kind, names, settings),
        )

    return components


def test_the_command_builds_the_stage2_settings_the_network_gets(tmp_path, monkeypatch):
    settings_seen = []
    monkeypatch.setattr(pretrain_module, "shapenet_components", recording_components(settings_seen))
    (tmp_path / "data").mkdir()
    base = ["pretrain", "--model", "a3d", "--dataset", str(tmp_path / "data"), "--steps", "1", "--batch-size", "4"]
    options = ["--asymmetric", "--azimuth-hypotheses", "1", "--template-level", "1", "--view-cycle", "0.5"]
    options += ["--refine", "unet", "--hypothesis-selection", "scores", "--shapedict-atoms", "3", "--framing", "0"]
    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "run"), *options])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "defaults")])
    assert result.exit_code == 0, result.output

    chosen, defaults = settings_seen
    assert (chosen.shape.symmetric, chosen.viewpoint.azimuth_hypotheses, chosen.template_level) == (False, 1, 1)
    assert (chosen.losses.view_cycle_camera, chosen.losses.view_cycle_shape) == (0.5, 0.5)
    assert (chosen.refine.architecture, chosen.viewpoint.hypothesis_selection) == ("unet", "scores")
    assert chosen.shapedict.atoms_per_category == 3
    # what pretraining decides: the data's image size (the renderer's too), the framing, the cross-view weight
    assert (chosen.image_size, chosen.renderer.image_size, chosen.input_framing, chosen.cross_view_weight) == (
        8,
        8,
        None,
        1.0,
    )
    # the command's defaults are the library's, as a network of the kind resolves them
    assert defaults == settings_for_kind("a3d", ASMSettings(image_size=8, input_framing=1.1, cross_view_weight=1.0))
    assert (defaults.losses.view_cycle_camera, defaults.refine.architecture) == (1.0, "unet")
    network = build_stage2("a3d", ["cube"], chosen)  # and the real network is built with them
    assert network.config()["settings"] == chosen.to_dict()
    assert network.refine.__class__.__name__ == "UNetRefine"


def test_the_occluder_input_option_reaches_the_stage2_settings(tmp_path, monkeypatch):
    settings_seen = []
    monkeypatch.setattr(pretrain_module, "shapenet_components", recording_components(settings_seen))
    (tmp_path / "data").mkdir()
    arguments = ["pretrain", "--dataset", str(tmp_path / "data"), "--steps", "1", "--batch-size", "4"]
    for out, flag in (("on", "--occluder-input"), ("off", "--no-occluder-input")):
        result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / out), flag])
        assert result.exit_code == 0, result.output
    assert [settings.occluder_input for settings in settings_seen] == [True, False]


def test_the_dataset_and_runs_are_found_under_the_roots_given(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrain_module, "shapenet_components", toy_components)
    (tmp_path / "datasets" / "toy").mkdir(parents=True)
    roots = ["--data-root", str(tmp_path / "datasets"), "--runs-root", str(tmp_path / "runs")]
    short = ["--steps", "1", "--batch-size", "4", "--device", "cpu"]
    result = CliRunner().invoke(app, ["pretrain", "--dataset", "toy", *roots, *short])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "pretrain" / "results.json").is_file()
    checkpoint = load_checkpoint(tmp_path / "runs" / "pretrain" / "last.pt")
    assert checkpoint["config"]["pretrain"]["data"] == str(tmp_path / "datasets" / "toy")

    alias = CliRunner().invoke(app, ["pretrain", "--data", "toy", *roots, *short])  # the old name, hidden
    assert alias.exit_code == 0, alias.output
    assert (tmp_path / "runs" / "pretrain-2" / "results.json").is_file()
    both = CliRunner().invoke(app, ["pretrain", "--dataset", "toy", "--data", "toy", *roots, *short])
    assert both.exit_code == 2 and "give --dataset once" in both.output


def test_the_help_lists_the_choices_and_no_retired_option():
    result = CliRunner().invoke(app, ["pretrain", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for choice in ("a3d-no-refine", "shapedict-no-refine", "render", "scores", "edge", "unet", "bf16", "fp16"):
        assert choice in result.output
    for retired in ("--template ", "--instance-warmup", "--deformation", "--data "):
        assert retired not in result.output


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--dataset", "no-such-dataset"], "dataset 'no-such-dataset'"),
        (["--lr", "-1"], "lr must be a positive"),
        (["--model", "2d", "--cross-view"], "--model 2d: cross-view consistency needs the 3D branch"),
        (["--model", "2d-unet", "--view-cycle", "1"], "--model 2d-unet: the view cycle needs the 3D branch"),
        (["--framing", "0.5"], "--framing must be 0 (keep the views as they are) or between 1 and 4"),
    ],
)
def test_the_command_reports_bad_input_on_one_line(tmp_path, monkeypatch, arguments, message):
    monkeypatch.setattr(pretrain_module, "shapenet_components", toy_data_with_real_networks)
    (tmp_path / "data").mkdir()
    base = ["pretrain", "--dataset", str(tmp_path / "data"), "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, base + arguments, env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "arguments",
    [["--model", "3d"], ["--amp", "fp8"], ["--refine", "big"], ["--hypothesis-selection", "vote"], ["--template", "x"]],
)
def test_unknown_choices_and_retired_options_are_usage_errors(tmp_path, arguments):
    result = CliRunner().invoke(app, ["pretrain", "--out", str(tmp_path / "run"), *arguments])
    assert result.exit_code == 2 and arguments[0] in result.output
    assert not (tmp_path / "run").exists()


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
        build_model=lambda kind, names, settings: PairRecordingToy(
            names, settings.cross_view_weight, settings.image_size
        ),
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
