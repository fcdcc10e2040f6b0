"""Tiny stage-2 settings and hand-made batches shared by the model tests (S = 32, level-1 sphere).

``tiny_settings`` pins what the tests were written against (4 azimuth hypotheses, the edge refine,
no view cycle), so that they keep testing it when the defaults change."""

from __future__ import annotations

import pytest
import torch

from a3d_core.model.asm import ASMSettings
from a3d_core.model.baseline2d import MaskDecoder2DSettings
from a3d_core.model.encoder import EncoderSettings
from a3d_core.model.losses import LossSettings
from a3d_core.model.refine import RefineSettings
from a3d_core.model.render import SilhouetteRendererSettings
from a3d_core.model.shape import ShapeDecoderSettings
from a3d_core.model.viewpoint import ViewpointSettings

SIZE = 32
CATEGORIES = ["car", "chair"]


def tiny_encoder() -> EncoderSettings:
    return EncoderSettings(channels=(8, 8, 16, 16, 16), fc_dims=(32, 32, 32))


def tiny_settings(**overrides) -> ASMSettings:
    values = dict(
        image_size=SIZE,
        template_level=1,
        encoder=tiny_encoder(),
        shape=ShapeDecoderSettings(hidden_dim=32),
        viewpoint=ViewpointSettings(encoder=tiny_encoder(), azimuth_hypotheses=4),
        renderer=SilhouetteRendererSettings(image_size=SIZE, faces_per_pixel=8),
        refine=RefineSettings(hidden_channels=8, architecture="edge"),
        losses=LossSettings(view_cycle_camera=0.0, view_cycle_shape=0.0),
        mask_decoder=MaskDecoder2DSettings(channels=(16, 8, 8, 8)),
    )
    values.update(overrides)
    return ASMSettings(**values)


def disc(radius: float, centre: tuple[float, float] = (15.5, 15.5), size: int = SIZE) -> torch.Tensor:
    """A binary disc ``(size, size)``."""
    ys, xs = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    return (((ys - centre[0]) ** 2 + (xs - centre[1]) ** 2) <= radius**2).float()


def make_batch(batch_size: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Discs of growing radius, occluded on their left half, on a seeded random background."""
    generator = torch.Generator().manual_seed(seed)
    amodal = torch.stack([disc(7.0 + 2.0 * i) for i in range(batch_size)]).unsqueeze(1)
    visible = amodal.clone()
    visible[..., : SIZE // 2] = 0.0
    rgb = 0.2 * torch.rand(batch_size, 3, SIZE, SIZE, generator=generator) + 0.6 * amodal * visible
    category = torch.arange(batch_size) % len(CATEGORIES)
    return {"rgb": rgb, "visible": visible, "amodal": amodal, "category": category}


@pytest.fixture
def settings() -> ASMSettings:
    return tiny_settings()


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    return make_batch()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine run much faster on one thread (no oversubscription)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
