"""Mesh folders: ShapeNetCore v1/v2 trees or any tree of ``.obj`` / ``.ply`` files.

Layouts (../FORMATS.md)::

    <root>/<synset>/<model_id>/model.obj                     ShapeNetCore v1
    <root>/<synset>/<model_id>/models/model_normalized.obj   ShapeNetCore v2
    <root>/<category>/**/<name>.obj|.ply                     any tree: category = first folder level
    <root>/<name>.obj|.ply                                   a file at the top: category = its stem

ShapeNet synset ids are mapped to the 13 category names of Kato's renders; other folder names
are used as they are. Meshes are normalised like ShapeNetCore (bounding box centred at the
origin, unit diagonal) and keep their materials: a textured OBJ (e.g. the cow) renders with its
texture, an untextured mesh in a uniform grey.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from a3d_core.data.shapes.mesh import normalization_transform
from a3d_core.errors import InputError

SHAPENET_SYNSETS: dict[str, str] = {
    "02691156": "airplane",
    "02828884": "bench",
    "02933112": "cabinet",
    "02958343": "car",
    "03001627": "chair",
    "03211117": "display",
    "03636649": "lamp",
    "03691459": "loudspeaker",
    "04090263": "rifle",
    "04256520": "sofa",
    "04379243": "table",
    "04401088": "telephone",
    "04530566": "watercraft",
}
MESH_SUFFIXES = (".obj", ".ply")
UNTEXTURED_GREY = 0.7
TEXTURE_ATLAS_SIZE = 8


@dataclass(frozen=True)
class MeshRecord:
    """One mesh file: its path, category name and object id (the path inside the category)."""

    path: Path
    category: str
    object_id: str


def category_name(folder: str) -> str:
    """A ShapeNet synset id's category name (``02691156`` -> ``airplane``), else the folder name."""
    return SHAPENET_SYNSETS.get(folder, folder)


def find_meshes(root: str | os.PathLike) -> list[MeshRecord]:
    """All meshes under ``root`` sorted by category and object id; one per ShapeNet model folder.

    In a ShapeNetCore v2 model folder only ``models/model_normalized.obj`` is taken; in v1 only
    ``model.obj``. Raises :class:`InputError` if ``root`` is missing or holds no mesh.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: mesh folder not found")
    records = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in MESH_SUFFIXES and p.is_file()):
        relative = path.relative_to(root)
        if len(relative.parts) == 1:
            records.append(MeshRecord(path, path.stem, path.stem))
            continue
        category, inner = relative.parts[0], Path(*relative.parts[1:])
        if inner.name == "model_normalized.obj" and inner.parent.name == "models":
            object_id = str(inner.parent.parent)
        elif inner.name == "model.obj" and len(inner.parts) == 2:
            object_id = str(inner.parent)
        elif (
            (path.parent / "model_normalized.obj").exists()
            or (path.parent / "model.obj").exists()
            or (path.parent / "models" / "model_normalized.obj").exists()
        ):
            continue
        else:
            object_id = str(inner.with_suffix(""))
        records.append(MeshRecord(path, category_name(category), object_id))
    if not records:
        raise InputError(f"{root}: no .obj or .ply meshes found")
    return sorted(records, key=lambda r: (r.category, r.object_id))


def load_mesh(path: str | os.PathLike, device: str = "cpu"):
    """A normalised, textured ``pytorch3d.structures.Meshes`` (one mesh) from an OBJ or PLY file.

    OBJ materials (diffuse colours and texture images) become a per-face texture atlas
    (``TEXTURE_ATLAS_SIZE`` texels a side); meshes without materials (and PLY files without
    vertex colours) are uniform grey. Raises :class:`InputError` naming the file if it cannot
    be read or has no faces.
    """
    from pytorch3d.io import IO, load_obj
    from pytorch3d.renderer import TexturesAtlas, TexturesVertex
    from pytorch3d.structures import Meshes

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: mesh file not found")
    try:
        if path.suffix.lower() == ".obj":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # missing .mtl files and wrapped UVs are normal
                vertices, faces, aux = load_obj(
                    path,
                    load_textures=True,
                    create_texture_atlas=True,
                    texture_atlas_size=TEXTURE_ATLAS_SIZE,
                    texture_wrap="repeat",
                )
            face_indices = faces.verts_idx
            textures = None
            has_materials = bool(aux.material_colors) or bool(aux.texture_images)
            if has_materials and aux.texture_atlas is not None and len(aux.texture_atlas) == len(face_indices):
                textures = TexturesAtlas(atlas=[aux.texture_atlas.clamp(0.0, 1.0)])
        else:
            loaded = IO().load_mesh(path, include_textures=True)
            vertices, face_indices = loaded.verts_packed(), loaded.faces_packed()
            textures = loaded.textures
    except (OSError, ValueError, IndexError, RuntimeError) as error:
        raise InputError(f"{path}: cannot read mesh ({error})") from None
    if len(face_indices) == 0:
        raise InputError(f"{path}: mesh has no faces")
    if not torch.isfinite(vertices).all():
        raise InputError(f"{path}: mesh has non-finite vertex coordinates")
    try:
        centre, scale = normalization_transform(vertices.numpy())
    except ValueError as error:
        raise InputError(f"{path}: {error}") from None
    vertices = (vertices - torch.from_numpy(centre)) * scale
    if textures is None:
        textures = TexturesVertex(verts_features=[torch.full_like(vertices, UNTEXTURED_GREY)])
    return Meshes(verts=[vertices.float()], faces=[face_indices], textures=textures).to(device)
