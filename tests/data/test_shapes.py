"""The built-in shape library: every category yields finite, normalised, non-degenerate meshes, per seed."""

import numpy as np
import pytest

from a3d_core.data.shapes import CATEGORIES, TriangleMesh, generate_shape, merge_meshes, normalize_mesh
from a3d_core.data.shapes.primitives import box, ellipsoid, frustum, rotation_from_y, rotation_matrix

PAPER_CATEGORIES = (
    "airplane",
    "bench",
    "cabinet",
    "car",
    "chair",
    "display",
    "lamp",
    "loudspeaker",
    "rifle",
    "sofa",
    "table",
    "telephone",
    "watercraft",
)


def face_areas(mesh: TriangleMesh) -> np.ndarray:
    corners = mesh.vertices[mesh.faces].astype(np.float64)
    return 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)


def test_the_thirteen_paper_categories_in_order():
    assert CATEGORIES == PAPER_CATEGORIES


@pytest.mark.parametrize("category", PAPER_CATEGORIES)
def test_every_category_is_finite_normalised_and_non_degenerate(category):
    for object_index in range(3):
        mesh = generate_shape(category, (0, object_index))
        assert np.isfinite(mesh.vertices).all() and np.isfinite(mesh.colors).all()
        assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.vertices)
        low, high = mesh.vertices.min(0), mesh.vertices.max(0)
        assert np.linalg.norm(high - low) == pytest.approx(1.0, abs=1e-5)  # unit bounding-box diagonal
        assert np.abs((low + high) / 2).max() < 1e-5  # centred
        assert (high - low).min() > 0.02  # a solid, not a flat or a line
        assert face_areas(mesh).sum() > 0.1
        assert len(mesh.faces) >= 12
        assert ((mesh.colors >= 0) & (mesh.colors <= 1)).all()


@pytest.mark.parametrize("category", PAPER_CATEGORIES)
def test_same_seed_same_object_other_seed_other_object(category):
    first, again, other = (
        generate_shape(category, (3, 1)),
        generate_shape(category, (3, 1)),
        generate_shape(category, (3, 2)),
    )
    np.testing.assert_array_equal(first.vertices, again.vertices)
    np.testing.assert_array_equal(first.faces, again.faces)
    assert first.vertices.shape != other.vertices.shape or not np.allclose(first.vertices, other.vertices)


def test_unknown_category_is_rejected():
    with pytest.raises(ValueError, match="unknown built-in category 'bicycle'"):
        generate_shape("bicycle", 0)


def test_box_has_the_volume_and_outward_faces_of_a_box():
    part = box((1.0, 2.0, 3.0), (2.0, 4.0, 6.0), (1, 0, 0))
    corners = part.vertices[part.faces].astype(np.float64)
    # divergence theorem: signed volume of a closed outward mesh = sum over faces of v0 . (v1 x v2) / 6
    volume = np.einsum("fi,fi->f", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6
    assert volume == pytest.approx(48.0, rel=1e-5)
    assert part.vertices.min(0).tolist() == pytest.approx([0.0, 0.0, 0.0])
    assert part.vertices.max(0).tolist() == pytest.approx([2.0, 4.0, 6.0])


def test_frustum_spans_its_two_points_and_ellipsoid_its_radii():
    pole = frustum((0, 0, 0), (0, 0, 2), 0.5, 0.5, (0, 0, 0), segments=32)
    assert pole.vertices[:, 2].min() == pytest.approx(0.0, abs=1e-6) and pole.vertices[:, 2].max() == pytest.approx(2.0)
    assert np.abs(pole.vertices[:, :2]).max() == pytest.approx(0.5, abs=1e-6)
    egg = ellipsoid((0, 0, 0), (1.0, 2.0, 3.0), (0, 0, 0), rings=12, segments=24)
    assert egg.vertices.max(0).tolist() == pytest.approx([1.0, 2.0, 3.0], abs=0.03)


def test_rotations_are_proper_and_take_y_where_asked():
    for direction in ([1, 0, 0], [0, -1, 0], [0.3, 0.4, -0.5]):
        rotation = rotation_from_y(direction)
        assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(rotation @ [0, 1, 0], np.array(direction) / np.linalg.norm(direction), atol=1e-5)
    np.testing.assert_allclose(rotation_matrix("z", 90) @ [1, 0, 0], [0, 1, 0], atol=1e-6)


def test_merge_and_normalise():
    merged = merge_meshes([box((0, 0, 0), (1, 1, 1), (0, 0, 0)), box((3, 0, 0), (1, 1, 1), (1, 1, 1))])
    assert len(merged.vertices) == 2 * 10 and merged.faces.max() == 19
    normalised = normalize_mesh(merged)
    low, high = normalised.vertices.min(0), normalised.vertices.max(0)
    assert np.linalg.norm(high - low) == pytest.approx(1.0) and np.allclose((low + high) / 2, 0, atol=1e-6)
    # extents 4 x 1 x 1 -> diagonal sqrt(18): x spans 4 / sqrt(18)
    assert high[0] - low[0] == pytest.approx(4 / np.sqrt(18), rel=1e-5)
