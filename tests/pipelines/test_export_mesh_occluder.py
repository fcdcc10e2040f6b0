"""export-mesh with a network that reads the occluder mask: where each instance's occluder comes from."""

import dataclasses

import numpy as np
import pytest
import torch

from a3d_core.data.canonical import AmodalSplit, amodal_annotation, write_dataset
from a3d_core.errors import InputError
from a3d_core.io.meshes import png_bytes
from a3d_core.model.asm import build_stage2
from a3d_core.pipelines.export_mesh import InstanceInput, dataset_instance, export_instance_mesh, predict_instance
from tests.model.conftest import CATEGORIES, SIZE, disc, one_thread, tiny_settings  # noqa: F401  (one_thread: autouse)


def _two_instance_dataset(tmp_path):
    """One 32 x 32 image with two overlapping discs: the right one in front of the left one."""
    left = disc(8.0, centre=(16.0, 11.0)).numpy().astype(bool)
    right = disc(8.0, centre=(16.0, 21.0)).numpy().astype(bool)
    rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
    rgb[left], rgb[right] = (200, 60, 40), (40, 60, 200)
    annotations = [amodal_annotation(1, 1, 1, left, left & ~right), amodal_annotation(2, 1, 2, right, right)]
    split = AmodalSplit(
        images=[{"id": 1, "file_name": "scene.png", "width": SIZE, "height": SIZE}],
        annotations=annotations,
        categories=[{"id": 1, "name": "car"}, {"id": 2, "name": "chair"}],
    )
    write_dataset(tmp_path / "data", "tiny", "test", {"test": split}, write_images=[("scene.png", png_bytes(rgb))])
    return tmp_path / "data", left & ~right, right


def test_a_dataset_instance_s_occluder_is_the_other_annotations_visible_masks(tmp_path):
    data, left_visible, right_visible = _two_instance_dataset(tmp_path)
    first = dataset_instance(data, 0, "test", SIZE, crop="full-image")
    second = dataset_instance(data, 1, "test", SIZE, crop="full-image")
    assert np.array_equal(first.visible[0].numpy() > 0, left_visible)
    assert np.array_equal(first.occluder[0].numpy() > 0, right_visible)
    assert np.array_equal(second.occluder[0].numpy() > 0, left_visible)


def test_an_occluder_aware_checkpoint_exports_and_refuses_an_instance_without_an_occluder(tmp_path):
    data, _, _ = _two_instance_dataset(tmp_path)
    torch.manual_seed(0)
    model = build_stage2("a3d", CATEGORIES, dataclasses.replace(tiny_settings(), occluder_input=True))
    path = tmp_path / "occluder.pt"
    state = {"model": model.state_dict(), "model_config": model.config(), "category_names": model.category_names}
    torch.save(state, path)
    result = export_instance_mesh(path, tmp_path / "out", data=data, index=0, device="cpu", turntable_frames=1)
    assert result.num_vertices == 42
    lone = InstanceInput(rgb=torch.rand(3, SIZE, SIZE), visible=torch.ones(1, SIZE, SIZE), source="a shard sample")
    with pytest.raises(InputError, match="a shard sample: the model reads an occluder mask"):
        predict_instance(model, lone)
