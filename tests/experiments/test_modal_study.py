"""The modal study end to end at its tiny scale: every model on every test set with intervals over
images and seeds, the paired differences, provenance, reuse, and runs of disjoint models side by side."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from a3d_core.errors import InputError
from a3d_core.experiments.modal import evaluation as evaluation_module, training as training_module
from a3d_core.experiments.modal.evaluation import Scores
from a3d_core.experiments.modal.specs import MODELS, SCALES, TEST_SETS, ModelSpec, select_models
from a3d_core.experiments.modal.study import StudySettings, run_modal_study
from a3d_core.experiments.modal.training import prepare_data, run_folder
from a3d_core.experiments.viewpoints.provenance import code_fingerprint
from tests.shared_data import COCOAPI

ANNOTATIONS = COCOAPI / "instances_val2014_100.json"
pytestmark = pytest.mark.skipif(not ANNOTATIONS.is_file(), reason=f"{ANNOTATIONS} not found (shared fixtures)")


def QUIET(message: str) -> None:
    """A log that says nothing."""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("modal")
    return out, run_modal_study(StudySettings("tiny", out, ANNOTATIONS, device="cpu"), log=QUIET)


def test_every_model_is_scored_on_every_test_set_with_intervals_over_images(finished):
    out, results = finished
    names = [spec.name for spec in MODELS]
    assert list(results["models"]) == names and len(names) == 13
    manifest = json.loads((out / "data" / "real" / "dataset.json").read_text())
    split_of = {entry["image_id"]: entry["split"] for entry in manifest["objects"]}
    test_images = {image for image, split in split_of.items() if split == "test"}
    for test_set in TEST_SETS:
        assert list(results["test_sets"][test_set]) == names
        for name, metrics in results["test_sets"][test_set].items():
            assert metrics["seeds"] == (2 if results["models"][name]["headline"] else 1)
            for key in ("miou", "hidden_miou"):
                interval = metrics[key]
                assert interval["low"] - 1e-9 <= interval["value"] <= interval["high"] + 1e-9
    real = results["test_sets"]["real"]["visible mask"]
    assert real["units"] == len(test_images) and real["instances"] == sum(
        entry["split"] == "test" for entry in manifest["objects"]
    )
    assert results["test_sets"]["scenes"]["visible mask"]["units"] == 3  # the scenes' images
    for test_set in TEST_SETS:
        visible = results["test_sets"][test_set]["visible mask"]
        assert visible["hidden_miou"]["value"] == 0.0 and 0 < visible["miou"]["value"] < 100
    # the units resampled are the held-out images, none of which a model trained on
    scores = Scores.load(run_folder(out, ModelSpec("a3d", "real"), 1) / "tables" / "real.npz")
    assert set(scores.unit.tolist()) == test_images
    trained = [results["test_sets"]["real"][spec.name]["miou"]["value"] for spec in MODELS if spec.trained]
    assert len(set(trained)) > 1  # the models differ


def test_paired_differences_answer_both_questions_for_the_headline_kinds(finished):
    _, results = finished
    asked = {(d["kind"], d["first"], d["second"], d["test_set"]) for d in results["differences"]}
    for kind in ("2d-unet", "a3d"):
        assert (kind, "both", "library", "scenes") in asked and (kind, "both", "real", "real") in asked
    for difference in results["differences"]:
        first = results["test_sets"][difference["test_set"]][f"{difference['kind']} on {difference['first']}"]
        second = results["test_sets"][difference["test_set"]][f"{difference['kind']} on {difference['second']}"]
        assert difference["miou"]["seeds"] == 2
        assert difference["miou"]["value"] == pytest.approx(first["miou"]["value"] - second["miou"]["value"])
        assert difference["miou"]["low"] <= difference["miou"]["value"] <= difference["miou"]["high"]


def test_every_model_and_table_records_its_provenance(finished):
    out, results = finished
    code = code_fingerprint()
    for spec in MODELS:
        runs = results["models"][spec.name]["runs"]
        for index in range(len(runs)):
            folder = run_folder(out, spec, index)
            tables = json.loads((folder / "tables" / "provenance.json").read_text())["provenance"]
            assert tables["code"] == code
            if spec.trained:
                record = json.loads((folder / "model.json").read_text())
                settings = record["provenance"]["settings"]
                assert record["provenance"]["code"] == code and tables["settings"]["trained_by"] == record["provenance"]
                assert (settings["kind"], settings["source"], settings["seed"]) == (spec.kind, spec.source, index)
                assert set(settings["data"]) == ({"real", "library"} if spec.source == "both" else {spec.source})
                assert settings["pretrain"]["cross_view"] is False and settings["pretrain"]["flip"] is True
                assert record["instances"] == 32 and runs[index]["instances"] == 32  # the same budget for all
    for name in ("real", "library", "scenes"):
        assert json.loads((out / "data" / f"{name}.json").read_text())["provenance"]["code"] == code
    assert results["code"] == code and "commit" in results
    report = (out / "report.md").read_text()
    assert "| a3d | both |" in report and "both - library" in report


def test_a_rerun_reuses_every_model_and_score(finished, monkeypatch):
    out, results = finished

    def fail(*arguments, **options):
        raise AssertionError("a rerun must reuse, not redo")

    monkeypatch.setattr(training_module, "pretrain", fail)
    monkeypatch.setattr(evaluation_module, "score_views", fail)
    monkeypatch.setattr(evaluation_module, "score_scenes", fail)
    again = run_modal_study(StudySettings("tiny", out, ANNOTATIONS, device="cpu"), log=QUIET)
    assert again["test_sets"] == results["test_sets"] and again["differences"] == results["differences"]


def test_stale_results_are_refused_or_scored_again(finished):
    out, _ = finished
    folder = run_folder(out, ModelSpec("2d", "real"), 0)
    record = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**record, "provenance": {**record["provenance"], "code": "old"}}))
    try:
        with pytest.raises(InputError, match="2d on real is stale"):
            run_modal_study(StudySettings("tiny", out, ANNOTATIONS, ["2d-real"], device="cpu", stale="refuse"), QUIET)
    finally:
        (folder / "model.json").write_text(json.dumps(record))
    tables = folder / "tables" / "provenance.json"
    recorded = json.loads(tables.read_text())
    before = Scores.load(folder / "tables" / "real.npz")
    tables.write_text(json.dumps({"provenance": {**recorded["provenance"], "code": "old"}}))
    run_modal_study(StudySettings("tiny", out, ANNOTATIONS, ["2d-real"], device="cpu"), QUIET)
    assert json.loads(tables.read_text()) == recorded  # scored again by this code, alike
    assert np.array_equal(Scores.load(folder / "tables" / "real.npz").iou, before.iou)


def test_a_run_of_some_models_needs_prepared_data_and_writes_only_their_folders(tmp_path):
    with pytest.raises(InputError, match="prepare it first"):
        run_modal_study(StudySettings("tiny", tmp_path, ANNOTATIONS, ["visible"], device="cpu"), QUIET)
    assert run_modal_study(StudySettings("tiny", tmp_path, ANNOTATIONS, data_only=True), QUIET) is None
    assert run_modal_study(StudySettings("tiny", tmp_path, ANNOTATIONS, ["visible"], device="cpu"), QUIET) is None
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["visible"] and not (tmp_path / "report.md").exists()


def test_models_are_chosen_by_slug_or_kind():
    assert [m.slug for m in select_models(["a3d", "2d-real"])] == ["2d-real", "a3d-real", "a3d-library", "a3d-both"]
    with pytest.raises(InputError, match="unknown models"):
        StudySettings("tiny", "out", ANNOTATIONS, ["a3d-elsewhere"])
    with pytest.raises(InputError, match="--scale"):
        StudySettings("huge", "out", ANNOTATIONS)


def test_scores_of_other_test_data_are_computed_again(finished, tmp_path, monkeypatch):
    out, _ = finished
    spec = ModelSpec("2d", "real")
    record = json.loads((run_folder(out, spec, 0) / "model.json").read_text())
    folder = tmp_path / "tables"
    shutil.copytree(run_folder(out, spec, 0) / "tables", folder)
    data = prepare_data(SCALES["tiny"], out / "data", ANNOTATIONS, 0, QUIET, prepare=False)
    scored = []
    fake = Scores(np.ones(2), np.zeros(2), np.arange(2))
    monkeypatch.setattr(
        evaluation_module, "score_views", lambda model, data, test_set, device: scored.append(test_set) or fake
    )
    monkeypatch.setattr(evaluation_module, "score_scenes", lambda completer, scenes: scored.append("scenes") or fake)
    evaluation_module.evaluate_model(spec, record, data, folder, torch.device("cpu"))
    assert scored == []  # the same code, model and data: reused
    recipes = {**data.recipes, "scenes": {**data.recipes["scenes"], "val_images": 99}}
    evaluation_module.evaluate_model(
        spec, record, dataclasses.replace(data, recipes=recipes), folder, torch.device("cpu")
    )
    assert sorted(scored) == sorted(TEST_SETS)
