"""Viewpoint protocols: mirror-closed held-out azimuths, held-out elevations, unseen combinations."""

from pathlib import Path

import numpy as np
import pytest
import torch

from a3d_core.data.prepare_shapenet import PrepareShapeNetConfig, prepare_shapenet
from a3d_core.data.render import MeshRenderer, RenderSettings
from a3d_core.data.shapenet import load_split_arrays
from a3d_core.data.shapes import generate_shape, to_pytorch3d
from a3d_core.data.viewpoints import Camera, ViewProtocol, mirror_closed, mirror_view, parse_pairs, parse_view_range
from a3d_core.errors import InputError
from a3d_core.geometry import KATO_DISTANCE, Viewpoint


def test_mirror_relation_maps_azimuth_to_its_negative():
    assert [mirror_view(v) for v in (0, 1, 6, 12, 18, 23)] == [0, 23, 18, 12, 6, 1]
    for view in range(24):
        assert Camera(30.0, mirror_view(view)).azimuth % 360 == pytest.approx(-Camera(30.0, view).azimuth % 360)
    assert mirror_closed(range(18, 24)) == (1, 2, 3, 4, 5, 6, 18, 19, 20, 21, 22, 23)


def test_mirrored_view_of_a_symmetric_shape_is_the_flipped_silhouette():
    """The premise of mirror closure: for a left-right symmetric object, view v is view 24 - v flipped."""
    mesh = to_pytorch3d(generate_shape("car", (0, 3, 0)))
    views = [3, mirror_view(3)]
    cameras = [Camera(20.0, v) for v in views]
    rendered = MeshRenderer(RenderSettings(image_size=32))(
        mesh, Viewpoint.from_degrees([c.elevation for c in cameras], [c.azimuth for c in cameras], KATO_DISTANCE)
    )
    first, mirrored = rendered.silhouette[0].bool(), rendered.silhouette[1].bool()
    assert first.sum() > 50 and not torch.equal(first, mirrored)  # the two views differ ...
    overlap = (first & mirrored.flip(-1)).sum() / (first | mirrored.flip(-1)).sum()
    assert overlap > 0.97  # ... by a horizontal flip


def test_protocol_assigns_every_camera_to_one_split():
    protocol = ViewProtocol.build(
        range(0, 24, 2),
        elevations=(0.0, 30.0),
        holdout_views=parse_view_range("4-6", "x"),
        holdout_elevations=(60.0,),
        holdout_pairs=parse_pairs("0:10,30:0"),
    )
    assert protocol.holdout_views == (4, 6, 18, 20)
    assert protocol.holdout_pairs == ((0.0, 10), (0.0, 14), (30.0, 0))  # view 0 is its own mirror
    assert protocol.test_splits == ["test", "test_newview", "test_elevation", "test_combination"]
    train = {(c.elevation, c.view_id) for c in protocol.training_cameras}
    assert len(train) == 2 * 8 - 3
    assert all(v not in protocol.holdout_views for _, v in train) and all(e != 60.0 for e, _ in train)
    assert {v for _, v in train} == set(range(0, 24, 2)) - {4, 6, 18, 20}  # every seen azimuth is trained
    assert {c.elevation for c in protocol.cameras_of_split("test_elevation")} == {60.0}
    assert Camera(60.0, 4) not in protocol.cameras  # held-out elevation and azimuth: no protocol
    assert len(protocol.cameras_of_split("test_newview")) == 2 * 4


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(elevations=(0.0, 30.0), holdout_elevations=(30.0,)), "also training elevations"),
        (dict(elevations=(80.0,)), "outside the viewpoint estimator's range"),
        (dict(holdout_elevations=(-45.0,)), "outside the viewpoint estimator's range"),
        (dict(holdout_views=(6,), holdout_pairs=((30.0, 18),)), "overlaps --holdout-views"),
        (dict(holdout_pairs=((0.0, 2),)), "not a training elevation"),
        (dict(holdout_views=tuple(range(24))), "no camera to train on"),
        (dict(holdout_views=(1,)), "selects none of the views"),
        (dict(elevations=(0.0, 30.0), holdout_pairs=((0.0, 0), (0.0, 6), (0.0, 12))), "every training elevation"),
        (dict(elevations=(30.0, 30.0)), "listed twice"),
    ],
)
def test_bad_protocols_are_refused_before_rendering(arguments, message):
    with pytest.raises(InputError, match=message):
        ViewProtocol.build((0, 6, 12, 18), **arguments)


@pytest.mark.parametrize("text", ["4-2", "x", "0-24", "1-2-3"])
def test_view_ranges_are_checked(text):
    with pytest.raises(InputError, match="--holdout-views"):
        parse_view_range(text, "--holdout-views")


def test_pairs_are_parsed():
    assert parse_pairs("0:4-5, 30:7") == ((0.0, 4), (0.0, 5), (30.0, 7))
    with pytest.raises(InputError, match="ELEVATION:FIRST-LAST"):
        parse_pairs("4-5")


@pytest.fixture(scope="module")
def protocol_dataset(tmp_path_factory) -> tuple[Path, PrepareShapeNetConfig]:
    config = PrepareShapeNetConfig(
        out=tmp_path_factory.mktemp("protocols") / "data",
        categories=("car", "table"),
        objects_per_category=3,
        views=8,
        image_size=16,
        split_fractions=(0.34, 0.33, 0.33),
        elevations=(0.0, 30.0),
        holdout_views=(3, 3),
        holdout_elevations=(60.0,),
        holdout_pairs=((0.0, 6),),
        seed=2,
        min_amodal_pixels=2,
    )
    prepare_shapenet(config)
    return config.out, config


def test_prepared_splits_are_disjoint_as_claimed(protocol_dataset):
    root, config = protocol_dataset
    protocol = config.protocol
    cameras = {}
    for split in ("train", "val", "test", "test_newview", "test_elevation", "test_combination"):
        _, arrays = load_split_arrays(root, split, ["elevation", "view_id", "object_index"])
        cameras[split] = set(zip(arrays["elevation"].tolist(), arrays["view_id"].tolist()))
        assert np.all(arrays["elevation"] >= 0)
    held_views = set(protocol.holdout_views)
    assert held_views == {3, 21}  # view 3 of Kato's 24 (-45 degrees) and its mirror 21 (+45)
    for split in ("train", "val", "test"):
        assert cameras[split] <= {(c.elevation, c.view_id) for c in protocol.training_cameras}
        assert not {v for _, v in cameras[split]} & held_views  # no held-out azimuth, nor its mirror
        assert not cameras[split] & set(protocol.holdout_pairs)
        assert 60.0 not in {e for e, _ in cameras[split]}
    assert {v for _, v in cameras["test_newview"]} == held_views
    assert {e for e, _ in cameras["test_elevation"]} == {60.0}
    assert cameras["test_combination"] == {(0.0, 6), (0.0, 18)}
    assert {v for _, v in cameras["train"]} == set(config.view_ids) - held_views


def test_kato_sources_refuse_other_elevations(tmp_path):
    from a3d_core.data.shapenet import write_kato_npz

    source = tmp_path / "kato"
    write_kato_npz(source / "02958343_train_images.npz", np.zeros((2, 24, 4, 16, 16), np.uint8))
    config = PrepareShapeNetConfig(out=tmp_path / "out", source=source, image_size=16, elevations=(0.0, 30.0))
    with pytest.raises(InputError, match="only have elevation 30"):
        prepare_shapenet(config)
    assert not (tmp_path / "out").exists()
