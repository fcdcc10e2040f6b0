"""End to end: the real 3D-ASM network (tiny) trained by `pretrain` on a dataset from `a3d prepare shapenet`."""

from __future__ import annotations

import pytest
import torch

from a3d_core.data.prepare_shapenet import PrepareShapeNetConfig, prepare_shapenet
from a3d_core.errors import TrainingError
from a3d_core.model.asm import ASMSettings, load_stage2_from_checkpoint
from a3d_core.model.encoder import EncoderSettings
from a3d_core.model.refine import RefineSettings
from a3d_core.model.render import SilhouetteRendererSettings
from a3d_core.model.shape import ShapeDecoderSettings
from a3d_core.model.viewpoint import ViewpointSettings
from a3d_core.train.loop import TrainSettings
from a3d_core.train.pretrain import PretrainSettings, pretrain

SIZE = 16


def tiny_asm(hidden=32):
    """Tiny stage-2 settings; pretraining sets the image size (the data's), framing and cross-view weight."""
    encoder = EncoderSettings(channels=(8, 8, 16, 16, 16), fc_dims=(32, 32, 32))
    return ASMSettings(
        template_level=1,
        encoder=encoder,
        shape=ShapeDecoderSettings(hidden_dim=hidden),
        viewpoint=ViewpointSettings(encoder=encoder),
        renderer=SilhouetteRendererSettings(faces_per_pixel=4),
        refine=RefineSettings(hidden_channels=8, architecture="edge"),
    )


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapenet") / "data"
    prepare_shapenet(
        PrepareShapeNetConfig(
            out=out,
            categories=("chair", "table"),
            objects_per_category=4,
            views=4,
            image_size=SIZE,
            split_fractions=(0.5, 0.25, 0.25),
            holdout_views=(18, 23),
            seed=1,
            min_amodal_pixels=4,
        )
    )
    return out


def run(shapes, out, steps, resume=False, stage2=None, model="a3d"):
    # validation at the same steps, interrupted at 2 or not
    train = TrainSettings(
        lr=1e-3,
        batch_size=4,
        epochs=None,
        steps=steps,
        checkpoint_every=2,
        val_every=2,
        log_every=1,
        progress=False,
        tensorboard=False,
    )
    settings = PretrainSettings(
        data=shapes,
        out=out,
        stage2_kind=model,
        stage2=stage2 or tiny_asm(),
        train=train,
        resume=resume,
        device="cpu",
    )
    return pretrain(settings)


def test_a3d_with_cross_view_resumes_bit_for_bit_and_exports_a_loadable_checkpoint(shapes, tmp_path):
    whole = run(shapes, tmp_path / "whole", steps=4)
    run(shapes, tmp_path / "parts", steps=2)
    resumed = run(shapes, tmp_path / "parts", steps=4, resume=True)

    assert resumed.training.start_step == 2
    loss_terms = set(whole.training.train_losses)
    assert {"loss", "loss/reconstruction", "loss/cross_view"} <= loss_terms
    first = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["model"]
    second = torch.load(tmp_path / "parts" / "last.pt", weights_only=True)["model"]
    for key in first:
        assert torch.equal(first[key], second[key]), key
    assert whole.evaluations["test"].model.miou == resumed.evaluations["test"].model.miou

    model = load_stage2_from_checkpoint(whole.evaluated_checkpoint)
    assert model.kind == "a3d" and model.category_names == ["chair", "table"]
    settings = model.config()["settings"]
    assert settings["template_level"] == 1 and settings["encoder"]["fc_dims"] == [32, 32, 32]  # the settings given
    assert (settings["image_size"], settings["renderer"]["image_size"]) == (SIZE, SIZE)  # and pretraining's own
    assert (settings["input_framing"], settings["cross_view_weight"]) == (1.1, 1.0)
    checkpoint = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    assert checkpoint["config"]["pretrain"]["stage2"] == settings  # the run records the network's own settings


def test_the_2d_baseline_trains_on_the_same_data(shapes, tmp_path):
    result = run(shapes, tmp_path / "2d", steps=2, model="2d")
    assert result.cross_view is False
    assert "loss/cross_view" not in result.training.train_losses
    assert load_stage2_from_checkpoint(result.evaluated_checkpoint).kind == "2d"


def test_resuming_with_another_network_names_the_difference(shapes, tmp_path):
    run(shapes, tmp_path / "run", steps=2)

    with pytest.raises(TrainingError, match=r"last\.pt: checkpoint of another model or dataset \(model_config differs"):
        run(shapes, tmp_path / "run", steps=4, resume=True, stage2=tiny_asm(hidden=48))


@pytest.mark.parametrize("model", ["a3d", "2d-unet"])
def test_occluder_input_pretrains_on_the_stored_occluders_and_reloads(shapes, tmp_path, model):
    """A tiny-scale smoke test: the stored occluders reach the network through framing and pairs."""
    from dataclasses import replace

    from a3d_core.model.unet2d import UNet2DSettings

    stage2 = replace(tiny_asm(), occluder_input=True, unet=UNet2DSettings(widths=(4, 4, 8, 8)))
    result = run(shapes, tmp_path / model, steps=2, stage2=stage2, model=model)
    assert result.evaluations["test"].model.miou > 0.0
    network = load_stage2_from_checkpoint(result.evaluated_checkpoint)
    assert network.settings.occluder_input and network.encoder.convs[0][0].weight.shape[1] == 5
