"""The occluder-input models of the viewpoint benchmark: optional, named, overrides of the base."""

from __future__ import annotations

import torch

from a3d_core.experiments.viewpoints.benchmark import BenchmarkSettings
from a3d_core.experiments.viewpoints.specs import (
    MODELS,
    OPTIONAL_MODELS,
    SCALES,
    base_settings,
    override_settings,
)
from a3d_core.model.asm import build_stage2


def test_the_occluder_models_are_optional_overrides_that_build_five_channel_networks(tmp_path):
    scale = SCALES["tiny"]
    names = {"U-Net, occluder input": "U-Net", "A3D, 1 camera, occluder input": "A3D, 1 camera"}
    for name, plain_name in names.items():
        spec = next(spec for spec in OPTIONAL_MODELS if spec.name == name)
        plain = next(spec for spec in MODELS if spec.name == plain_name)
        assert not spec.headline and spec.kind == plain.kind and spec.cross_view == plain.cross_view
        assert spec.settings(scale) == override_settings(plain.settings(scale), {"occluder_input": True})
        assert BenchmarkSettings("tiny", tmp_path, models=[spec.slug]).specs == [spec]
        torch.manual_seed(0)
        network = build_stage2(spec.kind, ["chair"], spec.settings(scale))
        assert network.encoder.in_channels == 5
    assert base_settings(scale).occluder_input is False
