"""The encoder (5 conv-bn-relu + 3 fc) and its classification branch (paper 3.3)."""

import pytest
import torch

from a3d_core.model.encoder import ClassificationBranch, Encoder, EncoderSettings
from tests.model.conftest import tiny_encoder


@pytest.mark.parametrize("size", [32, 64])
def test_encoder_maps_inputs_to_feature_vectors(size):
    encoder = Encoder(size, in_channels=4, settings=tiny_encoder())
    features = encoder(torch.rand(3, 4, size, size))
    assert features.shape == (3, 32) and features.dtype == torch.float32
    assert len([m for m in encoder.convs.modules() if isinstance(m, torch.nn.Conv2d)]) == 5
    assert len([m for m in encoder.fcs if isinstance(m, torch.nn.Linear)]) == 3


def test_encoder_rejects_a_wrong_input_shape():
    encoder = Encoder(32, settings=tiny_encoder())
    with pytest.raises(ValueError, match=r"\(B, 4, 32, 32\)"):
        encoder(torch.rand(2, 3, 32, 32))


def test_encoder_settings_follow_the_paper():
    with pytest.raises(ValueError, match="five conv-bn-relu"):
        EncoderSettings(channels=(8, 8, 8, 8))
    with pytest.raises(ValueError, match="three fc"):
        EncoderSettings(fc_dims=(8, 8))
    assert EncoderSettings(fc_dims=[4, 5, 6]).feature_dim == 6


def test_classification_rows_transfer_by_category_name():
    source = ClassificationBranch(8, ["car", "chair"])
    target = ClassificationBranch(8, ["boat", "car"])
    target.load_category_state("car", source.category_state("car"))
    features = torch.rand(5, 8)
    assert torch.allclose(target(features)[:, 1], source(features)[:, 0])
    assert source(features).shape == (5, 2)
    with pytest.raises(KeyError, match="boat"):
        source.category_state("boat")
