"""The viewpoint benchmark end to end at its tiny scale: every model, split, metric and plot."""

import dataclasses
import json

import imageio.v3 as iio
import pytest
import torch

from a3d_core.data.shapenet import read_shard_manifest
from a3d_core.errors import InputError
from a3d_core.experiments.viewpoints import benchmark as benchmark_module
from a3d_core.experiments.viewpoints.benchmark import BenchmarkSettings, run_viewpoint_benchmark
from a3d_core.experiments.viewpoints.evaluation import (
    diagnostics_3d,
    evaluate_model,
    load_table,
    novel_view_targets,
    true_meshes,
)
from a3d_core.experiments.viewpoints.specs import MODELS, SCALES, base_settings, override_settings
from a3d_core.experiments.viewpoints.training import load_model, train_model, training_steps
from a3d_core.model.asm import ASMSettings, load_stage2_from_checkpoint
from a3d_core.model.shapedict import ShapeDictSettings
from a3d_core.model.viewpoint import ViewpointSettings

SPLITS = ["test", "test_newview", "test_elevation", "test_combination"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("viewpoints")
    return out, run_viewpoint_benchmark(BenchmarkSettings("tiny", out), log=lambda message: None)


def test_every_model_is_scored_on_every_split_with_intervals(finished):
    _, results = finished
    assert list(results["splits"]) == SPLITS
    for split in SPLITS:
        assert set(results["splits"][split]) == {m.name for m in MODELS}
        for metrics in results["splits"][split].values():
            for key in ("miou", "hidden_miou"):
                interval = metrics[key]
                assert (
                    interval["low"] - 1e-9 <= interval["value"] <= interval["high"] + 1e-9
                    or interval["value"] != interval["value"]
                )
    visible = results["splits"]["test"]["visible mask"]
    assert visible["hidden_miou"]["value"] == 0.0  # the visible mask completes nothing


def test_trained_models_see_the_same_instances_and_cross_view_counts_both_views(finished):
    _, results = finished
    budget = SCALES["tiny"].instances
    for spec in MODELS:
        record = results["models"][spec.name]
        if spec.trained:
            assert record["instances"] == budget and record["steps"] == training_steps(spec, SCALES["tiny"])
            assert record["seconds"] > 0
        else:
            assert record["instances"] == 0
    assert results["models"]["A3D"]["steps"] * 2 == results["models"]["2D"]["steps"]


def test_best_baseline_is_chosen_on_val_and_differences_are_paired(finished):
    _, results = finished
    val = {name: results["models"][name]["val"]["miou"]["value"] for name in ("retrieval", "ShapeDict", "2D", "U-Net")}
    assert results["best_baseline"] == max(val, key=val.get)
    for opponent, by_split in results["differences"]["A3D"].items():
        for split in SPLITS:
            expected = (
                results["splits"][split]["A3D"]["miou"]["value"] - results["splits"][split][opponent]["miou"]["value"]
            )
            assert by_split[split]["miou"]["value"] == pytest.approx(expected, abs=1e-9)


def test_3d_diagnostics_and_report(finished):
    out, results = finished
    for name in ("A3D", "A3D, 1 camera"):
        diagnostics = results["diagnostics"][name]
        assert set(diagnostics["viewpoint_errors"]) == set(SPLITS)
        assert {"azimuth 45", "azimuth 90", "azimuth 180", "elevation +30"} <= set(diagnostics["novel_view"])
        for row in diagnostics["novel_view"].values():
            assert row["pairs"] > 0 and 0 <= row["mesh"]["value"] <= 100
        shapes = diagnostics["shapes_3d"]
        assert shapes["meshes"] > 0 and 0 <= shapes["mesh"]["value"] <= 100 and 0 < shapes["sphere"]["value"] < 100
    report = (out / "report.md").read_text()
    for text in (
        "## Protocol",
        "A3D minus each baseline",
        "novel-view IoU",
        "judged in 3D",
        "## What the table shows",
        *SPLITS,
    ):
        assert text in report
    for name in ("per_category_test_newview.png", "viewpoint_error.png", "novel_view.png"):
        assert iio.imread(out / name).ndim == 3


def test_a_rerun_reuses_what_is_done(finished):
    out, results = finished
    stamps = {path: path.stat().st_mtime_ns for path in out.glob("runs/*/model.json")}
    again = run_viewpoint_benchmark(BenchmarkSettings("tiny", out, models=["2d", "A3D"]), log=lambda message: None)
    assert {path: path.stat().st_mtime_ns for path in out.glob("runs/*/model.json")} == stamps
    assert again["splits"]["test"]["2D"] == results["splits"]["test"]["2D"]


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(InputError, match="--scale must be one of"):
        BenchmarkSettings("huge", tmp_path)
    with pytest.raises(InputError, match="unknown models"):
        BenchmarkSettings("tiny", tmp_path, models=["3d"])


def test_specs_are_overrides_of_one_base_and_record_what_they_trained_with(finished):
    out, results = finished
    scale = SCALES["tiny"]
    one_camera = next(spec for spec in MODELS if spec.name == "A3D, 1 camera, view cycle, U-Net refine")
    settings = one_camera.settings(scale)
    assert settings == override_settings(
        base_settings(scale),
        {
            "viewpoint": ViewpointSettings(azimuth_hypotheses=1),
            "losses.view_cycle_camera": 1.0,
            "losses.view_cycle_shape": 1.0,
            "refine.architecture": "unet",
        },
    )
    with pytest.raises(ValueError, match="viewpoint.oracle: ViewpointSettings has no setting 'oracle'"):
        override_settings(base_settings(scale), {"viewpoint.oracle": True})

    record = json.loads((out / "runs" / "a3d-1-camera" / "model.json").read_text())
    trained = load_stage2_from_checkpoint(record["checkpoint"]).settings
    assert record["stage2"] == trained.to_dict()  # the record keeps the network's own settings
    assert trained.viewpoint.azimuth_hypotheses == 1 and trained.cross_view_weight == 1.0
    assert trained.template_level == scale.template_level and trained.image_size == scale.image_size
    assert "commit" in record and "commit" in results


def test_a_finished_model_of_other_settings_is_refused_not_mixed(finished):
    out, _ = finished
    spec = next(spec for spec in MODELS if spec.slug == "a3d-1-camera")
    changed = dataclasses.replace(spec, stage2={**spec.stage2, "viewpoint.hypothesis_selection": "scores"})
    run = out / "runs" / spec.slug
    with pytest.raises(InputError, match="a3d-1-camera: A3D, 1 camera was trained with other stage-2 settings"):
        train_model(changed, SCALES["tiny"], out / "data", run, 0, "cpu", lambda message: None)
    legacy = json.loads((run / "model.json").read_text())
    del legacy["stage2"]  # a record from before the settings were kept is reused as it is
    (out / "legacy").mkdir()
    (out / "legacy" / "model.json").write_text(json.dumps(legacy))
    again = train_model(changed, SCALES["tiny"], out / "data", out / "legacy", 0, "cpu", lambda message: None)
    assert again == legacy


def test_the_untrained_retrieval_is_built_from_its_overrides_and_its_tables_follow_them(finished):
    out, _ = finished
    retrieval = next(spec for spec in MODELS if spec.name == "retrieval")
    model = load_model(retrieval, {}, out / "data", ["car", "table"], SCALES["tiny"], seed=0)
    expected = ShapeDictSettings(atoms_per_category=0, mirrored=True, retrieval="all")
    assert model.settings.shapedict == expected and model.settings.image_size == 16
    assert isinstance(model.settings, ASMSettings) and model.settings.input_framing == 1.1

    folder = out / "runs" / "retrieval" / "tables"
    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance["stage2"] == model.settings.to_dict() and "commit" in provenance
    stamp = (folder / "val.npz").stat().st_mtime_ns
    evaluate_model(retrieval, model, out / "data", ["val"], folder, torch.device("cpu"))
    assert (folder / "val.npz").stat().st_mtime_ns == stamp  # the same settings: reused
    (folder / "provenance.json").write_text(json.dumps({**provenance, "stage2": {"image_size": 8}}))
    evaluate_model(retrieval, model, out / "data", ["val"], folder, torch.device("cpu"))
    assert (folder / "val.npz").stat().st_mtime_ns != stamp  # other settings: computed again
    assert json.loads((folder / "provenance.json").read_text())["stage2"] == model.settings.to_dict()
    assert sorted(path.name for path in folder.glob("*.npz")) == ["val.npz"]


def spy_on_moves(model):
    """The list of every move of ``model`` from now on (``.cpu()``, ``.cuda()`` and ``.to()`` go through ``_apply``)."""
    moves = []
    original = model._apply
    model._apply = lambda fn, *args, **kwargs: moves.append(fn) or original(fn, *args, **kwargs)
    return moves


@pytest.mark.parametrize("training", [True, False])
def test_the_3d_diagnostics_leave_the_model_on_its_device_and_in_its_mode(finished, training):
    out, results = finished
    model = load_stage2_from_checkpoint(results["models"]["A3D"]["checkpoint"]).train(training)
    modes = [module.training for module in model.modules()]
    devices = [parameter.device for parameter in model.parameters()]
    moves = spy_on_moves(model)
    run = out / "runs" / "a3d"
    splits = ["test", "test_newview", "test_elevation", "test_combination"]
    tables = {split: load_table(run / "tables" / f"{split}.npz") for split in ["val", *splits]}
    truths = true_meshes(read_shard_manifest(out / "data"))
    targets = novel_view_targets(out / "data", splits)
    diagnostics = diagnostics_3d(model, tables, splits, targets, resamples=10, seed=0, truths=truths)

    assert diagnostics["novel_view"] and diagnostics["shapes_3d"]["meshes"] > 0
    assert moves == []
    assert [module.training for module in model.modules()] == modes
    assert [parameter.device for parameter in model.parameters()] == devices


def test_the_benchmark_moves_each_model_once_and_leaves_its_mode(finished, monkeypatch):
    """The models go to the run's device once; neither the 3D diagnostics nor the example figure
    move them back to the CPU or leave them in another mode (on a GPU that crashed the figure)."""
    out, _ = finished
    loaded = []

    def spied_load_model(*args, **kwargs):
        model = load_model(*args, **kwargs)
        loaded.append((model, [module.training for module in model.modules()], spy_on_moves(model)))
        return model

    monkeypatch.setattr(benchmark_module, "load_model", spied_load_model)
    again = run_viewpoint_benchmark(BenchmarkSettings("tiny", out), log=lambda message: None)
    assert again["diagnostics"] and (out / "examples.png").is_file()
    assert len(loaded) == len(MODELS) - 1  # all but the visible mask
    for model, modes, moves in loaded:
        assert len(moves) == 1  # the driver's own .to(device)
        assert [module.training for module in model.modules()] == modes
