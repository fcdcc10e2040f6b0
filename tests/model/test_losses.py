"""Losses (paper 3.6) on hand-made masks and meshes, with hand-computed values."""

import math

import pytest
import torch

from a3d_core.geometry import ico_sphere_template
from a3d_core.model.losses import (
    LossSettings,
    MeshRegularizer,
    adjacent_face_pairs,
    classification_loss,
    edge_refine_loss,
    reconstruction_loss,
    soft_iou,
)


def test_soft_iou_of_identical_masks_is_one_and_of_disjoint_masks_zero():
    mask = torch.zeros(1, 4, 4)
    mask[0, 1:3, 1:3] = 1.0
    assert soft_iou(mask, mask).item() == pytest.approx(1.0, abs=1e-6)
    assert soft_iou(mask, 1.0 - mask).item() == pytest.approx(0.0, abs=1e-6)
    assert reconstruction_loss(mask, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_soft_iou_by_hand():
    prediction = torch.tensor([[[1.0, 0.5], [0.0, 0.0]]])
    target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    # intersection 1 + 0.5 = 1.5; union (1 + 1 - 1) + (0.5 + 1 - 0.5) = 2
    assert soft_iou(prediction, target).item() == pytest.approx(0.75, abs=1e-6)
    assert reconstruction_loss(prediction, target).item() == pytest.approx(0.25, abs=1e-6)


def test_edge_refine_loss_by_hand_on_2x2():
    logits = torch.tensor([[[2.0, -1.0], [0.0, 3.0]]])
    amodal = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    visible = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    # BCE(x, y) = log(1 + e^x) - x y
    inside = math.log1p(math.exp(2.0)) - 2.0
    outside = (math.log1p(math.exp(-1.0)) + 1.0) + math.log(2.0) + math.log1p(math.exp(3.0))
    expected = (1.0 * inside + 0.5 * outside) / 4
    assert edge_refine_loss(logits, amodal, visible, 0.5).item() == pytest.approx(expected, rel=1e-6)
    assert edge_refine_loss(logits, amodal, visible, 1.0).item() == pytest.approx((inside + outside) / 4, rel=1e-6)


def test_classification_loss_of_uniform_logits_is_log_c():
    assert classification_loss(torch.zeros(3, 4), torch.tensor([0, 1, 3])).item() == pytest.approx(math.log(4.0))


def grid_3x3():
    """A flat 3x3 grid at z = 0, each unit square split along its (i, j)-(i+1, j+1) diagonal."""
    vertices = torch.tensor([[float(i), float(j), 0.0] for j in range(3) for i in range(3)])

    def index(i, j):
        return 3 * j + i

    faces = []
    for j in range(2):
        for i in range(2):
            faces += [
                [index(i, j), index(i + 1, j), index(i + 1, j + 1)],
                [index(i, j), index(i + 1, j + 1), index(i, j + 1)],
            ]
    return vertices, torch.tensor(faces)


def test_laplacian_of_a_triangle_by_hand():
    vertices = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    regularizer = MeshRegularizer(torch.tensor([[0, 1, 2]]), 3)
    # v - mean(others): (-.5, -.5, 0), (1, -.5, 0), (-.5, 1, 0) -> 0.5 + 1.25 + 1.25
    assert regularizer.laplacian(vertices).item() == pytest.approx(3.0)


def test_laplacian_of_a_flat_regular_grid_by_hand():
    vertices, faces = grid_3x3()
    regularizer = MeshRegularizer(faces, 9)
    laplacian = regularizer.uniform_laplacian(vertices[None])[0]
    assert torch.allclose(laplacian[4], torch.zeros(3))  # the centre: six symmetric neighbours
    assert torch.allclose(laplacian[:, 2], torch.zeros(9))  # flat: nothing out of the plane
    # corners (0,0), (2,2): 8/9 each; corners (2,0), (0,2): 1/2 each; edge midpoints: 5/16 each
    assert regularizer.laplacian(vertices[None]).item() == pytest.approx(145 / 36, rel=1e-6)
    shifted = vertices + torch.tensor([0.3, -2.0, 5.0])
    assert regularizer.laplacian(shifted[None]).item() == pytest.approx(145 / 36, rel=1e-5)


def two_triangles(fourth):
    vertices = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], fourth])
    return vertices[None], torch.tensor([[0, 1, 2], [0, 3, 1]])


def test_flatten_loss_of_flat_folded_and_closed_pairs():
    flat, faces = two_triangles([0.5, -1.0, 0.0])
    regularizer = MeshRegularizer(faces, 4)
    assert regularizer.face_pairs.tolist() == [[0, 1, 2, 3]]
    assert regularizer.flatten(flat).item() == pytest.approx(0.0, abs=1e-6)
    right_angle, _ = two_triangles([0.5, 0.0, 1.0])
    assert regularizer.flatten(right_angle).item() == pytest.approx(1.0, abs=1e-5)  # cos = 0
    closed, _ = two_triangles([0.5, 1.0, 0.0])
    assert regularizer.flatten(closed).item() == pytest.approx(4.0, abs=1e-5)  # cos = 1


def test_every_edge_of_a_closed_sphere_has_two_faces():
    vertices, faces = ico_sphere_template(1)
    pairs = adjacent_face_pairs(faces)
    assert pairs.shape == (faces.shape[0] * 3 // 2, 4)
    assert MeshRegularizer(faces, vertices.shape[0]).flatten(vertices[None]).item() > 0


def test_loss_weights_are_validated():
    with pytest.raises(ValueError, match="laplacian"):
        LossSettings(laplacian=-1.0)
    with pytest.raises(ValueError, match="flatten"):
        LossSettings(flatten=float("nan"))
