"""Camera sources of the 3D branch (``ViewpointSettings.camera``): learned, supervised, oracle."""

from __future__ import annotations

import math

import pytest
import torch

from a3d_core.errors import InputError
from a3d_core.geometry import Viewpoint
from a3d_core.model.a3d import A3DSettings
from a3d_core.model.asm import build_stage2, build_stage2_from_config
from a3d_core.model.losses import LossSettings, reconstruction_loss
from a3d_core.model.viewpoint import CAMERAS, CameraAngles, ViewpointSettings
from tests.model.conftest import CATEGORIES, tiny_encoder, tiny_settings


def camera_settings(camera: str, hypotheses: int = 1, **overrides):
    viewpoint = ViewpointSettings(encoder=tiny_encoder(), azimuth_hypotheses=hypotheses, camera=camera)
    return tiny_settings(viewpoint=viewpoint, **overrides)


def with_cameras(batch, elevation, azimuth):
    """``batch`` with the true camera entries, ``(B,)`` degrees."""
    count = len(batch["category"])
    return {
        **batch,
        "elevation": torch.full((count,), float(elevation)),
        "azimuth": torch.as_tensor(azimuth, dtype=torch.float32).expand(count).clone(),
    }


def constant_estimator(model):
    """Make the estimator predict its initial camera whatever the input: elevation 30, azimuth 0 (degrees)."""
    with torch.no_grad():
        model.mask_branch.viewpoint_estimator.head.weight.zero_()


def test_the_camera_source_is_validated():
    assert CAMERAS == ("learned", "supervised", "oracle")
    assert ViewpointSettings().camera == "learned"
    with pytest.raises(ValueError, match="camera must be one of"):
        ViewpointSettings(camera="true")
    # Oracle with 4 hypotheses is a valid settings object (dotted overrides set them in any order); the build refuses.
    oracle = ViewpointSettings(camera="oracle", azimuth_hypotheses=4)
    with pytest.raises(ValueError, match="oracle camera is the true one: it takes azimuth_hypotheses=1, got 4"):
        build_stage2("a3d", CATEGORIES, tiny_settings(viewpoint=oracle))
    for hypotheses in (1, 4):  # K hypotheses or one
        build_stage2("a3d", CATEGORIES, camera_settings("supervised", hypotheses=hypotheses))


def test_the_2d_baselines_refuse_a_camera_source():
    for kind in ("2d", "2d-unet", "shapedict"):
        with pytest.raises(ValueError, match="the 2D baselines take camera 'learned'"):
            build_stage2(kind, CATEGORIES, camera_settings("supervised"))


def test_the_two_stage_network_refuses_the_oracle_and_camera_supervision():
    with pytest.raises(ValueError, match="the two-stage network has none"):
        A3DSettings(stage2=camera_settings("oracle"))
    with pytest.raises(ValueError, match="camera_supervision=0"):
        A3DSettings(stage2=camera_settings("supervised"))
    no_term = camera_settings("supervised", losses=LossSettings(camera_supervision=0.0))
    assert A3DSettings(stage2=no_term).stage2.viewpoint.camera == "supervised"


def test_the_oracle_renders_at_the_given_camera_with_the_predicted_distance(batch):
    torch.manual_seed(0)
    model = build_stage2("a3d", CATEGORIES, camera_settings("oracle")).eval()
    cameras = with_cameras(batch, 45.0, [120.0, -60.0])
    with torch.no_grad():
        out = model(cameras)
        predicted = model.mask_branch.viewpoint_estimator(torch.cat([batch["rgb"], batch["visible"]], dim=1))
        direct = model.mask_branch.render(
            out["vertices"], Viewpoint.from_degrees([45.0, 45.0], [120.0, -60.0], predicted.distance)
        )
    assert torch.allclose(torch.rad2deg(out["viewpoint"].azimuth), torch.tensor([120.0, -60.0]), atol=1e-4)
    assert torch.allclose(torch.rad2deg(out["viewpoint"].elevation), torch.tensor([45.0, 45.0]), atol=1e-4)
    assert torch.equal(out["viewpoint"].distance, predicted.distance)
    assert torch.allclose(out["coarse_mask"], direct, atol=1e-6)
    turned = model(with_cameras(batch, 45.0, [30.0, -150.0]))  # another camera, another mask
    assert not torch.allclose(turned["coarse_mask"], out["coarse_mask"], atol=1e-3)


def test_the_oracle_trains_at_the_given_camera(batch):
    torch.manual_seed(0)
    model = build_stage2("a3d", CATEGORIES, camera_settings("oracle"))
    model.eval()  # the same normalisation in both passes below
    forced = {**with_cameras(batch, 60.0, 90.0), "shape_category": batch["category"]}  # training's decoders
    with torch.no_grad():
        expected = reconstruction_loss(model(forced)["coarse_mask"], batch["amodal"][:, 0])
    model.train()
    for layer in model.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.eval()
    losses = model(with_cameras(batch, 60.0, 90.0))
    assert "camera_supervision" not in losses
    assert float(losses["reconstruction"].detach()) == pytest.approx(float(expected), abs=1e-5)
    elsewhere = model(with_cameras(batch, 0.0, -90.0))["reconstruction"].detach()
    assert float(elsewhere) != pytest.approx(float(expected), abs=1e-3)


def test_the_true_camera_is_required_where_it_is_read(batch):
    oracle = build_stage2("a3d", CATEGORIES, camera_settings("oracle"))
    with pytest.raises(InputError, match="camera 'oracle' reads .* the batch has no 'elevation' or 'azimuth' entry"):
        oracle(batch)
    with pytest.raises(InputError, match="the batch has no 'azimuth' entry"):
        oracle.eval()({**batch, "elevation": torch.zeros(2)})
    with pytest.raises(InputError, match=r"batch\['azimuth'\] must be \(2,\) degrees"):
        oracle({**batch, "elevation": torch.zeros(2), "azimuth": torch.zeros(3)})
    supervised = build_stage2("a3d", CATEGORIES, camera_settings("supervised"))
    with pytest.raises(InputError, match="camera 'supervised' reads the true camera"):
        supervised.train()(batch)
    assert set(supervised.eval()(batch)) >= {"amodal_mask", "viewpoint"}  # no camera at test time
    paired = build_stage2("a3d", CATEGORIES, camera_settings("supervised", cross_view_weight=1.0))
    pair = {f"{key}_pair": batch[key] for key in ("rgb", "visible", "amodal", "category")}
    with pytest.raises(InputError, match="'elevation_pair' or 'azimuth_pair'"):
        paired.train()({**with_cameras(batch, 30.0, 0.0), **pair})


def supervision(model, batch, elevation, azimuth) -> float:
    return float(model(with_cameras(batch, elevation, azimuth))["camera_supervision"].detach())


def test_camera_supervision_is_zero_at_the_true_camera_and_grows_with_the_error(batch):
    torch.manual_seed(0)
    model = build_stage2("a3d", CATEGORIES, camera_settings("supervised")).train()
    constant_estimator(model)  # predicts elevation 30, azimuth 0 for every view
    at_truth = supervision(model, batch, 30.0, 0.0)
    assert at_truth == pytest.approx(0.0, abs=1e-6)
    errors = [supervision(model, batch, 30.0, azimuth) for azimuth in (20.0, 90.0, 180.0)]
    assert errors == pytest.approx([1 - math.cos(math.radians(20)), 1.0, 2.0], abs=1e-5)
    assert supervision(model, batch, 50.0, 0.0) == pytest.approx(math.radians(20), abs=1e-5)
    assert supervision(model, batch, 30.0, -20.0) == pytest.approx(errors[0], abs=1e-5)  # either way round

    weighted = build_stage2(
        "a3d", CATEGORIES, camera_settings("supervised", losses=LossSettings(camera_supervision=3.0))
    )
    constant_estimator(weighted)
    assert supervision(weighted.train(), batch, 30.0, 90.0) == pytest.approx(3.0, abs=1e-4)
    off = build_stage2("a3d", CATEGORIES, camera_settings("supervised", losses=LossSettings(camera_supervision=0.0)))
    assert "camera_supervision" not in off.train()(batch)  # no term, no camera needed


def test_camera_supervision_trains_the_estimator(batch):
    torch.manual_seed(0)
    model = build_stage2("a3d", CATEGORIES, camera_settings("supervised")).train()
    model(with_cameras(batch, 10.0, 135.0))["camera_supervision"].backward()
    estimator = model.mask_branch.viewpoint_estimator
    assert float(estimator.head.weight.grad.abs().sum()) > 0
    assert float(next(estimator.encoder.parameters()).grad.abs().sum()) > 0
    assert all(p.grad is None for p in model.mask_branch.shape_decoder.parameters())  # the camera term only


def test_with_hypotheses_the_nearest_one_is_supervised(batch):
    torch.manual_seed(0)
    model = build_stage2("a3d", CATEGORIES, camera_settings("supervised", hypotheses=4)).train()
    constant_estimator(model)  # hypotheses at azimuths 0, 90, 180, -90
    for azimuth in (0.0, 90.0, 180.0, -90.0):
        assert supervision(model, batch, 30.0, azimuth) == pytest.approx(0.0, abs=1e-5)
    assert supervision(model, batch, 30.0, 45.0) == pytest.approx(1 - math.cos(math.radians(45)), abs=1e-5)


def test_the_learned_camera_ignores_the_true_camera(batch):
    torch.manual_seed(0)
    model = build_stage2("a3d", CATEGORIES, camera_settings("learned")).eval()
    with torch.no_grad():
        plain = model(batch)
        given = model(with_cameras(batch, 60.0, [90.0, 90.0]))
    assert torch.equal(plain["coarse_mask"], given["coarse_mask"])
    assert torch.equal(plain["viewpoint"].azimuth, given["viewpoint"].azimuth)
    assert "camera_supervision" not in model.train()(with_cameras(batch, 60.0, [90.0, 90.0]))


def test_camera_angles_convert_degrees():
    angles = CameraAngles.from_degrees(torch.tensor([30.0]), torch.tensor([-90.0]))
    viewpoint = angles.at_distance(torch.tensor([2.5]))
    assert viewpoint.elevation.item() == pytest.approx(math.pi / 6) and viewpoint.azimuth.item() == pytest.approx(
        -math.pi / 2
    )
    assert viewpoint.distance.item() == 2.5
    half = angles.at_distance(torch.tensor([2.5], dtype=torch.bfloat16))  # mixed precision keeps the angles exact
    assert half.azimuth.dtype == torch.float32 and half.azimuth.item() == viewpoint.azimuth.item()


def test_the_camera_source_is_part_of_the_config_and_rebuilds():
    config = build_stage2("a3d", CATEGORIES, camera_settings("oracle")).config()
    assert config["settings"]["viewpoint"]["camera"] == "oracle"
    rebuilt = build_stage2_from_config(config)
    assert rebuilt.settings.viewpoint.camera == "oracle" and rebuilt.settings.losses.camera_supervision == 1.0
