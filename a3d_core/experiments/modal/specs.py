"""What the modal study runs: its scales (data sizes, one training budget) and its models.

A model (:class:`ModelSpec`) is a stage-2 kind trained on one of three sources of masks
(:data:`SOURCES`), every one class-agnostic and given its input as masks, ``(visible, occluder,
0)`` (Deocclusion's mask-only input, Zhan et al., CVPR 2020, the paper's ref. 36), so that a model
trained on any source is scored on every test set:

* ``real``: Deocclusion pairs of real COCO modal masks (``a3d prepare modal``): the target is the
  instance's modal mask, the input what another instance's mask (the eraser) leaves of it;
* ``library``: the built-in shape library's views (``a3d prepare shapenet``): the target is the
  true amodal mask, the input the visible mask and the pasted occluders;
* ``both``: the two, one after the other.

Every trained model sees the same number of training instances in batches of the same size, with
flips, its checkpoint chosen on the val split of its own source; each kind keeps a3d's current
defaults (:class:`~a3d_core.model.asm.ASMSettings`) but the scale's image size, mesh template
level and dictionary size. Cross-view consistency is off for every model: a real instance has one view.
"""

from __future__ import annotations

from dataclasses import dataclass

from a3d_core.boxes import DEFAULT_CROP_SCALE
from a3d_core.model.asm import ASMSettings
from a3d_core.model.shapedict import ShapeDictSettings

SOURCES = ("real", "library", "both")
"""The training data of a model (see the module docstring)."""
TEST_SETS = ("real", "scenes", "library")
"""Where every model is scored: ``real``: the held-out COCO images' instances, erasers in front;
``scenes``: the built-in scenes' instances, completed in their images (the completion protocol);
``library``: the held-out library objects' views."""
KINDS = ("2d", "2d-unet", "shapedict", "a3d")
HEADLINE_KINDS = ("2d-unet", "a3d")
"""Trained with :attr:`StudyScale.seeds` seeds: the models the study's questions are asked of."""


@dataclass(frozen=True)
class StudyScale:
    """The data, the training budget and the sizes of one scale (:data:`SCALES`).

    real_images: read only the first this many images of the annotation file (None: all), split
        ``real_split`` by image. library_*: ``a3d prepare shapenet`` of the built-in shapes
        (``library_categories`` None: all), split by object. scenes_images: the built-in scenes
        scored (``a3d prepare scenes``' val split; nothing is trained or chosen on scenes).
    instances, batch_size: what every trained model sees, in optimizer steps of ``batch_size``.
    validations: checkpoints scored on val per run. seeds: of each headline model
    (:data:`HEADLINE_KINDS`), the others one. resamples: of the bootstrap intervals.
    """

    name: str
    image_size: int
    real_images: int | None
    library_objects_per_category: int
    library_views: int
    scenes_images: int
    instances: int
    batch_size: int
    lr: float
    template_level: int
    atoms_per_category: int
    validations: int
    seeds: int
    resamples: int
    library_categories: tuple[str, ...] | None = None
    real_split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    library_split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    scene_categories: tuple[str, ...] | None = None


SCALES = {
    "tiny": StudyScale(
        "tiny",
        image_size=16,
        real_images=20,
        library_objects_per_category=4,
        library_views=4,
        scenes_images=3,
        instances=32,
        batch_size=4,
        lr=1e-2,
        template_level=1,
        atoms_per_category=2,
        validations=1,
        seeds=2,
        resamples=100,
        library_categories=("car", "table"),
        library_split=(0.5, 0.25, 0.25),
        scene_categories=("car", "table"),
    ),
    "cpu": StudyScale(
        "cpu",
        image_size=32,
        real_images=None,
        library_objects_per_category=8,
        library_views=8,
        scenes_images=100,
        instances=4_800,
        batch_size=16,
        lr=1e-3,
        template_level=2,
        atoms_per_category=64,
        validations=6,
        seeds=3,
        resamples=2000,
    ),
}
"""tiny: runs in a test; cpu: sized to train every model in about 40 minutes on 2 cores with two
processes (docs/modal.md, "The study")."""


@dataclass(frozen=True)
class ModelSpec:
    """One model: ``kind`` (a stage-2 kind, or ``visible``: the visible mask) trained on ``source``
    (:data:`SOURCES`; ``None`` for the visible mask)."""

    kind: str
    source: str | None

    @property
    def name(self) -> str:
        return "visible mask" if self.source is None else f"{self.kind} on {self.source}"

    @property
    def slug(self) -> str:
        return "visible" if self.source is None else f"{self.kind}-{self.source}"

    @property
    def trained(self) -> bool:
        return self.source is not None

    @property
    def headline(self) -> bool:
        return self.kind in HEADLINE_KINDS


VISIBLE = ModelSpec("visible", None)
MODELS = (VISIBLE, *(ModelSpec(kind, source) for kind in KINDS for source in SOURCES))


def stage2_settings(scale: StudyScale) -> ASMSettings:
    """The stage-2 settings of every trained model at ``scale``: a3d's defaults at its image size,
    template level and dictionary size, inputs framed as the two-stage network crops instances."""
    return ASMSettings(
        image_size=scale.image_size,
        template_level=scale.template_level,
        input_framing=DEFAULT_CROP_SCALE,
        shapedict=ShapeDictSettings(atoms_per_category=scale.atoms_per_category),
    )


def select_models(names: list[str] | None) -> list[ModelSpec]:
    """The models named by slug (``a3d-real``) or kind (``a3d``: its three sources); ``None``: all.

    Raises:
        ValueError: a name that is neither.
    """
    if names is None:
        return list(MODELS)
    unknown = sorted(set(names) - {m.slug for m in MODELS} - {m.kind for m in MODELS})
    if unknown:
        raise ValueError(f"unknown models {unknown} (known: {', '.join(m.slug for m in MODELS)}, or a kind)")
    return [m for m in MODELS if m.slug in names or m.kind in names]
