"""The two-stage study: each kind trained as the demo trains it, the choice made on val, the test
scenes of other objects, and a rerun that reuses or refuses (the QUICK plan: seconds)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from a3d_core.errors import InputError
from a3d_core.experiments.twostage.specs import VISIBLE
from a3d_core.experiments.twostage.study import StudySettings, run_twostage_study
from a3d_core.pipelines.demo import QUICK


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[StudySettings, dict]:
    settings = StudySettings(
        tmp_path_factory.mktemp("twostage"),
        kinds=("a3d", "2d-unet"),
        seeds=1,
        plan=QUICK,
        val_scenes=2,
        test_scenes=3,
        resamples=20,
    )
    return settings, run_twostage_study(settings, log=lambda message: None)


def test_each_run_trains_its_kind_as_the_demo_plan_says(study: tuple[StudySettings, dict]) -> None:
    settings, results = study
    for kind in settings.kinds:
        (run,) = results["models"][kind]["runs"]
        checkpoint = torch.load(run["checkpoint"], weights_only=True)
        assert checkpoint["model_config"]["settings"]["stage2_kind"] == kind
        folder = Path(run["checkpoint"]).parents[1]
        steps = [json.loads(line)["step"] for line in (folder / "pretrain" / "metrics.jsonl").read_text().splitlines()]
        assert max(steps) == QUICK.pretrain_steps
        assert checkpoint["total_steps"] == QUICK.finetune_steps


def test_the_choice_is_the_best_val_miou_and_test_scenes_come_from_another_seed(
    study: tuple[StudySettings, dict],
) -> None:
    settings, results = study
    val = {kind: results["models"][kind]["val"]["miou"]["value"] for kind in settings.kinds}
    assert results["chosen"] == max(val, key=val.get)
    data = settings.out / "data"
    assert json.loads((data / "scenes" / "dataset.json").read_text())["generator"]["seed"] == settings.data_seed
    assert json.loads((data / "scenes-test" / "dataset.json").read_text())["generator"]["seed"] == settings.test_seed
    # every split is scored on all its instances, by every model
    for split, scenes in (("val", data / "scenes"), ("test", data / "scenes-test")):
        annotations = json.loads((scenes / "val.json").read_text())["annotations"]
        assert results["instances"][split] == len(annotations)
        for name in (VISIBLE, *settings.kinds):
            assert results["models"][name][split]["instances"] == len(annotations)
    assert "Chosen: **" in (settings.out / "report.md").read_text()


def test_a_rerun_reuses_runs_and_refuses_other_settings_when_asked(study: tuple[StudySettings, dict]) -> None:
    settings, results = study
    record = Path(results["models"]["a3d"]["runs"][0]["checkpoint"]).parents[1] / "model.json"
    written = record.stat().st_mtime_ns
    again = run_twostage_study(settings, log=lambda message: None)
    assert record.stat().st_mtime_ns == written
    assert again["models"]["a3d"]["val"] == results["models"]["a3d"]["val"]
    with pytest.raises(InputError, match="data is stale"):
        run_twostage_study(replace(settings, test_scenes=4, stale="refuse"), log=lambda message: None)


def test_settings_refuse_unknown_kinds_and_a_shared_test_seed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kinds"):
        StudySettings(tmp_path, kinds=("a4d",))
    with pytest.raises(ValueError, match="another seed"):
        StudySettings(tmp_path, test_seed=0)
