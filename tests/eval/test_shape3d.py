"""Meshes judged in 3D: voxel IoU after bringing a reconstruction into the data's frame."""

import numpy as np
import pytest
import torch

from a3d_core.data.render import MeshRenderer, RenderSettings
from a3d_core.data.shapes import TriangleMesh, generate_shape, to_pytorch3d
from a3d_core.eval.shape3d import to_data_frame, voxel_iou, voxelize, winding_grid
from a3d_core.eval.viewpoint_diagnostics import AzimuthAlignment
from a3d_core.geometry import KATO_DISTANCE, Viewpoint, ico_sphere_template


def test_winding_grid_counts_inside_once_per_part_whatever_the_orientation():
    sphere, faces = ico_sphere_template(2, radius=0.3)
    grid = winding_grid(sphere, faces, 16)
    assert set(grid.unique().tolist()) <= {-1.0, 0.0, 1.0} and grid.abs().sum() > 0
    assert torch.equal(winding_grid(sphere, faces.flip(1), 16), -grid)
    occupied = float((grid != 0).float().mean())
    assert occupied == pytest.approx(4 / 3 * np.pi * 0.3**3, rel=0.15)  # the ball's share of the cube


def test_the_librarys_own_mesh_is_perfect_and_a_sphere_is_not():
    chair = generate_shape("chair", (0, 4, 2))
    truth = voxelize(chair.vertices, chair.faces)
    turned = to_data_frame(to_data_frame(chair.vertices, AzimuthAlignment(1, -70.0)), AzimuthAlignment(1, 70.0))
    assert voxel_iou(voxelize(turned, chair.faces), truth) == 1.0
    sphere, faces = ico_sphere_template(2)
    assert voxel_iou(voxelize(sphere.numpy(), faces.numpy()), truth) < 0.3  # a blob has no legs


@pytest.mark.parametrize("alignment", [AzimuthAlignment(1, 60.0), AzimuthAlignment(1, -135.0)])
def test_to_data_frame_moves_the_mesh_as_the_alignment_moves_the_camera(alignment):
    car = generate_shape("car", (0, 3, 0))
    renderer = MeshRenderer(RenderSettings(image_size=32))
    predicted_azimuth = 20.0
    seen = renderer(to_pytorch3d(car), Viewpoint.from_degrees(30.0, predicted_azimuth, KATO_DISTANCE)).silhouette
    moved = TriangleMesh(to_data_frame(car.vertices, alignment), car.faces, car.colors)
    true_azimuth = alignment.apply(np.array([predicted_azimuth]))[0]
    again = renderer(to_pytorch3d(moved), Viewpoint.from_degrees(30.0, true_azimuth, KATO_DISTANCE)).silhouette
    assert (seen != again).sum() <= 3  # the same silhouette, up to rasterisation at a few edge pixels
