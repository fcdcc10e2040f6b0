"""The viewpoint estimator: bounded elevation and distance, azimuth = atan2(a_x, a_y) (paper 3.4)."""

import math

import pytest
import torch

from a3d_core.geometry import Viewpoint
from a3d_core.model.viewpoint import ViewpointEstimator, ViewpointSettings
from tests.model.conftest import tiny_encoder


def estimator(hypotheses=1):
    return ViewpointEstimator(32, settings=ViewpointSettings(encoder=tiny_encoder(), azimuth_hypotheses=hypotheses))


def test_untrained_estimator_predicts_kato_view():
    viewpoint = estimator()(torch.rand(3, 4, 32, 32))
    assert isinstance(viewpoint, Viewpoint) and len(viewpoint) == 3
    assert viewpoint.elevation.shape == viewpoint.azimuth.shape == viewpoint.distance.shape == (3,)
    assert torch.allclose(torch.rad2deg(viewpoint.elevation), torch.full((3,), 30.0), atol=0.5)
    assert torch.allclose(viewpoint.distance, torch.full((3,), 2.732), atol=0.02)


def test_predictions_stay_in_their_ranges():
    model = estimator()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([1e3, -1e3, 0.0, 0.0]))
    viewpoint = model(torch.rand(2, 4, 32, 32))
    assert torch.allclose(torch.rad2deg(viewpoint.elevation), torch.full((2,), 75.0))
    assert torch.allclose(viewpoint.distance, torch.full((2,), 2.0))


def test_azimuth_is_atan2_of_the_bounded_pair():
    model = estimator()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 0.0, math.atanh(0.5), math.atanh(-0.5)]))
    viewpoint = model(torch.rand(2, 4, 32, 32))
    assert torch.allclose(torch.rad2deg(viewpoint.azimuth), torch.full((2,), 135.0))


def test_hypotheses_turn_one_camera_evenly_around():
    model = estimator(hypotheses=4)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 0.0, math.atanh(0.5), math.atanh(0.5)]))
    hypotheses = model(torch.rand(2, 4, 32, 32))
    assert len(hypotheses) == 8  # instance-major: 4 per instance
    assert torch.allclose(torch.rad2deg(hypotheses.azimuth[:4]), torch.tensor([45.0, 135.0, -135.0, -45.0]))
    assert torch.equal(hypotheses.azimuth[:4], hypotheses.azimuth[4:])
    assert torch.equal(hypotheses.elevation[:4], hypotheses.elevation[:1].expand(4))
    assert torch.equal(hypotheses.distance[:4], hypotheses.distance[:1].expand(4))


def test_settings_are_validated():
    with pytest.raises(ValueError, match="poles"):
        ViewpointSettings(elevation_range_deg=(-90.0, 90.0))
    with pytest.raises(ValueError, match="initial_distance"):
        ViewpointSettings(distance_range=(3.0, 4.0))
    with pytest.raises(ValueError, match="azimuth_hypotheses"):
        ViewpointSettings(azimuth_hypotheses=0)
