"""What the viewpoint benchmark runs: its scales (data, budget, sizes) and its models.

A model (:class:`ModelSpec`) is a stage-2 kind and overrides of the scale's base
:class:`~a3d_core.model.asm.ASMSettings` (:func:`base_settings`), dotted paths into the settings
(``{"viewpoint.azimuth_hypotheses": 1}``) applied with :func:`dataclasses.replace`
(:func:`override_settings`): a new stage-2 option needs no field here, only its override.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from a3d_core.boxes import DEFAULT_CROP_SCALE
from a3d_core.model.asm import ASMSettings
from a3d_core.model.shapedict import ShapeDictSettings


@dataclass(frozen=True)
class BenchmarkScale:
    """The data, the training budget and the sizes of one scale (:data:`SCALES`).

    ``instances`` is what every trained model sees: a model with cross-view consistency takes
    ``instances / (2 * batch_size)`` steps, the others ``instances / batch_size``. ``seeds``: how
    many times each headline model (:attr:`ModelSpec.headline`) is trained, with seeds
    ``seed, seed + 1, ...``; the others once. ``farview``: the far-view cameras
    (:mod:`a3d_core.data.viewpoints`).
    """

    name: str
    image_size: int
    objects_per_category: int
    views: int
    elevations: tuple[float, ...]
    holdout_views: tuple[int, int]
    holdout_elevations: tuple[float, ...]
    holdout_pairs: tuple[tuple[float, int], ...]
    instances: int
    batch_size: int
    lr: float
    template_level: int
    validations: int
    val_instances: int
    atoms_per_category: int
    categories: tuple[str, ...] | None = None
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    resamples: int = 2000
    seeds: int = 1
    farview: tuple[tuple[float, int], ...] = ()


_PROTOCOL = dict(
    elevations=(0.0, 30.0),
    holdout_views=(4, 8),
    holdout_elevations=(60.0, -15.0),
    holdout_pairs=((0.0, 1), (0.0, 2), (30.0, 3)),
    farview=((0.0, 6), (0.0, 18), (-15.0, 6), (-15.0, 18), (70.0, 6), (70.0, 18)),
)
"""Training within 45 degrees of front and back (the side wedge, views 4-8 and 16-20, held out) at
elevations 0 and 30. ``test_combination``: views 1, 2 at 0 and 3 at 30, with their mirrors and
twins (each seen at the other elevation). ``test_farview``: the side at 0 and -15 and from above
at 70, each at least 45 degrees from every training camera, mirror and twin."""
_POWER = dict(objects_per_category=18, split_fractions=(0.385, 0.17, 0.445), seeds=3)
"""7 train, 3 val and 8 test objects per category; the headline models trained with 3 seeds."""
SCALES = {
    "tiny": BenchmarkScale(
        "tiny",
        image_size=16,
        objects_per_category=3,
        views=8,
        elevations=(0.0, 30.0),
        holdout_views=(3, 3),
        holdout_elevations=(60.0,),
        holdout_pairs=((0.0, 6),),
        farview=((-15.0, 3), (-15.0, 21)),
        instances=32,
        batch_size=8,
        lr=1e-3,
        template_level=1,
        validations=1,
        val_instances=8,
        atoms_per_category=2,
        categories=("car", "table"),
        split_fractions=(0.34, 0.33, 0.33),
        resamples=100,
        seeds=2,
    ),
    "cpu": BenchmarkScale(
        "cpu",
        image_size=32,
        views=24,
        **_PROTOCOL,
        **_POWER,
        instances=12_800,
        batch_size=16,
        lr=1e-3,
        template_level=2,
        validations=8,
        val_instances=256,
        atoms_per_category=64,
    ),
    "gpu": BenchmarkScale(
        "gpu",
        image_size=64,
        views=24,
        **_PROTOCOL,
        **_POWER,
        instances=1_280_000,
        batch_size=64,
        lr=1e-4,
        template_level=3,
        validations=20,
        val_instances=512,
        atoms_per_category=128,
    ),
}
"""tiny: runs in a test; cpu: the 2-core machine's scale, sized to train every model of
:data:`MODELS` in about 2 hours (docs/viewpoints.md); gpu: the paper's 64x64, 642 vertices, batch
64 and Adam 1e-4 (20,000 steps of the 2D models, 10,000 cross-view steps)."""


def base_settings(scale: BenchmarkScale) -> ASMSettings:
    """The stage-2 settings every model of ``scale`` starts from: its image size, mesh template
    level and dictionary size, the views framed as the two-stage network crops them."""
    return ASMSettings(
        image_size=scale.image_size,
        template_level=scale.template_level,
        input_framing=DEFAULT_CROP_SCALE,
        shapedict=ShapeDictSettings(atoms_per_category=scale.atoms_per_category),
    )


def override_settings(settings: Any, overrides: Mapping[str, Any]) -> Any:
    """``settings`` (a settings dataclass) with each dotted path of ``overrides`` set to its value,
    by :func:`dataclasses.replace` at every level (``{"losses.view_cycle_shape": 1.0}``).

    Raises:
        ValueError: a path naming no setting.
    """
    for path, value in overrides.items():
        settings = _replace_path(settings, path.split("."), value, path)
    return settings


def _replace_path(settings: Any, names: list[str], value: Any, path: str) -> Any:
    name = names[0]
    if not dataclasses.is_dataclass(settings) or name not in {item.name for item in dataclasses.fields(settings)}:
        raise ValueError(f"{path}: {type(settings).__name__} has no setting {name!r}")
    if len(names) > 1:
        value = _replace_path(getattr(settings, name), names[1:], value, path)
    return dataclasses.replace(settings, **{name: value})


TARGETS = ("amodal", "modal")


@dataclass(frozen=True)
class ModelSpec:
    """One model of the benchmark.

    Attributes:
        name: its name in the report.
        kind: its stage-2 kind (:data:`a3d_core.model.asm.KINDS`), or ``visible`` (the visible mask).
        description: what it is, for the report.
        trained: trained by pretraining (else built and fitted, or nothing to build).
        cross_view: cross-view consistency (paper 3.7).
        stage2: overrides of the scale's :func:`base_settings` (see :func:`override_settings`).
        headline: trained with :attr:`BenchmarkScale.seeds` seeds (the models the benchmark's
            question is about), else with one.
        targets: what it learns from: ``amodal`` (the views' amodal masks, every model but one)
            or ``modal`` (Deocclusion's recipe, :mod:`a3d_core.data.modal_views`: pairs made of
            the training views' visible masks alone, chosen on val pairs alike, and given its
            input as masks, ``(visible, occluder, 0)``, in evaluation).
    """

    name: str
    kind: str
    description: str
    trained: bool = True
    cross_view: bool = False
    stage2: Mapping[str, Any] = field(default_factory=dict)
    headline: bool = False
    targets: str = "amodal"

    def __post_init__(self) -> None:
        if self.targets not in TARGETS:
            raise ValueError(f"{self.name}: targets must be one of {TARGETS}, got {self.targets!r}")

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")

    @property
    def is_3d(self) -> bool:
        return self.kind.startswith("a3d")

    def settings(self, scale: BenchmarkScale) -> ASMSettings:
        """Its stage-2 settings at ``scale``."""
        return override_settings(base_settings(scale), self.stage2)


# The settings each model was measured with, pinned where the stage-2 defaults have changed since
# (now one camera, the view cycle and the U-Net refine): the edge refine, no view cycle, K hypotheses.
EDGE_REFINE = {"refine.architecture": "edge"}
NO_VIEW_CYCLE = {"losses.view_cycle_camera": 0.0, "losses.view_cycle_shape": 0.0}
FOUR_HYPOTHESES = {"viewpoint.azimuth_hypotheses": 4}
ONE_CAMERA = {"viewpoint.azimuth_hypotheses": 1}
# The 2D baselines use no viewpoint, but their records hold the settings they were trained with.
BASELINE_2D = {**EDGE_REFINE, **FOUR_HYPOTHESES}
VIEW_CYCLE = {**ONE_CAMERA, "losses.view_cycle_camera": 1.0, "losses.view_cycle_shape": 1.0}
PAPER_A3D = {**ONE_CAMERA, **NO_VIEW_CYCLE, **EDGE_REFINE}
"""The paper's A3D: one learned camera, the edge refine, no view cycle."""
OCCLUDER_INPUT = {"occluder_input": True}

VISIBLE = ModelSpec("visible mask", "visible", "the visible mask itself as the amodal mask", trained=False)
RETRIEVAL = ModelSpec(
    "retrieval",
    "shapedict-no-refine",
    "training-free: the training amodal mask (or its mirror) of any "
    "category that best overlaps the visible mask, united with it",
    trained=False,
    stage2={"shapedict": ShapeDictSettings(atoms_per_category=0, mirrored=True, retrieval="all")},
)
ONE_CAMERA_A3D = ModelSpec(
    "A3D, 1 camera",
    "a3d",
    "mesh + viewpoint + renderer + refine, the paper's single camera, symmetric meshes, cross-view",
    cross_view=True,
    stage2=PAPER_A3D,
    headline=True,
)
CAMERA_MODELS = (
    ModelSpec(
        "A3D, oracle camera (upper bound)",
        "a3d",
        "A3D, 1 camera, rendering at the TRUE camera in training and evaluation: an upper bound, not the "
        "paper's method (cameras are not known at test time)",
        cross_view=True,
        stage2={**PAPER_A3D, "viewpoint.camera": "oracle"},
        headline=True,
    ),
    ModelSpec(
        "A3D, camera-supervised",
        "a3d",
        "A3D, 1 camera, whose viewpoint estimator learns the training set's cameras and predicts them at test",
        cross_view=True,
        stage2={**PAPER_A3D, "viewpoint.camera": "supervised"},
        headline=True,
    ),
)
"""The ceiling (labelled an upper bound) and the camera-supervised A3D (``ViewpointSettings.camera``)."""
DEOCCLUSION = ModelSpec(
    "Deocclusion",
    "2d-unet",
    "the U-Net trained the Deocclusion way (Zhan et al., CVPR 2020; the paper's ref. 36): on pairs made of the "
    "training views' VISIBLE masks, another view's visible mask erasing part of each, never an amodal mask; "
    "given its input as masks (visible, occluder)",
    stage2=BASELINE_2D,
    targets="modal",
)
"""The paper's weakly supervised baseline (its Tables 1-3, first row) on the benchmark's views."""
MODELS = (
    VISIBLE,
    RETRIEVAL,
    ModelSpec(
        "ShapeDict",
        "shapedict",
        "K-means atoms per category retrieved by the visible mask, then the edge refine",
        stage2=BASELINE_2D,
    ),
    ModelSpec(
        "2D", "2d", "the 2D mask decoder (fc to S/8, three upsampling stages), then the edge refine", stage2=BASELINE_2D
    ),
    ModelSpec(
        "U-Net",
        "2d-unet",
        "a U-Net decoder with skips, about A3D's active parameters, then the edge refine",
        stage2=BASELINE_2D,
        headline=True,
    ),
    DEOCCLUSION,
    ONE_CAMERA_A3D,
    *CAMERA_MODELS,
)
"""The models a run trains by default, sized to the cpu scale's time budget."""
OPTIONAL_MODELS = (
    ModelSpec(
        "A3D",
        "a3d",
        "4 azimuth hypotheses (a3d's defaults before the view cycle and U-Net refine), symmetric meshes, cross-view",
        cross_view=True,
        stage2={**FOUR_HYPOTHESES, **NO_VIEW_CYCLE, **EDGE_REFINE},
    ),
    ModelSpec(
        "A3D, scored",
        "a3d",
        "A3D whose viewpoint estimator scores its 4 hypotheses; one rendered in evaluation",
        cross_view=True,
        stage2={**FOUR_HYPOTHESES, "viewpoint.hypothesis_selection": "scores", **NO_VIEW_CYCLE, **EDGE_REFINE},
    ),
    ModelSpec(
        "A3D, 1 camera, view cycle",
        "a3d",
        "A3D, 1 camera, plus the view cycle: meshes rendered at random cameras, re-encoded, must give back "
        "camera and mesh",
        cross_view=True,
        stage2={**VIEW_CYCLE, **EDGE_REFINE},
    ),
    ModelSpec(
        "A3D, 1 camera, view cycle, U-Net refine",
        "a3d",
        "A3D, 1 camera, view cycle, with a small U-Net in place of the edge refine (about the U-Net baseline's "
        "active parameters)",
        cross_view=True,
        stage2={**VIEW_CYCLE, "refine.architecture": "unet"},
    ),
    ModelSpec(
        "U-Net, occluder input",
        "2d-unet",
        "the U-Net baseline also reading the mask of the pasted occluders (a fifth input channel)",
        stage2={**BASELINE_2D, **OCCLUDER_INPUT},
    ),
    ModelSpec(
        "A3D, 1 camera, occluder input",
        "a3d",
        "A3D, 1 camera, whose encoder, viewpoint estimator and refine also read the mask of the pasted occluders",
        cross_view=True,
        stage2={**PAPER_A3D, **OCCLUDER_INPUT},
    ),
)
"""Run only when named (``--models``): the earlier A3D variants, beyond the cpu scale's budget."""
ALL_MODELS = (*MODELS, *OPTIONAL_MODELS)
BASELINES = ("retrieval", "ShapeDict", "2D", "U-Net")
"""The 2D baselines, of which the best on val is A3D's opponent."""
MAIN_MODEL = "A3D, 1 camera"
"""The paper's A3D: what every baseline is set against in the report's sentences."""
