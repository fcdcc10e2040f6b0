"""The viewpoint benchmark end to end at its tiny scale: every model, split, metric and plot."""

import imageio.v3 as iio
import pytest

from a3d_core.errors import InputError
from a3d_core.experiments.viewpoints.benchmark import (
    MODELS,
    SCALES,
    BenchmarkSettings,
    run_viewpoint_benchmark,
    training_steps,
)

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
