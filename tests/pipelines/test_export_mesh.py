"""Exporting a reconstruction: OBJ, PLY, mask PNGs, turntable GIF and summary, from an image or a dataset."""

import dataclasses
import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image
from pytorch3d.io import load_obj, load_ply

from a3d_core.boxes import crop_instance, square_box
from a3d_core.data.canonical import AmodalSplit, amodal_annotation, write_dataset
from a3d_core.data.framing import frame_view
from a3d_core.errors import InputError
from a3d_core.io.meshes import png_bytes, render_turntable, write_gif
from a3d_core.model.asm import build_stage2
from a3d_core.pipelines.export_mesh import export_instance_mesh, image_instance
from tests.model.conftest import CATEGORIES, SIZE, disc, one_thread, tiny_settings  # noqa: F401  (one_thread: autouse)


def save_checkpoint(tmp_path, kind="a3d", input_framing=None):
    torch.manual_seed(0)
    model = build_stage2(kind, CATEGORIES, dataclasses.replace(tiny_settings(), input_framing=input_framing))
    path = tmp_path / f"{kind}_{input_framing}.pt"
    torch.save(
        {"model": model.state_dict(), "model_config": model.config(), "category_names": model.category_names}, path
    )
    return path


def write_instance_files(tmp_path, size=SIZE):
    amodal = disc(9.0, size=size).numpy().astype(bool)
    visible = amodal.copy()
    visible[:, : size // 2] = False
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[amodal] = (200, 60, 40)
    (tmp_path / "crop.png").write_bytes(png_bytes(rgb))
    (tmp_path / "visible.png").write_bytes(png_bytes(visible.astype(np.uint8) * 255))
    return tmp_path / "crop.png", tmp_path / "visible.png", visible


def test_export_from_an_image_writes_valid_files(tmp_path):
    image, mask, visible = write_instance_files(tmp_path)
    result = export_instance_mesh(
        save_checkpoint(tmp_path),
        tmp_path / "out",
        image=image,
        visible_mask=mask,
        device="cpu",
        turntable_frames=3,
        turntable_size=24,
    )
    out = tmp_path / "out"
    vertices, faces, _ = load_obj(out / "mesh.obj", load_textures=False)
    assert vertices.shape == (42, 3) and faces.verts_idx.shape == (80, 3)
    assert sum(line.startswith("v ") for line in (out / "mesh.obj").read_text().splitlines()) == 42
    ply_vertices, ply_faces = load_ply(out / "mesh.ply")
    assert torch.allclose(ply_vertices, vertices, atol=1e-5) and torch.equal(ply_faces, faces.verts_idx)
    for name in ("coarse_mask", "amodal_mask", "input_visible"):
        png = iio.imread(out / f"{name}.png")
        assert png.shape == (SIZE, SIZE) and set(np.unique(png)) <= {0, 255}
    assert np.array_equal(iio.imread(out / "input_visible.png") > 0, visible)  # an S x S input is used as is
    gif = iio.imread(out / "turntable.gif", index=None)
    assert gif.shape[:3] == (3, 24, 24)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_vertices"] == 42 and summary["category_source"] == "predicted"
    assert summary["coarse_pixels"] == int((iio.imread(out / "coarse_mask.png") > 0).sum())
    assert result.category in CATEGORIES and result.amodal_iou is None


def test_export_from_a_dataset_crops_the_amodal_box_and_scores_it(tmp_path):
    amodal = disc(10.0, centre=(30.0, 20.0), size=64).numpy().astype(bool)
    visible = amodal.copy()
    visible[:, :20] = False
    rgb = np.full((64, 64, 3), 30, np.uint8)
    rgb[amodal] = 220
    annotation = amodal_annotation(7, 1, 2, amodal, visible)
    split = AmodalSplit(
        images=[{"id": 1, "file_name": "scene.png", "width": 64, "height": 64}],
        annotations=[annotation],
        categories=[{"id": 1, "name": "car"}, {"id": 2, "name": "chair"}],
    )
    write_dataset(tmp_path / "data", "tiny", "test", {"test": split}, write_images=[("scene.png", png_bytes(rgb))])
    result = export_instance_mesh(
        save_checkpoint(tmp_path),
        tmp_path / "out",
        data=tmp_path / "data",
        index=0,
        category="chair",
        device="cpu",
        turntable_frames=2,
        turntable_size=16,
    )
    assert result.ground_truth_category == "chair" and result.category == "chair" and result.category_source == "given"
    assert 0.0 <= result.amodal_iou <= 1.0
    crop = iio.imread(tmp_path / "out" / "input_visible.png") > 0
    # the 21 x 21 amodal box fills the S x S crop: the visible right half covers about half of a disc of radius S / 2
    assert abs(crop.sum() - 0.5 * np.pi * (SIZE / 2) ** 2) < 0.1 * SIZE**2
    with pytest.raises(InputError, match="out of range"):
        export_instance_mesh(save_checkpoint(tmp_path), tmp_path / "out", data=tmp_path / "data", index=3, device="cpu")


def test_export_refuses_bad_requests(tmp_path):
    image, mask, _ = write_instance_files(tmp_path)
    checkpoint = save_checkpoint(tmp_path)
    with pytest.raises(InputError, match="either --image"):
        export_instance_mesh(checkpoint, tmp_path / "out", image=image, visible_mask=mask, data="x", index=0)
    with pytest.raises(InputError, match="go together"):
        export_instance_mesh(checkpoint, tmp_path / "out", image=image)
    with pytest.raises(InputError, match="no 3D branch"):
        export_instance_mesh(
            save_checkpoint(tmp_path, "2d"), tmp_path / "out", image=image, visible_mask=mask, device="cpu"
        )
    with pytest.raises(InputError, match="'boat'"):
        export_instance_mesh(
            checkpoint, tmp_path / "out", image=image, visible_mask=mask, category="boat", device="cpu"
        )
    (tmp_path / "small.png").write_bytes(png_bytes(np.zeros((8, 8), np.uint8)))
    with pytest.raises(InputError, match="same size"):
        export_instance_mesh(
            checkpoint, tmp_path / "out", image=image, visible_mask=tmp_path / "small.png", device="cpu"
        )
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError, match="broken.png: not a readable image"):
        export_instance_mesh(
            checkpoint, tmp_path / "out", image=tmp_path / "broken.png", visible_mask=mask, device="cpu"
        )


def test_an_image_is_read_as_a_viewer_shows_it(tmp_path):
    # a photo stored 20 wide and 10 high with EXIF orientation 6 is shown 10 wide and 20 high,
    # the size of a mask drawn on what the viewer shows
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.full((10, 20, 3), 200, np.uint8)).save(tmp_path / "photo.jpg", exif=exif)
    (tmp_path / "mask.png").write_bytes(png_bytes(np.full((20, 10), 255, np.uint8)))
    instance = image_instance(tmp_path / "photo.jpg", tmp_path / "mask.png", size=8)
    assert instance.rgb.shape == (3, 8, 8) and instance.visible.shape == (1, 8, 8)
    assert instance.visible.min() == 1.0 and (instance.rgb - 200 / 255).abs().max() < 0.05


def test_square_crop_and_roi_resize_by_hand():
    assert square_box([10, 20, 4, 8]) == (8.0, 20.0, 16.0, 28.0)
    rgb = torch.zeros(3, 8, 8)
    mask = torch.zeros(1, 8, 8)
    mask[0, 4:, 4:] = 1.0
    _, cropped = crop_instance(rgb, mask, (4.0, 4.0, 8.0, 8.0), 2)
    assert cropped.tolist() == [[[1.0, 1.0], [1.0, 1.0]]]
    _, cropped = crop_instance(rgb, mask, (0.0, 0.0, 8.0, 8.0), 2)
    assert cropped.tolist() == [[[0.0, 0.0], [0.0, 1.0]]]
    with pytest.raises(InputError, match="empty box"):
        crop_instance(rgb, mask, (3.0, 3.0, 3.0, 5.0), 2)


def test_turntable_frames_turn_around_the_mesh(tmp_path):
    vertices = torch.tensor([[-0.6, -0.1, -0.1], [0.6, -0.1, -0.1], [0.0, 0.3, -0.1], [0.0, 0.0, 0.2]])
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [1, 2, 3], [2, 0, 3]])
    frames = render_turntable(vertices, faces, num_frames=4, image_size=32)
    assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8
    covered = (frames < 250).any(axis=-1).sum(axis=(1, 2))
    assert covered.min() > 0 and covered[0] != covered[1]  # the long axis faces the camera differently
    write_gif(tmp_path / "t.gif", frames)
    assert iio.imread(tmp_path / "t.gif", index=None).shape == (4, 32, 32, 3)


def test_export_from_a_shapenet_shard_dataset_frames_the_sample_as_the_model_was_pretrained(tmp_path):
    from a3d_core.data.prepare_shapenet import PrepareShapeNetConfig, prepare_shapenet
    from a3d_core.data.shapenet import ShapeNetAmodalDataset

    data = tmp_path / "shapenet"
    prepare_shapenet(
        PrepareShapeNetConfig(
            out=data,
            categories=("car", "chair"),
            objects_per_category=2,
            views=2,
            image_size=SIZE,
            split_fractions=(0.5, 0.0, 0.5),
            seed=3,
            min_amodal_pixels=4,
        )
    )
    sample = ShapeNetAmodalDataset(data, "test")[1]
    result = export_instance_mesh(
        save_checkpoint(tmp_path),
        tmp_path / "out",
        data=data,
        index=1,
        split="test",
        device="cpu",
        turntable_frames=2,
        turntable_size=16,
    )
    visible = iio.imread(tmp_path / "out" / "input_visible.png") > 0
    assert np.array_equal(visible, sample["visible"][0].numpy() > 0.5)  # same size: served unchanged
    assert result.ground_truth_category == CATEGORIES[int(sample["category"])]
    assert result.amodal_iou is not None and 0.0 <= result.amodal_iou <= 1.0
    with pytest.raises(InputError, match="out of range"):
        export_instance_mesh(
            save_checkpoint(tmp_path), tmp_path / "out2", data=data, index=99, split="test", device="cpu"
        )

    # A prior pretrained on framed views gets the sample framed the same way.
    export_instance_mesh(
        save_checkpoint(tmp_path, input_framing=1.0),
        tmp_path / "framed",
        data=data,
        index=1,
        split="test",
        device="cpu",
        turntable_frames=2,
        turntable_size=16,
    )
    framed = iio.imread(tmp_path / "framed" / "input_visible.png") > 0
    assert np.array_equal(framed, frame_view(sample, 1.0)["visible"][0].numpy() > 0.5) and not np.array_equal(
        framed, visible
    )
