"""The viewpoint benchmark end to end at its tiny scale: every model, seed, split, metric and plot,
and the provenance that keeps a rerun from mixing code versions."""

import dataclasses
import json

import imageio.v3 as iio
import pytest
import torch

from a3d_core.data.shapenet import read_shard_manifest
from a3d_core.errors import InputError
from a3d_core.experiments.viewpoints import benchmark as benchmark_module, provenance as provenance_module
from a3d_core.experiments.viewpoints.benchmark import BenchmarkSettings, run_viewpoint_benchmark
from a3d_core.experiments.viewpoints.evaluation import (
    diagnostics_3d,
    evaluate_model,
    load_table,
    novel_view_targets,
    true_meshes,
)
from a3d_core.experiments.viewpoints.specs import (
    CAMERA_MODELS,
    DEOCCLUSION,
    MAIN_MODEL,
    MODELS,
    ONE_CAMERA_A3D,
    OPTIONAL_MODELS,
    SCALES,
    base_settings,
    override_settings,
)
from a3d_core.experiments.viewpoints.training import (
    load_model,
    model_inputs,
    model_seeds,
    open_split,
    run_folder,
    train_model,
    training_components,
    training_steps,
)
from a3d_core.model.asm import ASMSettings, load_stage2_from_checkpoint
from a3d_core.model.shapedict import ShapeDictSettings
from a3d_core.model.viewpoint import ViewpointSettings

SPLITS = ["test", "test_newview", "test_elevation", "test_combination", "test_farview"]
THREE_D = [spec.name for spec in MODELS if spec.is_3d]


def QUIET(message: str) -> None:
    """A log that says nothing."""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("viewpoints")
    return out, run_viewpoint_benchmark(BenchmarkSettings("tiny", out), log=QUIET)


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
    for split in SPLITS:
        bands = results["splits"][split]["U-Net"]["occlusion_bands"]
        assert list(bands) == ["< 30%", "30-50%", "> 50%"]
        assert sum(band["instances"] for band in bands.values()) == results["splits"][split]["U-Net"]["instances"]


def test_headline_models_are_trained_with_every_seed_and_their_intervals_span_them(finished):
    out, results = finished
    scale = SCALES["tiny"]
    assert scale.seeds == 2
    headline = {spec.name for spec in MODELS if spec.headline}
    assert {"U-Net", MAIN_MODEL} <= headline
    assert {spec.name for spec in CAMERA_MODELS} <= headline
    for spec in MODELS:
        record = results["models"][spec.name]
        seeds = model_seeds(spec, scale, 0)
        assert [run["seed"] for run in record["runs"]] == seeds == (list(range(2)) if spec.headline else [0])
        metrics = results["splits"]["test"][spec.name]
        assert metrics["seeds"] == len(seeds) and len(metrics["miou_per_seed"]) == len(seeds)
        assert metrics["miou"]["value"] == pytest.approx(sum(metrics["miou_per_seed"]) / len(seeds))
        if spec.trained:
            for index in range(len(seeds)):
                assert (run_folder(out, spec, index) / "model.json").is_file()
    unet_spec = next(spec for spec in MODELS if spec.name == "U-Net")
    unet = [json.loads((run_folder(out, unet_spec, k) / "model.json").read_text()) for k in range(2)]
    assert unet[0]["checkpoint"] != unet[1]["checkpoint"]
    assert unet[0]["provenance"]["settings"]["seed"] == 0 and unet[1]["provenance"]["settings"]["seed"] == 1
    difference = results["differences"][MAIN_MODEL]["U-Net"]["test"]["miou"]
    assert difference["seeds"] == 2  # paired seed by seed
    assert results["differences"][MAIN_MODEL]["2D"]["test"]["miou"]["seeds"] == 1  # over the seed both have


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
    assert results["models"][MAIN_MODEL]["steps"] * 2 == results["models"]["2D"]["steps"]


def test_best_baseline_is_chosen_on_val_and_differences_are_paired(finished):
    _, results = finished
    val = {name: results["models"][name]["val"]["miou"]["value"] for name in ("retrieval", "ShapeDict", "2D", "U-Net")}
    assert results["best_baseline"] == max(val, key=val.get)
    for opponent, by_split in results["differences"][MAIN_MODEL].items():
        if opponent == "U-Net":  # both have every seed: the difference of the seed means
            for split in SPLITS:
                expected = (
                    results["splits"][split][MAIN_MODEL]["miou"]["value"]
                    - results["splits"][split][opponent]["miou"]["value"]
                )
                assert by_split[split]["miou"]["value"] == pytest.approx(expected, abs=1e-9)
        else:  # a one-seed baseline: against the first seed only
            for split in SPLITS:
                expected = (
                    results["splits"][split][MAIN_MODEL]["miou_per_seed"][0]
                    - results["splits"][split][opponent]["miou"]["value"]
                )
                assert by_split[split]["miou"]["value"] == pytest.approx(expected, abs=1e-9)


def test_3d_diagnostics_and_report(finished):
    out, results = finished
    for name in THREE_D:
        diagnostics = results["diagnostics"][name]
        assert set(diagnostics["viewpoint_errors"]) == set(SPLITS)
        assert {"azimuth 45", "azimuth 90", "azimuth 180", "elevation +30"} <= set(diagnostics["novel_view"])
        for summary in diagnostics["viewpoint_errors"].values():
            assert 0 <= summary["median_azimuth_error_mod180"] <= min(90, summary["median_azimuth_error"]) + 1e-9
        for row in diagnostics["novel_view"].values():
            assert row["pairs"] > 0 and 0 <= row["mesh"]["value"] <= 100
        shapes = diagnostics["shapes_3d"]
        assert shapes["meshes"] > 0 and 0 <= shapes["mesh"]["value"] <= 100 and 0 < shapes["sphere"]["value"] < 100
        assert diagnostics["seeds"] == shapes["seeds"] == len(results["models"][name]["runs"]) == 2
        test_instances = results["splits"]["test"][name]["instances"]
        assert len(diagnostics["angle_errors"]["test"]) == 2 * test_instances  # pooled over the seeds
    report = (out / "report.md").read_text()
    for text in (
        "## Protocol",
        "minus each baseline",
        "## mIoU (%) of each seed",
        "by occlusion band",
        "modulo 180",
        f"Code: commit {results['commit']}",
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
    stamps = {path: path.stat().st_mtime_ns for path in out.glob("runs/*/*/model.json")}
    again = run_viewpoint_benchmark(BenchmarkSettings("tiny", out, models=["2d", "U-Net"]), log=QUIET)
    assert {path: path.stat().st_mtime_ns for path in out.glob("runs/*/*/model.json")} == stamps
    assert again["splits"]["test"]["2D"] == results["splits"]["test"]["2D"]


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(InputError, match="--scale must be one of"):
        BenchmarkSettings("huge", tmp_path)
    with pytest.raises(InputError, match="unknown models"):
        BenchmarkSettings("tiny", tmp_path, models=["3d"])
    with pytest.raises(InputError, match="--stale must be one of redo, refuse"):
        BenchmarkSettings("tiny", tmp_path, stale="keep")
    optional = BenchmarkSettings("tiny", tmp_path, models=["a3d-1-camera-view-cycle"]).specs
    assert [spec.name for spec in optional] == ["A3D, 1 camera, view cycle"] and optional[0] in OPTIONAL_MODELS


def test_specs_are_overrides_of_one_base_and_record_what_they_trained_with(finished):
    out, results = finished
    scale = SCALES["tiny"]
    one_camera = next(spec for spec in OPTIONAL_MODELS if spec.name == "A3D, 1 camera, view cycle, U-Net refine")
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

    record = json.loads((out / "runs" / "a3d-1-camera" / "seed-0" / "model.json").read_text())
    trained = load_stage2_from_checkpoint(record["checkpoint"]).settings
    assert record["stage2"] == trained.to_dict()  # the record keeps the network's own settings
    assert trained.viewpoint.azimuth_hypotheses == 1 and trained.cross_view_weight == 1.0
    assert trained.template_level == scale.template_level and trained.image_size == scale.image_size
    recorded = record["provenance"]
    assert recorded["settings"]["stage2"] == trained.to_dict() and recorded["settings"]["seed"] == 0
    assert recorded["settings"]["train"]["batch_size"] == scale.batch_size
    assert recorded["settings"]["scale"]["instances"] == scale.instances
    assert recorded["code"] == results["code"] and {"commit", "dirty"} <= set(recorded)
    assert "commit" in results and "dirty" in results


def copy_run(out, slug, name):
    """A copy of the benchmark's finished first-seed run of ``slug`` under ``out/name``."""
    import shutil

    return shutil.copytree(out / "runs" / slug / "seed-0", out / name)


def test_a_finished_model_of_other_settings_or_code_is_retrained_or_refused_not_mixed(finished, monkeypatch):
    out, _ = finished
    spec = next(spec for spec in MODELS if spec.slug == "a3d-1-camera")
    scale, data = SCALES["tiny"], out / "data"
    run = copy_run(out, spec.slug, "provenance-settings")
    record = json.loads((run / "model.json").read_text())
    assert train_model(spec, scale, data, run, 0, "cpu", QUIET) == record  # matching: reused as it is

    changed = dataclasses.replace(spec, stage2={**spec.stage2, "viewpoint.hypothesis_selection": "scores"})
    with pytest.raises(InputError, match=r"provenance-settings: A3D, 1 camera is stale: .*other settings.*stage2"):
        train_model(changed, scale, data, run, 0, "cpu", QUIET, stale="refuse")
    retrained = train_model(changed, scale, data, run, 0, "cpu", QUIET)
    assert retrained["provenance"]["settings"]["stage2"]["viewpoint"]["hypothesis_selection"] == "scores"
    assert load_stage2_from_checkpoint(retrained["checkpoint"]).settings.viewpoint.hypothesis_selection == "scores"

    run = copy_run(out, spec.slug, "provenance-code")
    monkeypatch.setattr(provenance_module, "code_fingerprint", lambda: "another version of the code")
    with pytest.raises(InputError, match="provenance-code: A3D, 1 camera is stale: it was made by other code"):
        train_model(spec, scale, data, run, 0, "cpu", QUIET, stale="refuse")
    retrained = train_model(spec, scale, data, run, 0, "cpu", QUIET)
    assert retrained["provenance"]["code"] == "another version of the code"
    assert retrained["checkpoint"] != record["checkpoint"]

    legacy = copy_run(out, spec.slug, "provenance-legacy")
    old = json.loads((legacy / "model.json").read_text())
    del old["provenance"]  # a record from before provenance was kept cannot be vouched for
    (legacy / "model.json").write_text(json.dumps(old))
    with pytest.raises(InputError, match="is stale: it records no provenance"):
        train_model(spec, scale, data, legacy, 0, "cpu", QUIET, stale="refuse")


def test_an_interrupted_run_resumes_only_under_the_same_provenance(finished):
    out, _ = finished
    spec = next(spec for spec in MODELS if spec.slug == "2d")
    run = copy_run(out, spec.slug, "interrupted")
    (run / "model.json").unlink()  # interrupted: its last.pt and the provenance it started with remain
    assert (run / "last.pt").is_file() and (run / "provenance.json").is_file()
    changed = dataclasses.replace(spec, stage2={"refine.architecture": "unet"})
    with pytest.raises(InputError, match="interrupted: 2D is stale: it was made with other settings"):
        train_model(changed, SCALES["tiny"], out / "data", run, 0, "cpu", QUIET, stale="refuse")
    resumed = train_model(spec, SCALES["tiny"], out / "data", run, 0, "cpu", QUIET)
    assert resumed["steps"] == training_steps(spec, SCALES["tiny"])


def test_stale_data_is_refused_or_prepared_again(finished, tmp_path, monkeypatch):
    from a3d_core.experiments.viewpoints.training import prepare_data

    root = tmp_path / "data"
    prepare_data(SCALES["tiny"], root, 0, QUIET)
    stamp = (root / "dataset.json").stat().st_mtime_ns
    prepare_data(SCALES["tiny"], root, 0, QUIET)  # the same code and settings: reused
    assert (root / "dataset.json").stat().st_mtime_ns == stamp
    monkeypatch.setattr(provenance_module, "code_fingerprint", lambda: "another version of the code")
    with pytest.raises(InputError, match="data: the dataset is stale: it was made by other code"):
        prepare_data(SCALES["tiny"], root, 0, QUIET, stale="refuse")
    messages = []
    prepare_data(SCALES["tiny"], root, 0, messages.append)
    assert any("is stale, preparing it again" in message for message in messages)
    assert json.loads((tmp_path / "data.json").read_text())["provenance"]["code"] == "another version of the code"


def test_the_untrained_retrieval_is_built_from_its_overrides_and_its_tables_follow_them(finished):
    out, _ = finished
    retrieval = next(spec for spec in MODELS if spec.name == "retrieval")
    model = load_model(retrieval, {}, out / "data", ["car", "table"], SCALES["tiny"], seed=0)
    expected = ShapeDictSettings(atoms_per_category=0, mirrored=True, retrieval="all")
    assert model.settings.shapedict == expected and model.settings.image_size == 16
    assert isinstance(model.settings, ASMSettings) and model.settings.input_framing == 1.1

    folder = out / "runs" / "retrieval" / "seed-0" / "tables"
    recorded = json.loads((folder / "provenance.json").read_text())["provenance"]
    assert recorded["settings"]["stage2"] == model.settings.to_dict() and "commit" in recorded
    stamp = (folder / "val.npz").stat().st_mtime_ns
    evaluate_model(retrieval, model, out / "data", ["val"], folder, torch.device("cpu"))
    assert (folder / "val.npz").stat().st_mtime_ns == stamp  # the same settings: reused
    other = {**recorded, "settings": {**recorded["settings"], "stage2": {"image_size": 8}}}
    (folder / "provenance.json").write_text(json.dumps({"provenance": other}))
    evaluate_model(retrieval, model, out / "data", ["val"], folder, torch.device("cpu"))
    assert (folder / "val.npz").stat().st_mtime_ns != stamp  # other settings: computed again
    restamp = (folder / "val.npz").stat().st_mtime_ns
    again = json.loads((folder / "provenance.json").read_text())["provenance"]
    assert again["settings"]["stage2"] == model.settings.to_dict()
    assert sorted(path.name for path in folder.glob("*.npz")) == ["val.npz"]
    (folder / "provenance.json").write_text(json.dumps({"provenance": {**again, "code": "older code"}}))
    evaluate_model(retrieval, model, out / "data", ["val"], folder, torch.device("cpu"))
    assert (folder / "val.npz").stat().st_mtime_ns != restamp  # other code: computed again


def spy_on_moves(model):
    """The list of every move of ``model`` from now on (``.cpu()``, ``.cuda()`` and ``.to()`` go through ``_apply``)."""
    moves = []
    original = model._apply
    model._apply = lambda fn, *args, **kwargs: moves.append(fn) or original(fn, *args, **kwargs)
    return moves


@pytest.mark.parametrize("training", [True, False])
def test_the_3d_diagnostics_leave_the_model_on_its_device_and_in_its_mode(finished, training):
    out, results = finished
    model = load_stage2_from_checkpoint(results["models"][MAIN_MODEL]["checkpoint"]).train(training)
    modes = [module.training for module in model.modules()]
    devices = [parameter.device for parameter in model.parameters()]
    moves = spy_on_moves(model)
    run = out / "runs" / "a3d-1-camera" / "seed-0"
    splits = SPLITS
    tables = {split: load_table(run / "tables" / f"{split}.npz") for split in ["val", *splits]}
    truths = true_meshes(read_shard_manifest(out / "data"))
    targets = novel_view_targets(out / "data", splits)
    diagnostics = diagnostics_3d([model], [tables], splits, targets, resamples=10, seed=0, truths=truths)

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
    again = run_viewpoint_benchmark(BenchmarkSettings("tiny", out), log=QUIET)
    assert again["diagnostics"] and (out / "examples.png").is_file()
    assert len(loaded) == sum(len(model_seeds(spec, SCALES["tiny"], 0)) for spec in MODELS if spec.kind != "visible")
    for model, modes, moves in loaded:
        assert len(moves) == 1  # the driver's own .to(device)
        assert [module.training for module in model.modules()] == modes


def test_deocclusion_learns_from_visible_masks_and_is_scored_on_mask_inputs(finished):
    out, results = finished
    data, spec = out / "data", DEOCCLUSION
    views = open_split(data, "train")
    pairs = training_components(spec, 0).open_split(data, "train")
    for index in range(0, len(views), max(1, len(views) // 5)):
        view, pair = views.dataset[index], pairs[index]  # unframed: pretraining frames both alike
        assert torch.equal(pair["amodal"], view["visible"])  # the target is the visible mask
        assert bool((pair["visible"] <= pair["amodal"]).all())
    scored = model_inputs(spec, data, "test").dataset[0]  # unframed: framing resamples the RGB smoothly
    reference = open_split(data, "test").dataset[0]
    assert torch.equal(scored["rgb"][0], reference["visible"][0])
    assert torch.equal(scored["rgb"][1], reference["occluder"][0])
    assert torch.equal(scored["amodal"], reference["amodal"])
    assert model_inputs(ONE_CAMERA_A3D, data, "test").dataset[0]["rgb"].equal(reference["rgb"])
    record = results["models"][spec.name]
    assert record["instances"] == SCALES["tiny"].instances
    trained = json.loads((run_folder(out, spec, 0) / "model.json").read_text())
    assert trained["provenance"]["settings"]["targets"] == "modal"
