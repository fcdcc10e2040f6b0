"""Preparing from sources: Kato's npz renders (round trip) and ShapeNetCore v1/v2 mesh folders."""

from pathlib import Path

import numpy as np
import pytest
import torch

from a3d_core.data.mesh_folder import find_meshes, load_mesh
from a3d_core.data.prepare_shapenet import PrepareShapeNetConfig, prepare_shapenet
from a3d_core.data.render import MeshRenderer, RenderSettings
from a3d_core.data.shapenet import find_kato_files, load_split_arrays, read_kato_npz, write_kato_npz
from a3d_core.data.shapes import generate_shape, to_pytorch3d
from a3d_core.errors import InputError
from a3d_core.geometry import kato_viewpoints

SIZE = 24


def kato_images(category: str, objects: int) -> np.ndarray:
    """Built-in objects rendered at Kato's 24 views as uint8 (objects, 24, 4, S, S) RGBA."""
    renderer = MeshRenderer(RenderSettings(image_size=SIZE))
    stacks = []
    for i in range(objects):
        rendered = renderer(to_pytorch3d(generate_shape(category, (9, i))), kato_viewpoints())
        rgba = torch.cat([rendered.rgb, rendered.silhouette[:, None].float()], dim=1)
        stacks.append((rgba * 255).round().to(torch.uint8).numpy())
    return np.stack(stacks)


def test_kato_npz_round_trip(tmp_path):
    airplanes, cars = kato_images("airplane", 2), kato_images("car", 1)
    write_kato_npz(tmp_path / "kato" / "02691156_train_images.npz", airplanes)
    write_kato_npz(tmp_path / "kato" / "02958343_test_images.npz", cars)
    np.testing.assert_array_equal(read_kato_npz(tmp_path / "kato" / "02691156_train_images.npz"), airplanes)
    assert find_kato_files(tmp_path / "kato") == {
        "airplane": {"train": tmp_path / "kato" / "02691156_train_images.npz"},
        "car": {"test": tmp_path / "kato" / "02958343_test_images.npz"},
    }

    result = prepare_shapenet(
        PrepareShapeNetConfig(out=tmp_path / "out", source=tmp_path / "kato", views=4, image_size=SIZE)
    )
    assert result.categories == ["airplane", "car"] and set(result.splits) == {"train", "test"}  # Kato's own splits
    _, train = load_split_arrays(tmp_path / "out", "train")
    _, test = load_split_arrays(tmp_path / "out", "test")
    assert len(train["category"]) == 2 * 4 and set(test["category"].tolist()) == {1}
    for row in range(len(train["category"])):
        source = airplanes[train["object_index"][row], train["view_id"][row]]
        np.testing.assert_array_equal(train["amodal"][row], source[3] >= 128)  # alpha = amodal mask
        np.testing.assert_array_equal(train["clean_rgb"][row], source[:3])
    assert sorted(set(train["view_id"].tolist())) == [0, 6, 12, 18]


def test_kato_reader_rejects_wrong_layouts(tmp_path):
    np.savez(tmp_path / "a.npz", images=np.zeros((1, 24, 4, 8, 8), np.uint8))
    with pytest.raises(InputError, match="no 'arr_0' array"):
        read_kato_npz(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", np.zeros((1, 24, 3, 8, 8), np.uint8))
    with pytest.raises(InputError, match=r"shape \(objects, views, 4, S, S\)"):
        read_kato_npz(tmp_path / "b.npz")
    with pytest.raises(InputError, match="file not found"):
        read_kato_npz(tmp_path / "missing.npz")


def write_box_obj(path: Path, size=(2.0, 1.0, 0.5), offset=(5.0, 5.0, 5.0)) -> None:
    """A box OBJ far from the origin and not unit-sized, so that normalisation shows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    corners = [(x, y, z) for x in (0, size[0]) for y in (0, size[1]) for z in (0, size[2])]
    faces = [
        (1, 2, 4),
        (1, 4, 3),
        (5, 7, 8),
        (5, 8, 6),
        (1, 5, 6),
        (1, 6, 2),
        (3, 4, 8),
        (3, 8, 7),
        (1, 3, 7),
        (1, 7, 5),
        (2, 6, 8),
        (2, 8, 4),
    ]
    lines = [f"v {x + offset[0]} {y + offset[1]} {z + offset[2]}" for x, y, z in corners] + [
        f"f {a} {b} {c}" for a, b, c in faces
    ]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def mesh_tree(tmp_path):
    root = tmp_path / "ShapeNetCore"
    write_box_obj(root / "03001627" / "chair_a" / "model.obj")  # v1
    write_box_obj(root / "03001627" / "chair_b" / "model.obj", size=(1, 3, 1))
    write_box_obj(root / "04379243" / "table_a" / "models" / "model_normalized.obj")  # v2
    write_box_obj(root / "04379243" / "table_a" / "models" / "extra_part.obj")  # ignored beside model_normalized
    write_box_obj(root / "04379243" / "table_b" / "models" / "model_normalized.obj", size=(3, 1, 2))
    write_box_obj(root / "mugs" / "deep" / "mug.obj")  # any tree: category = first folder
    return root


def test_find_meshes_reads_v1_v2_and_plain_trees(mesh_tree):
    records = find_meshes(mesh_tree)
    assert [(r.category, r.object_id) for r in records] == [
        ("chair", "chair_a"),
        ("chair", "chair_b"),
        ("mugs", "deep/mug"),
        ("table", "table_a"),
        ("table", "table_b"),
    ]


def test_load_mesh_normalises_like_shapenet(mesh_tree):
    mesh = load_mesh(mesh_tree / "03001627" / "chair_a" / "model.obj")
    vertices = mesh.verts_packed()
    low, high = vertices.min(0).values, vertices.max(0).values
    assert float(torch.linalg.norm(high - low)) == pytest.approx(1.0, abs=1e-6)
    assert float(((low + high) / 2).abs().max()) < 1e-6
    # extents 2 x 1 x 0.5 keep their ratios: x spans 2 / sqrt(5.25)
    assert float(high[0] - low[0]) == pytest.approx(2 / 5.25**0.5, rel=1e-5)


def test_prepare_from_a_mesh_folder(mesh_tree, tmp_path):
    result = prepare_shapenet(
        PrepareShapeNetConfig(
            out=tmp_path / "out", source=mesh_tree, views=2, image_size=16, split_fractions=(0.6, 0.0, 0.4)
        )
    )
    assert result.categories == ["chair", "mugs", "table"]
    assert sum(s.objects for s in result.splits.values()) == 5
    _, train = load_split_arrays(tmp_path / "out", "train")
    assert train["amodal"].reshape(len(train["amodal"]), -1).sum(1).min() > 5  # every box is seen


def test_unreadable_sources_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no .obj or .ply meshes found"):
        find_meshes(tmp_path)
    broken = tmp_path / "broken.obj"
    broken.write_text("v 0 0 0\nf 1 2 3\n")
    with pytest.raises(InputError, match="broken.obj"):
        load_mesh(broken)
    with pytest.raises(InputError, match="source folder not found"):
        prepare_shapenet(PrepareShapeNetConfig(out=tmp_path / "o", source=tmp_path / "nowhere"))
