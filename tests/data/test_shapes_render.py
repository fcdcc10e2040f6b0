"""Rendering meshes: silhouette geometry at known views, Kato's azimuth order, textures, determinism."""

import math

import pytest
import torch
from pytorch3d.renderer import TexturesVertex
from pytorch3d.structures import Meshes
from pytorch3d.utils import ico_sphere

from a3d_core.data.mesh_folder import load_mesh
from a3d_core.data.render import MeshRenderer, RenderSettings
from a3d_core.data.shapes import generate_shape, to_pytorch3d
from a3d_core.geometry import KATO_DISTANCE, KATO_FOV_DEG, kato_viewpoints
from tests.shared_data import MESHES


def sphere(radius: float, centre=(0.0, 0.0, 0.0), level: int = 3) -> Meshes:
    template = ico_sphere(level)
    vertices = template.verts_packed() * radius + torch.tensor(centre)
    return Meshes([vertices], [template.faces_packed()], textures=TexturesVertex([torch.full_like(vertices, 0.5)]))


def centroid(mask: torch.Tensor) -> tuple[float, float]:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return float(ys.float().mean()), float(xs.float().mean())


def test_sphere_silhouette_has_the_projected_disc_area_and_sits_in_the_centre():
    size, radius = 64, 0.3
    rendered = MeshRenderer(RenderSettings(image_size=size, supersample=1))(sphere(radius), kato_viewpoints([0, 5]))
    # a sphere subtends asin(r / d); the lens maps tan(15 deg) to the image's half-width
    disc_radius = math.tan(math.asin(radius / KATO_DISTANCE)) / math.tan(math.radians(KATO_FOV_DEG / 2)) * size / 2
    for mask in rendered.silhouette:
        assert float(mask.sum()) == pytest.approx(math.pi * disc_radius**2, rel=0.04)
        y, x = centroid(mask)
        assert y == pytest.approx((size - 1) / 2, abs=0.3) and x == pytest.approx((size - 1) / 2, abs=0.3)


def test_kato_azimuth_order_puts_the_camera_at_minus_15_v_degrees():
    """A marker at +X: view 18 (azimuth -270 = +90) looks at it from +X (near, large), view 6 from -X (far)."""
    marker = sphere(0.08, centre=(0.4, 0.0, 0.0), level=2)
    masks = MeshRenderer(RenderSettings(image_size=64, supersample=1))(
        marker, kato_viewpoints([0, 6, 12, 18])
    ).silhouette
    areas = masks.flatten(1).sum(1).float()
    xs = [centroid(m)[1] for m in masks]
    assert areas[3] > 1.3 * areas[1]  # nearer at view 18 than at view 6
    assert xs[1] == pytest.approx(31.5, abs=0.5) and xs[3] == pytest.approx(31.5, abs=0.5)  # on the optical axis
    assert (xs[0] - 31.5) * (xs[2] - 31.5) < 0 and abs(xs[0] - 31.5) > 10  # opposite sides at views 0 and 12
    assert abs(xs[0] - 31.5) == pytest.approx(abs(xs[2] - 31.5), abs=0.5)


def test_world_plus_x_appears_on_the_right_at_view_0_as_in_softras():
    marker = sphere(0.08, centre=(0.4, 0.0, 0.0), level=2)
    mask = MeshRenderer(RenderSettings(image_size=64, supersample=1))(marker, kato_viewpoints([0])).silhouette[0]
    assert centroid(mask)[1] > 31.5


def test_rendering_is_deterministic_and_rgb_is_black_outside_the_silhouette():
    mesh = to_pytorch3d(generate_shape("chair", (0, 1)))
    renderer = MeshRenderer(RenderSettings(image_size=32, supersample=1))
    first, second = renderer(mesh, kato_viewpoints([0, 7])), renderer(mesh, kato_viewpoints([0, 7]))
    assert torch.equal(first.rgb, second.rgb) and torch.equal(first.silhouette, second.silhouette)
    assert first.rgb.shape == (2, 3, 32, 32) and first.silhouette.dtype == torch.bool
    assert float(first.rgb.permute(0, 2, 3, 1)[~first.silhouette].abs().max()) == 0.0
    assert float(first.rgb.min()) >= 0.0 and float(first.rgb.max()) <= 1.0


def test_supersampling_keeps_the_silhouette_area():
    disc_radius = math.tan(math.asin(0.3 / KATO_DISTANCE)) / math.tan(math.radians(KATO_FOV_DEG / 2)) * 32
    for supersample in (1, 2):
        renderer = MeshRenderer(RenderSettings(image_size=64, supersample=supersample))
        area = int(renderer(sphere(0.3), kato_viewpoints([0])).silhouette.sum())
        assert area == pytest.approx(math.pi * disc_radius**2, rel=0.05)


def test_flat_shading_lights_faces_towards_the_key_light_more():
    rendered = MeshRenderer(RenderSettings(image_size=64, supersample=1, specular=0.0))(
        sphere(0.4), kato_viewpoints([0])
    )
    grey = rendered.rgb[0, 0]
    # the key light comes from above the camera: the upper half of the sphere is brighter than the lower
    upper, lower = grey[18:31][rendered.silhouette[0][18:31]], grey[33:46][rendered.silhouette[0][33:46]]
    assert float(upper.mean()) > float(lower.mean()) + 0.05


@pytest.mark.skipif(not (MESHES / "cow" / "cow.obj").is_file(), reason="shared cow mesh not present")
def test_the_cow_renders_with_its_texture():
    rendered = MeshRenderer(RenderSettings(image_size=48, supersample=1))(
        load_mesh(MESHES / "cow" / "cow.obj"), kato_viewpoints([6])
    )
    pixels = rendered.rgb[0].permute(1, 2, 0)[rendered.silhouette[0]]
    brightness = pixels.mean(-1)
    assert len(pixels) > 150
    # the texture is white hide with black patches: both must show
    assert float((brightness < 0.25).float().mean()) > 0.05 and float((brightness > 0.6).float().mean()) > 0.3


@pytest.mark.skipif(not (MESHES / "teapot.obj").is_file(), reason="shared teapot mesh not present")
def test_the_untextured_teapot_renders_grey_and_centred():
    rendered = MeshRenderer(RenderSettings(image_size=48, supersample=1))(
        load_mesh(MESHES / "teapot.obj"), kato_viewpoints([0])
    )
    pixels = rendered.rgb[0].permute(1, 2, 0)[rendered.silhouette[0]]
    assert len(pixels) > 150
    assert float((pixels.max(-1).values - pixels.min(-1).values).max()) < 0.02  # no hue: grey
    y, x = centroid(rendered.silhouette[0])
    assert abs(x - 23.5) < 3 and abs(y - 23.5) < 4


def test_settings_are_validated():
    with pytest.raises(ValueError, match="supersample"):
        RenderSettings(supersample=0)
    with pytest.raises(ValueError, match="background"):
        RenderSettings(background=(2.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="one mesh at a time"):
        MeshRenderer()(sphere(0.3).extend(2), kato_viewpoints([0]))
