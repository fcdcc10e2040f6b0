"""Export what 3D-ASM reconstructs for one instance, so a person can look at the 3D prior.

:func:`export_instance_mesh` runs a stage-2 checkpoint on one instance, given either as an image
(the instance's crop, or a single-object image) plus its visible mask, or as annotation ``index``
of a canonical dataset split, and writes into ``out_dir``:

    mesh.obj, mesh.ply     the reconstructed mesh (object coordinates, Kato's camera convention)
    coarse_mask.png        the rendered coarse amodal mask (paper 3.4), S x S, thresholded at 0.5
    amodal_mask.png        the refined final amodal mask (paper 3.5)
    input_rgb.png, input_visible.png   the S x S network input, to compare with
    turntable.gif          the mesh shaded at evenly spaced azimuths
    summary.json           category, viewpoint, mask areas (and IoU with the ground truth)

It lives beside :mod:`a3d_core.pipelines.predict` rather than in the model package because it reads files
and datasets (:func:`read_rgb`, :func:`read_visible_mask`, canonical splits, ShapeNet shards); the network
only ever sees tensors.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from a3d_core.boxes import crop_instance, square_box
from a3d_core.data.canonical import decode_segmentation, read_dataset
from a3d_core.data.catalog import resolve_dataset
from a3d_core.data.framing import frame_view
from a3d_core.data.shapenet import STORAGE as SHARD_STORAGE, ShapeNetAmodalDataset
from a3d_core.errors import InputError
from a3d_core.io.atomic import atomic_write_json
from a3d_core.io.images import read_image, read_mask
from a3d_core.io.meshes import render_turntable, write_gif, write_mask_png, write_obj, write_ply, write_rgb_png
from a3d_core.model.asm import AmodalShapeModel, load_stage2_from_checkpoint
from a3d_core.runtime import resolve_device

CROP_MODES = ("amodal-box", "full-image")


def read_rgb(path: str | os.PathLike) -> torch.Tensor:
    """An image file as ``(3, H, W)`` float in [0, 1], read as :func:`a3d_core.io.images.read_image`
    reads any image (EXIF orientation, transparency on white, grey repeated, a size limit)."""
    return torch.from_numpy(read_image(path)).permute(2, 0, 1).float() / 255.0


def read_visible_mask(path: str | os.PathLike) -> torch.Tensor:
    """A mask image as ``(H, W)`` float {0, 1}: any non-zero pixel (of any channel) is inside
    (:func:`a3d_core.io.images.read_mask`)."""
    return torch.from_numpy(read_mask(path).astype(np.float32))


@dataclass
class InstanceInput:
    """One instance ready for stage 2: rgb ``(3, S, S)``, visible ``(1, S, S)``, and, when it came
    from a dataset, the ground-truth amodal mask ``(1, S, S)`` and category name. ``occluder``
    ``(1, S, S)``: what may hide it (``ASMSettings.occluder_input``), ``None`` where unknown."""

    rgb: torch.Tensor
    visible: torch.Tensor
    source: str
    amodal: torch.Tensor | None = None
    category: str | None = None
    occluder: torch.Tensor | None = None


@dataclass
class MeshExportResult:
    """What :func:`export_instance_mesh` wrote and predicted."""

    out_dir: Path
    source: str
    kind: str
    category: str
    category_source: str  # "given" (--category) or "predicted" (the classification branch)
    category_probability: float
    num_vertices: int
    num_faces: int
    elevation_deg: float
    azimuth_deg: float
    distance: float
    visible_pixels: int
    coarse_pixels: int
    amodal_pixels: int
    ground_truth_category: str | None = None
    amodal_iou: float | None = None
    files: dict[str, Path] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["out_dir"] = str(self.out_dir)
        values["files"] = {name: path.name for name, path in self.files.items()}
        return values


def image_instance(image: str | os.PathLike, visible_mask: str | os.PathLike, size: int) -> InstanceInput:
    """An instance from an image file (its whole area is the crop) and a same-sized visible-mask file;
    no other instance is given, so its occluder is empty (the union of no other visible masks)."""
    rgb, visible = read_rgb(image), read_visible_mask(visible_mask)
    if visible.shape != rgb.shape[1:]:
        raise InputError(
            f"{visible_mask}: mask is {visible.shape[1]}x{visible.shape[0]} but {image} is "
            f"{rgb.shape[2]}x{rgb.shape[1]}; they must have the same size"
        )
    height, width = visible.shape
    rgb, masks = crop_instance(rgb, visible[None], (0.0, 0.0, float(width), float(height)), size)
    return InstanceInput(rgb=rgb, visible=masks, source=f"{image} + {visible_mask}", occluder=torch.zeros_like(masks))


def dataset_instance(
    data: str | os.PathLike, index: int, split: str, size: int, crop: str = "amodal-box", framing: float | None = None
) -> InstanceInput:
    """Annotation ``index`` (0-based, in file order) of a canonical dataset split, cropped by ``crop``:
    ``amodal-box`` = the square around the ground-truth amodal box, ``framing`` (default 1) times
    its longer side, ``full-image`` = the whole image. Its occluder is the union of the visible
    masks of the image's other annotations, cropped alike. A ShapeNet-style shard dataset serves its
    sample ``index`` (:func:`shard_instance`), framed by ``framing`` when it is given."""
    if crop not in CROP_MODES:
        raise InputError(f"crop must be one of {', '.join(CROP_MODES)}, got {crop!r}")
    dataset = read_dataset(resolve_dataset(data))
    if dataset.manifest.get("storage") == SHARD_STORAGE:
        return shard_instance(dataset.root, index, split, size, framing)
    annotations = dataset.load_split(split)
    if not 0 <= index < len(annotations.annotations):
        raise InputError(
            f"{dataset.split_path(split)}: index {index} is out of range (it has {len(annotations.annotations)} "
            "annotations)"
        )
    annotation = annotations.annotations[index]
    images = {int(entry["id"]): entry for entry in annotations.images}
    entry = images.get(int(annotation["image_id"]))
    if entry is None:
        raise InputError(
            f"{dataset.split_path(split)}: annotation {annotation.get('id')} refers to a missing image "
            f"{annotation['image_id']}"
        )
    image_path = dataset.image_path(entry)
    rgb = read_rgb(image_path)
    height, width = rgb.shape[1:]
    others = [
        other
        for other in annotations.annotations
        if other is not annotation and other.get("image_id") == annotation["image_id"] and "visible_mask" in other
    ]
    try:
        visible = torch.from_numpy(decode_segmentation(annotation["visible_mask"], height, width)).float()
        amodal = torch.from_numpy(decode_segmentation(annotation["segmentation"], height, width)).float()
        occluder = torch.zeros(height, width)
        for other in others:
            other_visible = torch.from_numpy(decode_segmentation(other["visible_mask"], height, width)).float()
            occluder = torch.maximum(occluder, other_visible)
    except (KeyError, ValueError) as error:
        raise InputError(
            f"{dataset.split_path(split)}: annotation {annotation.get('id')} or another of its image has unreadable "
            f"masks ({error})"
        ) from None
    box = (
        square_box(annotation["bbox"], framing or 1.0)
        if crop == "amodal-box"
        else (0.0, 0.0, float(width), float(height))
    )
    rgb, masks = crop_instance(rgb, torch.stack([visible, amodal, occluder]), box, size)
    category = annotations.category_names.get(int(annotation["category_id"]))
    return InstanceInput(
        rgb=rgb,
        visible=masks[:1],
        amodal=masks[1:2],
        occluder=masks[2:],
        category=category,
        source=f"{dataset.root} {split}[{index}] (annotation {annotation.get('id')}, {image_path.name})",
    )


def shard_instance(root: Path, index: int, split: str, size: int, framing: float | None = None) -> InstanceInput:
    """Sample ``index`` of a split written by ``a3d prepare shapenet`` (array shards): each sample
    is already a single-object view; it is framed as the model was pretrained (``framing``,
    :func:`~a3d_core.data.framing.frame_view`) and resized to ``size`` when the model was trained at another one."""
    samples = ShapeNetAmodalDataset(root, split)
    if not 0 <= index < len(samples):
        raise InputError(f"{root} {split}: index {index} is out of range (it has {len(samples)} samples)")
    sample = samples[index]
    if framing is not None:
        sample = frame_view(sample, framing)
    side = float(sample["rgb"].shape[-1])
    stored = [sample["occluder"]] if "occluder" in sample else []
    rgb, masks = crop_instance(
        sample["rgb"], torch.cat([sample["visible"], sample["amodal"], *stored]), (0.0, 0.0, side, side), size
    )
    return InstanceInput(
        rgb=rgb,
        visible=masks[:1],
        amodal=masks[1:2],
        occluder=masks[2:] if stored else None,
        category=samples.categories[int(sample["category"])],
        source=f"{root} {split}[{index}] (object {int(sample['object_index'])}, view {int(sample['view_id'])})",
    )


def predict_instance(model: AmodalShapeModel, instance: InstanceInput, category: str | None = None) -> dict[str, Any]:
    """Run an eval-mode 3D model on one instance; ``category`` forces its shape decoder."""
    device = next(model.parameters()).device
    batch = {"rgb": instance.rgb[None].to(device), "visible": instance.visible[None].to(device)}
    if model.settings.occluder_input:
        if instance.occluder is None:
            raise InputError(
                f"{instance.source}: the model reads an occluder mask (occluder_input) and this sample stores none "
                "(prepared before the occluder was stored: prepare the data again)"
            )
        batch["occluder"] = instance.occluder[None].to(device)
    if category is not None:
        if category not in model.category_names:
            raise InputError(f"--category {category!r}: the checkpoint knows {', '.join(model.category_names)}")
        batch["shape_category"] = torch.tensor([model.category_names.index(category)], device=device)
    with torch.no_grad():
        return model.eval()(batch)


def export_instance_mesh(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    image: str | os.PathLike | None = None,
    visible_mask: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    index: int | None = None,
    split: str = "test",
    category: str | None = None,
    crop: str = "amodal-box",
    device: str = "auto",
    turntable_frames: int = 24,
    turntable_size: int = 128,
) -> MeshExportResult:
    """Reconstruct one instance with a stage-2 checkpoint and write its mesh, masks and turntable."""
    from_image = image is not None or visible_mask is not None
    from_data = data is not None or index is not None
    if from_image == from_data:
        raise InputError("give either --image with --visible-mask, or --dataset with --index")
    if from_image and (image is None or visible_mask is None):
        raise InputError("--image and --visible-mask go together")
    if from_data and (data is None or index is None):
        raise InputError("--dataset and --index go together")
    if turntable_frames < 1 or turntable_size < 8:
        raise InputError(
            f"the turntable needs at least 1 frame of at least 8 pixels, got {turntable_frames} of {turntable_size}"
        )

    torch_device = resolve_device(device)
    model = load_stage2_from_checkpoint(checkpoint, map_location=torch_device).to(torch_device)
    if not model.is_3d:
        raise InputError(f"{checkpoint}: a {model.kind!r} checkpoint has no 3D branch, so no mesh to export")
    size = model.settings.image_size
    framing = model.settings.input_framing
    instance = (
        image_instance(image, visible_mask, size)
        if from_image
        else dataset_instance(data, index, split, size, crop, framing)
    )
    out = predict_instance(model, instance, category)

    vertices, faces = out["vertices"][0].cpu(), out["faces"].cpu()
    coarse, amodal = out["coarse_mask"][0].cpu(), out["amodal_mask"][0].cpu()
    predicted = int(out["category"][0])
    probability = float(torch.softmax(out["class_logits"][0], dim=0)[predicted])
    viewpoint = out["viewpoint"]

    out_dir = Path(out_dir)
    files = {
        "obj": write_obj(out_dir / "mesh.obj", vertices, faces),
        "ply": write_ply(out_dir / "mesh.ply", vertices, faces),
        "coarse_mask": write_mask_png(out_dir / "coarse_mask.png", coarse),
        "amodal_mask": write_mask_png(out_dir / "amodal_mask.png", amodal),
        "input_rgb": write_rgb_png(out_dir / "input_rgb.png", instance.rgb),
        "input_visible": write_mask_png(out_dir / "input_visible.png", instance.visible[0]),
        "turntable": write_gif(
            out_dir / "turntable.gif", render_turntable(vertices, faces, turntable_frames, turntable_size)
        ),
    }
    amodal_iou = None
    if instance.amodal is not None:
        prediction, truth = amodal > 0.5, instance.amodal[0] > 0.5
        union = int((prediction | truth).sum())
        amodal_iou = float((prediction & truth).sum()) / union if union else 1.0
    result = MeshExportResult(
        out_dir=out_dir,
        source=instance.source,
        kind=model.kind,
        category=model.category_names[predicted],
        category_source="given" if category is not None else "predicted",
        category_probability=probability,
        num_vertices=int(vertices.shape[0]),
        num_faces=int(faces.shape[0]),
        elevation_deg=math.degrees(float(viewpoint.elevation[0])),
        azimuth_deg=math.degrees(float(viewpoint.azimuth[0])),
        distance=float(viewpoint.distance[0]),
        visible_pixels=int(instance.visible.sum()),
        coarse_pixels=int((coarse > 0.5).sum()),
        amodal_pixels=int((amodal > 0.5).sum()),
        ground_truth_category=instance.category,
        amodal_iou=amodal_iou,
        files=files,
    )
    result.files["summary"] = out_dir / "summary.json"
    atomic_write_json(result.files["summary"], result.to_json(), indent=2)
    return result
