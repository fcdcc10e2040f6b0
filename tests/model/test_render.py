"""The soft silhouette renderer (paper 3.4): settings, the ``fast`` backend's geometry on hand-made
cases, and its agreement with the pytorch3d reference computed here, in values and gradients."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from a3d_core.geometry import Viewpoint, ico_sphere_template, look_at_cameras, soft_blur_radius
from a3d_core.model import render_fast
from a3d_core.model.render import (
    SilhouetteRendererSettings,
    SoftSilhouetteRenderer,
    resolve_backend,
)
from a3d_core.model.render_fast import pixel_centres_ndc, signed_squared_distances
from tests.shared_data import MESHES

# The project's shared sample meshes (teapot, cow) live in ``shared/data/meshes`` beside the
# checkout (or beside the folder holding a worktree).
MESH_DIR = MESHES if MESHES.is_dir() else None
SILHOUETTE_TOLERANCE = 1e-3
# Without gradients the fast backend aggregates the reference's own distances: only rounding differs.
NO_GRADIENT_TOLERANCE = 1e-6


def renderers(
    image_size: int, faces_per_pixel: int = 50, **extra
) -> tuple[SoftSilhouetteRenderer, SoftSilhouetteRenderer]:
    """The ``fast`` renderer and the ``pytorch3d`` reference with the same settings."""

    def make(backend: str) -> SoftSilhouetteRenderer:
        return SoftSilhouetteRenderer(
            SilhouetteRendererSettings(image_size=image_size, faces_per_pixel=faces_per_pixel, backend=backend, **extra)
        )

    return make("fast"), make("pytorch3d")


def random_viewpoints(batch: int, generator: torch.Generator, distance: float = 2.732) -> Viewpoint:
    elevation = torch.rand(batch, generator=generator) * 120 - 60
    azimuth = torch.rand(batch, generator=generator) * 360
    return Viewpoint.from_degrees(elevation, azimuth, distance)


def deformed_spheres(batch: int, level: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Ico-spheres with random radial bumps and a random tangential jitter: ``(B, V, 3)``, ``(F, 3)``."""
    template, faces = ico_sphere_template(level)
    radial = 1 + 0.25 * torch.rand(batch, template.shape[0], 1, generator=generator)
    jitter = 0.02 * torch.randn(batch, *template.shape, generator=generator)
    return template[None] * radial + jitter, faces


def normalised_mesh(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A real mesh centred on its bounding box and scaled to a unit bounding-box diagonal."""
    from pytorch3d.io import load_obj

    vertices, faces, _ = load_obj(str(path), load_textures=False)
    low, high = vertices.min(0).values, vertices.max(0).values
    return (vertices - (low + high) / 2) / (high - low).norm(), faces.verts_idx


def silhouettes_and_vertex_gradients(renderer, vertices, faces, viewpoint, upstream):
    """Render, back-propagate ``sum(upstream * silhouette)``; return the silhouettes and dL/dvertices."""
    vertices = vertices.detach().clone().requires_grad_(True)
    silhouettes = renderer(vertices, faces, viewpoint)
    (silhouettes * upstream).sum().backward()
    return silhouettes.detach(), vertices.grad


def assert_backends_agree(vertices, faces, viewpoint, image_size, faces_per_pixel=50, seed=0) -> torch.Tensor:
    """Assert the agreement of silhouettes and vertex gradients; return the reference silhouettes."""
    fast, reference = renderers(image_size, faces_per_pixel)
    upstream = torch.randn(vertices.shape[0], image_size, image_size, generator=torch.Generator().manual_seed(seed))
    fast_silhouettes, fast_gradient = silhouettes_and_vertex_gradients(fast, vertices, faces, viewpoint, upstream)
    reference_silhouettes, reference_gradient = silhouettes_and_vertex_gradients(
        reference, vertices, faces, viewpoint, upstream
    )
    assert fast_silhouettes.shape == (vertices.shape[0], image_size, image_size)
    assert reference_silhouettes.amax() > 0.5, "degenerate case: nothing rendered"
    assert (fast_silhouettes - reference_silhouettes).abs().max() < SILHOUETTE_TOLERANCE
    assert reference_gradient.norm() > 0
    cosine = F.cosine_similarity(fast_gradient.flatten(), reference_gradient.flatten(), dim=0)
    assert cosine > 0.99
    assert fast_gradient.norm() / reference_gradient.norm() == pytest.approx(1.0, abs=0.05)
    return reference_silhouettes


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "field, value",
    [
        ("image_size", 0),
        ("sigma", 0.0),
        ("faces_per_pixel", 0),
        ("backend", "softras"),
        ("fov_degrees", 0.0),
        ("fov_degrees", 180.0),
        ("max_chunk_elements", 0),
    ],
)
def test_settings_reject_invalid_values(field, value):
    with pytest.raises(ValueError, match=field):
        SilhouetteRendererSettings(**{field: value})


def test_auto_backend_is_fast_on_cpu_and_the_reference_on_cuda():
    assert SilhouetteRendererSettings().backend == "auto"
    assert resolve_backend("auto", torch.device("cpu")) == "fast"
    assert resolve_backend("auto", torch.device("cuda")) == "pytorch3d"
    assert resolve_backend("pytorch3d", torch.device("cpu")) == "pytorch3d"
    assert resolve_backend("fast", torch.device("cuda")) == "fast"


def test_renderer_rejects_mismatched_inputs():
    renderer = SoftSilhouetteRenderer(SilhouetteRendererSettings(image_size=8))
    vertices, faces = ico_sphere_template(0)
    with pytest.raises(ValueError, match="vertices"):
        renderer(vertices, faces, Viewpoint.from_degrees(30, 0, 2.7))
    with pytest.raises(ValueError, match="viewpoints"):
        renderer(vertices[None], faces, Viewpoint.from_degrees([30, 30], 0, 2.7))


# --------------------------------------------------------------------------- fast backend geometry


def test_pixel_centres_follow_pytorch3d_ndc():
    # Square 2x2: centres at +-0.5, row 0 at the top (+y), column 0 at the left (+x).
    centres = pixel_centres_ndc(2, 2, "cpu")
    assert torch.equal(centres[0, 0], torch.tensor([0.5, 0.5]))
    assert torch.equal(centres[1, 1], torch.tensor([-0.5, -0.5]))
    # 2 rows x 4 columns: the short side spans [-1, 1], the long side [-2, 2].
    centres = pixel_centres_ndc(2, 4, "cpu")
    assert torch.equal(centres[0, :, 0], torch.tensor([1.5, 0.5, -0.5, -1.5]))
    assert torch.equal(centres[:, 0, 1], torch.tensor([0.5, -0.5]))


@pytest.mark.parametrize("winding", [[0, 1, 2], [0, 2, 1]])
def test_signed_squared_distance_on_hand_cases(winding):
    triangle = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])[winding]
    points = torch.tensor(
        [
            [0.25, 0.25],  # inside: nearest edges are x = 0 and y = 0 at 0.25
            [0.2, 0.1],  # inside: nearest edge y = 0 at 0.1
            [2.0, 0.0],  # outside: nearest is the vertex (1, 0)
            [0.5, -1.0],  # outside: below the edge y = 0
            [1.0, 1.0],  # outside: the hypotenuse x + y = 1 at distance 1 / sqrt(2)
            [0.5, 0.0],  # on an edge: not strictly inside
        ]
    )
    expected = torch.tensor([-0.0625, -0.01, 1.0, 1.0, 0.5, 0.0])
    distances = signed_squared_distances(points, triangle.expand(len(points), 3, 2))
    assert torch.allclose(distances, expected, atol=1e-6)


def test_signed_squared_distance_of_a_degenerate_edge_is_to_its_end_point():
    # v0 == v1 (zero area): pytorch3d measures that edge as its end point v1.
    triangle = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]])
    distances = signed_squared_distances(torch.tensor([[0.0, -0.5]]), triangle)
    assert distances.item() == pytest.approx(0.25)


# --------------------------------------------------------------------------- agreement with the reference


@pytest.mark.parametrize("image_size, seed", [(32, 0), (64, 1)])
def test_fast_matches_reference_on_random_deformed_spheres(image_size, seed):
    generator = torch.Generator().manual_seed(seed)
    vertices, faces = deformed_spheres(2, level=2, generator=generator)
    assert_backends_agree(vertices, faces, random_viewpoints(2, generator), image_size, seed=seed)


@pytest.mark.parametrize("mesh_path", ["teapot.obj", "cow/cow.obj"])
def test_fast_matches_reference_on_real_meshes(mesh_path):
    if MESH_DIR is None:
        pytest.skip("shared/data/meshes not found beside the checkout")
    vertices, faces = normalised_mesh(MESH_DIR / mesh_path)
    viewpoint = random_viewpoints(1, torch.Generator().manual_seed(3), distance=1.5)
    assert_backends_agree(vertices[None], faces, viewpoint, image_size=32)


def test_fast_matches_reference_with_the_mesh_partly_outside_the_image():
    generator = torch.Generator().manual_seed(4)
    vertices, faces = deformed_spheres(2, level=2, generator=generator)
    shifted = vertices + torch.tensor([[[0.7, 0.0, 0.0]], [[0.0, -0.8, 0.3]]])
    silhouettes = assert_backends_agree(shifted, faces, random_viewpoints(2, generator), image_size=32, seed=4)
    border = torch.cat([silhouettes[:, 0], silhouettes[:, -1], silhouettes[:, :, 0], silhouettes[:, :, -1]], dim=1)
    assert (border.amax(dim=1) > 0.5).all(), "each mesh must be cut by the image border"


@pytest.mark.parametrize("distance", [0.75, 0.4])
def test_fast_matches_reference_with_faces_near_and_behind_the_camera(distance):
    # 0.75: the nearest faces are 0.1 from the eye and fill the view; 0.4: the eye is inside the
    # mesh, so some faces are behind it or straddle it (pytorch3d skips them; no clipping).
    generator = torch.Generator().manual_seed(5)
    vertices, faces = deformed_spheres(1, level=2, generator=generator)
    assert_backends_agree(vertices, faces, random_viewpoints(1, generator, distance), image_size=32, seed=5)


def test_viewpoint_gradients_exist_and_match_reference():
    generator = torch.Generator().manual_seed(6)
    vertices, faces = deformed_spheres(2, level=2, generator=generator)
    upstream = torch.randn(2, 32, 32, generator=generator)
    base = random_viewpoints(2, generator)
    gradients = []
    for renderer in renderers(32):
        viewpoint = Viewpoint(*(t.clone().requires_grad_(True) for t in (base.elevation, base.azimuth, base.distance)))
        (renderer(vertices, faces, viewpoint) * upstream).sum().backward()
        gradients.append(torch.stack([viewpoint.elevation.grad, viewpoint.azimuth.grad, viewpoint.distance.grad]))
    fast_gradient, reference_gradient = gradients
    assert torch.isfinite(fast_gradient).all() and (fast_gradient != 0).all()
    assert torch.allclose(
        fast_gradient, reference_gradient, rtol=0.05, atol=1e-3 * reference_gradient.abs().max().item()
    )


def test_chunked_rendering_equals_unchunked():
    generator = torch.Generator().manual_seed(7)
    vertices, faces = deformed_spheres(3, level=2, generator=generator)
    viewpoint = random_viewpoints(3, generator)
    upstream = torch.randn(3, 16, 16, generator=generator)
    # 16 * 16 * 10 elements per mesh: a budget of 1 still renders one mesh per chunk.
    results = [
        silhouettes_and_vertex_gradients(
            renderers(16, faces_per_pixel=10, max_chunk_elements=budget)[0], vertices, faces, viewpoint, upstream
        )
        for budget in (1, 2 * 16 * 16 * 10, 10**9)
    ]
    for silhouettes, gradient in results[:2]:
        assert torch.allclose(silhouettes, results[2][0], atol=1e-6)
        assert torch.allclose(gradient, results[2][1], atol=1e-6 * results[2][1].abs().max().item())


@pytest.mark.parametrize("no_gradient", [torch.no_grad, torch.inference_mode, None])
def test_a_forward_without_gradient_evaluates_faces_in_their_boxes_and_agrees(monkeypatch, no_gradient):
    """Inference neither rasterizes nor recomputes distances for a backward: each face is evaluated
    in its bounding box, with the reference's silhouettes and the differentiable path's."""
    generator = torch.Generator().manual_seed(8)
    vertices, faces = deformed_spheres(3, level=2, generator=generator)
    viewpoint = random_viewpoints(3, generator)
    fast, reference = renderers(32, max_chunk_elements=2 * 32 * 32 * 50)
    differentiable = fast(vertices.clone().requires_grad_(True), faces, viewpoint).detach()
    ran = []
    for name in ("soft_silhouettes_of_selected_faces", "nearest_faces"):
        original = getattr(render_fast, name)
        monkeypatch.setattr(render_fast, name, lambda *args, _f=original, _n=name: ran.append(_n) or _f(*args))
    if no_gradient is None:  # grad mode on, but no input requires a gradient
        silhouettes = fast(vertices, faces, viewpoint)
    else:
        with no_gradient():
            silhouettes = fast(vertices.clone().requires_grad_(True), faces, viewpoint)
    assert ran == []
    assert not silhouettes.requires_grad
    assert torch.allclose(silhouettes, differentiable, atol=1e-5)
    with torch.no_grad():
        assert (silhouettes - reference(vertices, faces, viewpoint)).abs().max() < NO_GRADIENT_TOLERANCE
    fast(vertices.clone().requires_grad_(True), faces, viewpoint)
    assert ran == ["nearest_faces", "soft_silhouettes_of_selected_faces"] * 2


def shifted_spheres(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    vertices, faces = deformed_spheres(2, level=2, generator=generator)
    return vertices + torch.tensor([[[0.7, 0.0, 0.0]], [[0.0, -0.8, 0.3]]]), faces


def collapsed_spheres(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Deformed spheres with some faces of zero area (vertices merged), which the rasterizer skips."""
    vertices, faces = deformed_spheres(2, level=2, generator=generator)
    vertices[:, faces[:40, 1]] = vertices[:, faces[:40, 0]]
    return vertices, faces


NO_GRADIENT_CASES = {  # name: (meshes of a generator, image size, camera distance)
    "level 1 at 64": (lambda g: deformed_spheres(3, level=1, generator=g), 64, 2.732),
    "level 2 at 64": (lambda g: deformed_spheres(3, level=2, generator=g), 64, 2.732),
    "level 3 at 32": (lambda g: deformed_spheres(3, level=3, generator=g), 32, 2.732),
    "level 2 at 17": (lambda g: deformed_spheres(3, level=2, generator=g), 17, 2.732),
    "partly outside the image": (shifted_spheres, 32, 2.732),
    "faces 0.1 from the eye": (lambda g: deformed_spheres(1, level=2, generator=g), 32, 0.75),
    "the eye inside the mesh": (lambda g: deformed_spheres(1, level=2, generator=g), 32, 0.4),
    "faces of zero area": (collapsed_spheres, 32, 2.732),
}


@pytest.mark.parametrize("case", NO_GRADIENT_CASES)
def test_without_gradient_matches_reference(case):
    meshes, image_size, distance = NO_GRADIENT_CASES[case]
    generator = torch.Generator().manual_seed(9)
    vertices, faces = meshes(generator)
    viewpoint = random_viewpoints(len(vertices), generator, distance)
    fast, reference = renderers(image_size)
    with torch.no_grad():
        silhouettes, expected = fast(vertices, faces, viewpoint), reference(vertices, faces, viewpoint)
    assert expected.amax() > 0.5, "degenerate case: nothing rendered"
    assert (silhouettes - expected).abs().max() < NO_GRADIENT_TOLERANCE


@pytest.mark.parametrize("mesh_path", ["teapot.obj", "cow/cow.obj"])
def test_without_gradient_matches_reference_on_real_meshes(mesh_path):
    if MESH_DIR is None:
        pytest.skip("shared/data/meshes not found beside the checkout")
    vertices, faces = normalised_mesh(MESH_DIR / mesh_path)
    viewpoint = random_viewpoints(1, torch.Generator().manual_seed(3), distance=1.5)
    fast, reference = renderers(64)
    with torch.no_grad():
        silhouettes, expected = fast(vertices[None], faces, viewpoint), reference(vertices[None], faces, viewpoint)
    assert (silhouettes - expected).abs().max() < NO_GRADIENT_TOLERANCE


def test_without_gradient_rasterizes_the_meshes_with_more_than_k_faces_at_a_pixel(monkeypatch):
    """Where more than K faces lie within the blur radius of a pixel the rasterizer keeps the K
    nearest: those meshes, and only those, are rasterized, as the reference renders them."""
    generator = torch.Generator().manual_seed(10)
    vertices, faces = deformed_spheres(4, level=2, generator=generator)
    vertices[1::2] *= 0.15  # small: many faces at a pixel
    viewpoint = random_viewpoints(4, generator)
    faces_per_pixel = 20
    fast, reference = renderers(32, faces_per_pixel=faces_per_pixel)
    cameras = look_at_cameras(viewpoint, fov_degrees=fast.settings.fov_degrees)
    vertices_ndc = render_fast.project_to_ndc(vertices, cameras)
    pix_to_face, _ = render_fast.nearest_faces(
        vertices_ndc, faces, 32, soft_blur_radius(fast.settings.sigma), faces_per_pixel + 1
    )
    crowded = (pix_to_face[..., -1] >= 0).flatten(1).any(dim=1)
    assert 0 < int(crowded.sum()) < 4, "the case needs crowded and uncrowded meshes"
    rasterized = []
    original = render_fast.nearest_faces
    monkeypatch.setattr(
        render_fast, "nearest_faces", lambda chunk, *args: rasterized.append(len(chunk)) or original(chunk, *args)
    )
    with torch.no_grad():
        silhouettes, expected = fast(vertices, faces, viewpoint), reference(vertices, faces, viewpoint)
    assert sum(rasterized) == int(crowded.sum())
    assert (silhouettes - expected).abs().max() < NO_GRADIENT_TOLERANCE


def test_without_gradient_meshes_of_too_many_candidates_are_rasterized(monkeypatch):
    generator = torch.Generator().manual_seed(13)
    vertices, faces = deformed_spheres(3, level=2, generator=generator)
    viewpoint = random_viewpoints(3, generator)
    fast, reference = renderers(32)
    rasterized = []
    original = render_fast.nearest_faces
    monkeypatch.setattr(
        render_fast, "nearest_faces", lambda chunk, *args: rasterized.append(len(chunk)) or original(chunk, *args)
    )
    with torch.no_grad():
        expected = reference(vertices, faces, viewpoint)
        assert (fast(vertices, faces, viewpoint) - expected).abs().max() < NO_GRADIENT_TOLERANCE
        assert rasterized == []
        monkeypatch.setattr(render_fast, "CANDIDATE_COST", 32 * 32 * len(faces))  # at most one candidate a mesh
        assert (fast(vertices, faces, viewpoint) - expected).abs().max() < NO_GRADIENT_TOLERANCE
    assert rasterized == [3]


def test_without_gradient_a_mesh_with_a_non_finite_vertex_renders_as_the_reference():
    generator = torch.Generator().manual_seed(11)
    vertices, faces = deformed_spheres(2, level=2, generator=generator)
    vertices[1, 5] = float("nan")
    viewpoint = random_viewpoints(2, generator)
    fast, reference = renderers(32)
    with torch.no_grad():
        silhouettes, expected = fast(vertices, faces, viewpoint), reference(vertices, faces, viewpoint)
    assert torch.equal(silhouettes.isnan(), expected.isnan())
    assert (silhouettes - expected).nan_to_num().abs().max() < NO_GRADIENT_TOLERANCE


def test_without_gradient_groups_of_meshes_equal_one_group():
    generator = torch.Generator().manual_seed(12)
    vertices, faces = deformed_spheres(3, level=2, generator=generator)
    viewpoint = random_viewpoints(3, generator)
    with torch.no_grad():
        one_per_group, one_group = (
            renderers(32, max_chunk_elements=budget)[0](vertices, faces, viewpoint) for budget in (1, 10**9)
        )
    assert torch.equal(one_per_group, one_group)


# --------------------------------------------------------------------------- analytic projection


def test_sphere_silhouette_is_its_projected_disc():
    # A sphere of radius r seen from distance d on the optical axis projects to a disc of angular
    # radius asin(r / d), i.e. an NDC radius tan(asin(r / d)) / tan(fov / 2), centred in the image.
    # A small sigma keeps the soft rim (~sqrt(sigma) NDC wide, where front and back faces both
    # add coverage) from inflating the area: at the paper's 1e-4 it adds about 3% here.
    image_size, radius, distance, fov = 64, 0.5, 2.732, 30.0
    template, faces = ico_sphere_template(level=4, radius=radius)
    settings = SilhouetteRendererSettings(image_size=image_size, sigma=1e-6, fov_degrees=fov, backend="fast")
    renderer = SoftSilhouetteRenderer(settings)
    silhouette = renderer(template[None], faces, Viewpoint.from_degrees(20.0, 40.0, distance))[0]
    ndc_radius = math.tan(math.asin(radius / distance)) / math.tan(math.radians(fov / 2))
    expected_area = math.pi * (ndc_radius * image_size / 2) ** 2
    assert silhouette.sum().item() == pytest.approx(expected_area, rel=0.005)
    rows, columns = torch.meshgrid(torch.arange(float(image_size)), torch.arange(float(image_size)), indexing="ij")
    centre = (image_size - 1) / 2
    assert (silhouette * rows).sum() / silhouette.sum() == pytest.approx(centre, abs=0.05)
    assert (silhouette * columns).sum() / silhouette.sum() == pytest.approx(centre, abs=0.05)


def test_world_plus_x_appears_on_the_image_right_seen_from_azimuth_zero():
    # Kato's azimuth 0 puts the eye at (0, 0, -d) and, as in SoftRas/NMR, world +X is drawn on the
    # image's right (a3d_core.geometry mirrors pytorch3d's +X-left camera frame). A small sphere at
    # x = +0.2 has NDC x = -0.2 / (d tan 15 deg) in pytorch3d's +X-left NDC, i.e. it lands at
    # column (W (1 + 0.2 / (d tan 15 deg)) - 1) / 2 (pytorch3d's pixel centre convention).
    image_size, distance = 64, 2.732
    template, faces = ico_sphere_template(level=3, radius=0.1)
    renderer = SoftSilhouetteRenderer(SilhouetteRendererSettings(image_size=image_size, backend="fast"))
    silhouette = renderer(
        (template + torch.tensor([0.2, 0.0, 0.0]))[None], faces, Viewpoint.from_degrees(0.0, 0.0, distance)
    )[0]
    columns = torch.arange(image_size, dtype=torch.float32)
    column = (silhouette.sum(0) * columns).sum() / silhouette.sum()
    ndc_x = 0.2 / (distance * math.tan(math.radians(15.0)))
    assert column.item() == pytest.approx((image_size * (1 + ndc_x) - 1) / 2, abs=0.1)
