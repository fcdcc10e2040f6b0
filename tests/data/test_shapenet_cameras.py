"""The true camera a ShapeNet item carries is the renderer's: the oracle camera's convention, on real data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from a3d_core.data.framing import FramedViews
from a3d_core.data.prepare_shapenet import PrepareShapeNetConfig, prepare_shapenet
from a3d_core.data.shapenet import ShapeNetAmodalDataset, read_shard_manifest
from a3d_core.data.shapes import CATEGORIES, generate_shape
from a3d_core.geometry import KATO_DISTANCE
from a3d_core.model.render import SilhouetteRendererSettings, SoftSilhouetteRenderer
from a3d_core.model.viewpoint import CameraAngles
from a3d_core.train.augment import flip_view
from a3d_core.train.cross_view import CrossViewPairs

SIZE = 32


@pytest.fixture(scope="module")
def library_views(tmp_path_factory):
    """Built-in cars and chairs at 8 azimuths and two elevations, by `a3d prepare shapenet`."""
    out = tmp_path_factory.mktemp("shapenet") / "data"
    prepare_shapenet(
        PrepareShapeNetConfig(
            out=out,
            categories=("car", "chair"),
            objects_per_category=2,
            views=8,
            elevations=(15.0, 45.0),
            image_size=SIZE,
            split_fractions=(1.0, 0.0, 0.0),
            seed=3,
        )
    )
    return out


def library_mesh(root, object_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The built-in mesh an object of a prepared dataset was rendered from: vertices ``(V, 3)``, faces ``(F, 3)``."""
    manifest = read_shard_manifest(root)
    entry = manifest["objects"][object_index]
    number = int(entry["source_id"].rsplit("/", 1)[1])
    mesh = generate_shape(entry["category"], (manifest["seed"], CATEGORIES.index(entry["category"]), number))
    return torch.from_numpy(mesh.vertices), torch.from_numpy(mesh.faces)


def silhouette_ious(root, dataset, turn_degrees: float, mirrored: bool = False) -> np.ndarray:
    """IoU of every item's amodal mask with its library mesh rendered by the model's renderer at the
    item's true camera, turned by ``turn_degrees`` (azimuth negated first when ``mirrored``): ``(N,)``."""
    renderer = SoftSilhouetteRenderer(SilhouetteRendererSettings(image_size=SIZE))
    ious = np.zeros(len(dataset))
    for obj in np.unique(dataset.object_index):
        rows = np.flatnonzero(dataset.object_index == obj)
        items = [dataset[int(row)] for row in rows]
        elevation = torch.stack([item["elevation"] for item in items])
        azimuth = torch.stack([item["azimuth"] for item in items]) * (-1 if mirrored else 1) + turn_degrees
        vertices, faces = library_mesh(root, int(obj))
        viewpoint = CameraAngles.from_degrees(elevation, azimuth).at_distance(torch.full((len(rows),), KATO_DISTANCE))
        with torch.no_grad():
            rendered = renderer(vertices.expand(len(rows), -1, -1), faces, viewpoint) > 0.5  # (n, S, S)
        amodal = torch.stack([item["amodal"][0] for item in items]).bool()
        ious[rows] = ((rendered & amodal).sum((1, 2)) / (rendered | amodal).sum((1, 2))).numpy()
    return ious


def test_items_carry_their_true_camera_in_degrees(library_views):
    dataset = ShapeNetAmodalDataset(library_views, "train")
    framed = FramedViews(dataset, 1.1)
    for index in (0, 5, len(dataset) - 1):
        item, framed_item = dataset[index], framed[index]
        assert item["elevation"].dtype == torch.float32 and item["elevation"].shape == ()
        assert float(item["elevation"]) == dataset.elevation[index] and float(item["azimuth"]) == dataset.azimuth[index]
        assert torch.equal(framed_item["azimuth"], item["azimuth"])  # framing keeps the angles
    assert set(np.unique(dataset.elevation)) == {15.0, 45.0}


def test_the_oracle_camera_reproduces_the_library_mesh_silhouettes(library_views):
    dataset = ShapeNetAmodalDataset(library_views, "train")
    at_truth = silhouette_ious(library_views, dataset, 0.0)
    turned = silhouette_ious(library_views, dataset, 90.0)
    mirrored = silhouette_ious(library_views, dataset, 0.0, mirrored=True)
    assert at_truth.mean() > 0.85 and (at_truth > turned + 0.05).all() and at_truth.mean() > turned.mean() + 0.3
    side_on = np.abs(np.sin(np.radians(dataset.azimuth * 2))) > 0.5  # oblique views: a mirror image differs
    assert at_truth[side_on].mean() > mirrored[side_on].mean() + 0.2  # the sign of the azimuth agrees too


def test_flips_and_cross_view_pairs_carry_the_camera(library_views):
    dataset = ShapeNetAmodalDataset(library_views, "train")
    item = dataset[3]
    flipped = flip_view(item)
    assert float(flipped["azimuth"]) == -float(item["azimuth"]) and torch.equal(flipped["elevation"], item["elevation"])
    pairs = CrossViewPairs(dataset, seed=0)
    paired = pairs[3]
    partner = dataset[pairs.partner(3)]
    assert torch.equal(paired["azimuth_pair"], partner["azimuth"])
    assert torch.equal(paired["elevation_pair"], partner["elevation"])
