"""3D Amodal Shape Modeling (3D-ASM): the stage-2 network of A3D (paper 3.3 to 3.7).

For each instance the input ``A_i = [I_i^a, M_i^v]`` (RGB crop of the amodal box, visible mask)
goes through

1. the encoder (5 conv-bn-relu + 3 fc) and its classification branch (3.3);
2. a coarse-mask branch: for A3D, :class:`MeshMaskBranch` = the category-specific shape decoder
   (a deformed ico-sphere, 3.3), the viewpoint estimator and the soft silhouette renderer (3.4);
   for the 2D baselines, :class:`~a3d_core.model.baseline2d.MaskDecoder2D`, the U-Net
   :class:`~a3d_core.model.unet2d.UNetMaskDecoder` or the mask dictionary
   :class:`~a3d_core.model.shapedict.ShapeDictBranch`;
3. the region-specific edge refine (3.5), unless switched off (ablation).

Occluder input (not in the paper, ``ASMSettings.occluder_input``): every part that reads the
instance input (the encoder, the viewpoint estimator, the U-Net decoder, the refine) also reads
``M_i^o``, the mask of what may hide the instance, as a fifth channel ``[I_i^a, M_i^v, M_i^o]``:
the pasted occluders in synthetic data, the other instances' visible masks in a scene
(:func:`~a3d_core.model.a3d.other_instances_masks`). Off, the networks are the paper's.

Contract (torchvision style)::

    model = build_stage2("a3d", category_names, ASMSettings(image_size=64))
    batch = {"rgb": (B, 3, S, S) float in [0, 1], "visible": (B, 1, S, S) {0, 1},
             "amodal": (B, 1, S, S) {0, 1} (training), "category": (B,) int64 (training),
             "occluder": (B, 1, S, S) {0, 1} (only with occluder_input),
             optional cross-view: "rgb_pair", "visible_pair", "amodal_pair", "category_pair" (and
             "occluder_pair" with occluder_input),
             the true camera (only the "supervised" and "oracle" camera sources read it):
             "elevation", "azimuth" (B,) float degrees, Kato's convention, "*_pair" with cross-view}
    model.train(); losses = model(batch)   # dict of already-weighted scalar terms; total = sum
    model.eval();  out = model(batch)      # "amodal_mask", "coarse_mask" (B, S, S), "class_logits"
                                           # (B, C), "category" (B,), and for 3D kinds "vertices"
                                           # (B, V, 3), "faces" (F, 3), "viewpoint" (Viewpoint)

Which category's shape decoder runs: the ground-truth ``category`` in training (the decoder
learns its own category's shapes), the classification branch's prediction in evaluation (the
class is unknown at test time). An evaluation batch may force the decoder with an optional
``"shape_category"`` (B,) int64 entry (``a3d export-mesh --category``); an entry of ``-1`` leaves
that instance's decoder to the classification branch (``a3d complete`` on classes without a prior).

Cross-view consistency (3.7, optional, pretraining): with ``cross_view_weight > 0`` and the
``*_pair`` entries (the same objects from another view), both views are encoded as one batch;
besides the usual losses on both, the shape from view A is rendered with the viewpoint
predicted from view B and must match B's amodal mask (and B's shape at A's viewpoint, A's mask).

View cycle (not in the paper; on by default for the 3D kinds): with ``losses.view_cycle_camera``
or ``losses.view_cycle_shape`` > 0, each mesh is rendered at a random camera and re-encoded; the
viewpoint estimator must find that camera and the shape decoder that mesh
(:mod:`a3d_core.model.view_cycle`). Unset (``None``) view-cycle weights are resolved per kind when
the network is built (:meth:`~a3d_core.model.losses.LossSettings.for_branch`); a 2D kind refuses
explicit non-zero ones.

Defaults (chosen on val, docs/stage2.md): one camera (the paper's), the view cycle and the U-Net
refine in place of the paper's edge refine.

Camera sources (not in the paper, ``ViewpointSettings.camera``, :mod:`a3d_core.model.viewpoint`):
``"supervised"`` adds ``camera_supervision``, the distance of the predicted camera from the true
one of each training view (batch entries ``"elevation"`` and ``"azimuth"``); ``"oracle"`` renders
the mesh at the true elevation and azimuth in training and evaluation (an upper bound, not a
method), with the predicted distance.

Kinds (``KINDS``): ``a3d`` (full), ``a3d-no-refine`` (ablation: the coarse rendered mask is the
final mask), ``2d`` (the 2D baseline: no 3D branch), ``2d-no-refine``, ``2d-unet`` (a U-Net
decoder of about A3D's active parameter count), ``shapedict`` (retrieval from a K-means
dictionary of training masks, then the edge refine; it must be fitted, see
:meth:`AmodalShapeModel.fit_to_masks`) and ``shapedict-no-refine``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import torch
from torch import nn

from a3d_core.errors import InputError
from a3d_core.geometry import Viewpoint, ico_sphere_template
from a3d_core.io.checkpoints import load_checked_weights, read_checkpoint
from a3d_core.model.baseline2d import MaskDecoder2D, MaskDecoder2DSettings
from a3d_core.model.encoder import ClassificationBranch, Encoder, EncoderSettings
from a3d_core.model.losses import (
    LossSettings,
    MeshRegularizer,
    classification_loss,
    edge_refine_loss,
    reconstruction_loss,
    soft_iou,
)
from a3d_core.model.mask_branch import MaskBranchOutput
from a3d_core.model.refine import EdgeRefine, RefineSettings, UNetRefine, build_refine
from a3d_core.model.render import SilhouetteRendererSettings, SoftSilhouetteRenderer
from a3d_core.model.shape import ShapeDecoder, ShapeDecoderSettings
from a3d_core.model.shapedict import ShapeDictBranch, ShapeDictSettings
from a3d_core.model.unet2d import UNet2DSettings, UNetMaskDecoder
from a3d_core.model.view_cycle import (
    camera_cycle_loss,
    cycle_inputs,
    random_viewpoints,
    running_statistics_frozen,
    shape_cycle_loss,
)
from a3d_core.model.viewpoint import CameraAngles, ViewpointEstimator, ViewpointSettings, pick_hypotheses

KINDS = ("a3d", "a3d-no-refine", "2d", "2d-no-refine", "2d-unet", "shapedict", "shapedict-no-refine")
MESH_KINDS = ("a3d", "a3d-no-refine")
"""The kinds whose coarse mask is a rendered mesh (paper 3.3-3.4): they predict meshes and cameras."""
DEFAULT_KIND = "2d-unet"
"""The stage-2 kind that ``a3d pretrain``, ``a3d finetune`` and ``a3d demo`` train unless told
otherwise: the best completer a3d has, chosen on val in the two-stage setting by
``benchmarks/bm_twostage.py`` (docs/twostage.md, "Which stage 2 by default"). ``"a3d"`` is the
paper's 3D shape prior (3.3-3.6), the only kind that reconstructs meshes."""
PAIR_KEYS = ("rgb_pair", "visible_pair", "amodal_pair", "category_pair")
OCCLUDER_KEY = "occluder"
CAMERA_KEYS = ("elevation", "azimuth")
CHECKPOINT_KEYS = ("model", "model_config", "category_names")

_NESTED_SETTINGS = {
    "encoder": EncoderSettings,
    "shape": ShapeDecoderSettings,
    "viewpoint": ViewpointSettings,
    "renderer": SilhouetteRendererSettings,
    "refine": RefineSettings,
    "mask_decoder": MaskDecoder2DSettings,
    "unet": UNet2DSettings,
    "shapedict": ShapeDictSettings,
    "losses": LossSettings,
}

# Settings added after checkpoints had been written, with the value those checkpoints were
# trained with (the new defaults differ): a config without them gets these.
_LEGACY_SETTINGS = {
    "shape": {"symmetric": False},
    "viewpoint": {"azimuth_hypotheses": 1},
    "refine": {"architecture": "edge"},
    "losses": {"view_cycle_camera": 0.0, "view_cycle_shape": 0.0},
}

# Options retired because their pilots showed no gain (docs/stage2.md), each at the value that
# switched it off; configs written before keep them at that value. RETIRED_AT is the last commit
# that had them.
RETIRED_SETTINGS = {"template": "sphere", "shape.instance_warmup": 0.0, "losses.deformation": 0.0}
RETIRED_AT = "b07dd80"


def _without_retired_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of stage-2 settings ``values`` without the ``RETIRED_SETTINGS`` entries at their inert
    values; one at another value raises InputError naming it and ``RETIRED_AT``."""
    values = dict(values)
    for path, inert in RETIRED_SETTINGS.items():
        *parent, name = path.split(".")
        holder = values.get(parent[0]) if parent else values
        if not isinstance(holder, Mapping) or name not in holder:
            continue
        if holder[name] != inert:
            raise InputError(
                f"stage-2 setting {path}={holder[name]!r} was retired (no gain in its pilots, docs/stage2.md); "
                f"commit {RETIRED_AT} is the last that builds this model"
            )
        kept = {key: value for key, value in holder.items() if key != name}
        if parent:
            values[parent[0]] = kept
        else:
            values = kept
    return values


@dataclass
class ASMSettings:
    """Everything that defines a stage-2 network (and its losses).

    image_size: S, the side of the input crops and of every mask.
    template_level: ico-sphere subdivision level of the mesh template (3 -> 642 vertices).
    template_radius: radius of the template sphere.
    encoder, shape, viewpoint, refine, mask_decoder, unet, shapedict: settings of the parts
        (``mask_decoder``: the ``2d`` kinds'; ``unet``: ``2d-unet``'s; ``shapedict``: the
        ``shapedict`` kinds').
    renderer: soft silhouette renderer settings; ``None`` means the defaults at ``image_size``.
    losses: the weight of every loss term (paper 3.6).
    cross_view_weight: weight of the cross-view consistency term (paper 3.7); 0 switches it off.
    input_framing: how the network's inputs are framed, part of its input contract: the square
        around the instance's amodal box, this many times the box's longer side
        (:mod:`a3d_core.data.framing`; the two-stage network's ``crop_scale``). ``None``: as the
        pretraining data came (Kato's renders: a fixed camera distance).
    occluder_input: every part reading the instance input (encoder, viewpoint estimator, U-Net
        decoder, refine) also reads the occluder mask, batch entry ``"occluder"`` ``(B, 1, S, S)``
        (module docstring; not in the paper). ``False``: the paper's four-channel input.
    """

    image_size: int = 64
    template_level: int = 3
    template_radius: float = 0.5
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    shape: ShapeDecoderSettings = field(default_factory=ShapeDecoderSettings)
    viewpoint: ViewpointSettings = field(default_factory=ViewpointSettings)
    renderer: SilhouetteRendererSettings | None = None
    refine: RefineSettings = field(default_factory=RefineSettings)
    mask_decoder: MaskDecoder2DSettings = field(default_factory=MaskDecoder2DSettings)
    unet: UNet2DSettings = field(default_factory=UNet2DSettings)
    shapedict: ShapeDictSettings = field(default_factory=ShapeDictSettings)
    losses: LossSettings = field(default_factory=LossSettings)
    cross_view_weight: float = 0.0
    input_framing: float | None = None
    occluder_input: bool = False

    def __post_init__(self) -> None:
        for name, settings_class in _NESTED_SETTINGS.items():
            value = getattr(self, name)
            if isinstance(value, Mapping):
                setattr(self, name, settings_class(**value))
        if self.image_size < 8:
            raise ValueError(f"image_size must be at least 8, got {self.image_size}")
        if not 0 <= self.template_level <= 6:
            raise ValueError(f"template_level must be in 0..6, got {self.template_level}")
        if not self.template_radius > 0:
            raise ValueError(f"template_radius must be positive, got {self.template_radius}")
        if not 0.0 <= self.cross_view_weight < float("inf"):
            raise ValueError(f"cross_view_weight must be finite and non-negative, got {self.cross_view_weight}")
        if self.input_framing is not None and not 1.0 <= self.input_framing <= 4.0:
            raise ValueError(f"input_framing must be in [1, 4] or None, got {self.input_framing}")
        if self.renderer is None:
            self.renderer = SilhouetteRendererSettings(image_size=self.image_size)
        elif self.renderer.image_size != self.image_size:
            raise ValueError(
                f"renderer.image_size {self.renderer.image_size} differs from image_size {self.image_size}"
            )

    @property
    def input_channels(self) -> int:
        """Channels of the instance input: RGB and the visible mask, and the occluder mask with ``occluder_input``."""
        return 5 if self.occluder_input else 4

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (tuples become lists); :meth:`from_dict` inverts it."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ASMSettings":
        """Settings from :meth:`to_dict`, also as written by earlier code: settings added since get
        the values those configs trained with, retired ones are dropped at their inert values.

        Raises:
            InputError: a retired option at another value (a model this code cannot build).
            ValueError: an unknown or invalid setting.
        """
        values = _without_retired_settings(values)
        known = {item.name for item in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown stage-2 settings {sorted(unknown)}")
        for name, legacy in _LEGACY_SETTINGS.items():
            if isinstance(values.get(name), Mapping):
                values[name] = {**legacy, **values[name]}
        return cls(**values)


class MeshMaskBranch(nn.Module):
    """A3D's coarse-mask branch: shape decoder + viewpoint estimator + soft silhouette renderer.

    forward(features ``(B, D)``, inputs ``(B, C, S, S)`` (RGB, visible mask, with ``occluder_input``
    the occluder mask), categories ``(B,)``)
    -> :class:`~a3d_core.model.mask_branch.MaskBranchOutput` with the coarse mask ``(B, S, S)``,
    the vertices ``(B, V, 3)`` and the viewpoint (Viewpoint of B). With K > 1 azimuth hypotheses
    (``ViewpointSettings.azimuth_hypotheses``) the shape is rendered at all K, the hypothesis
    masks ``(B, K, S, S)`` and the hypotheses (Viewpoint of B * K, instance-major) are returned
    too, and the coarse mask and viewpoint are those of the hypothesis whose silhouette agrees
    best (soft IoU) with the visible mask: the visible part is seen, so a shape turned the right
    way must cover it. With ``hypothesis_selection="scores"`` the estimator's scores ``(B, K)``
    (the hypothesis scores) choose instead, and evaluation renders the chosen hypothesis only.
    How often each selection picks the hypothesis closest to the amodal mask: docs/stage2.md.
    With ``true_angles`` (the oracle camera, one hypothesis) the mesh is rendered at those angles
    and the predicted distance.
    """

    def __init__(
        self, shape_decoder: ShapeDecoder, viewpoint_estimator: ViewpointEstimator, renderer: SoftSilhouetteRenderer
    ) -> None:
        super().__init__()
        self.shape_decoder = shape_decoder
        self.viewpoint_estimator = viewpoint_estimator
        self.renderer = renderer
        self.regularizer = MeshRegularizer(shape_decoder.faces, shape_decoder.num_vertices)

    @property
    def faces(self) -> torch.Tensor:
        return self.shape_decoder.faces

    def render(self, vertices: torch.Tensor, viewpoint: Viewpoint) -> torch.Tensor:
        """Soft silhouettes ``(B, S, S)`` of meshes ``(B, V, 3)`` (rendered in float32, also under AMP)."""
        viewpoint = Viewpoint(viewpoint.elevation.float(), viewpoint.azimuth.float(), viewpoint.distance.float())
        return self.renderer(vertices.float(), self.faces, viewpoint)

    def forward(
        self,
        features: torch.Tensor,
        inputs: torch.Tensor,
        categories: torch.Tensor,
        true_angles: CameraAngles | None = None,
    ) -> MaskBranchOutput:
        vertices = self.shape_decoder(features, categories)
        hypotheses, scores = self.viewpoint_estimator.hypotheses(inputs)
        count = self.viewpoint_estimator.num_hypotheses
        if true_angles is not None:
            if count != 1:
                raise ValueError(f"the true camera is one camera, but the estimator makes {count} hypotheses")
            hypotheses = true_angles.at_distance(hypotheses.distance)
        if count == 1:
            return MaskBranchOutput(self.render(vertices, hypotheses), vertices, hypotheses)
        if scores is not None and not self.training:  # the best-scored hypothesis alone: one camera's cost
            viewpoint = pick_hypotheses(hypotheses, scores.argmax(dim=1))
            return MaskBranchOutput(self.render(vertices, viewpoint), vertices, viewpoint, hypothesis_scores=scores)
        masks = self.render(vertices.repeat_interleave(count, dim=0), hypotheses)
        if scores is not None:
            chosen = scores.detach().argmax(dim=1)
        else:
            visible = inputs[:, 3].float().repeat_interleave(count, dim=0)
            chosen = soft_iou(masks, visible).view(-1, count).argmax(dim=1)
        masks = masks.view(len(vertices), count, *masks.shape[1:])
        return MaskBranchOutput(
            coarse_mask=masks[torch.arange(len(vertices), device=chosen.device), chosen],
            vertices=vertices,
            viewpoint=pick_hypotheses(hypotheses, chosen),
            hypothesis_masks=masks,
            hypotheses=hypotheses,
            hypothesis_scores=scores,
        )


class AmodalShapeModel(nn.Module):
    """3D-ASM (or the 2D baseline), composed of the parts passed in; see the module docstring.

    Args:
        kind: one of ``KINDS`` (kept for :meth:`config`).
        category_names: categories in class-index order.
        settings: the settings the parts were built from (kept for :meth:`config` and the losses).
        encoder: the shared image encoder.
        classifier: the classification branch.
        mask_branch: :class:`MeshMaskBranch` or a 2D decoder, ``(features, inputs, categories) ->
            MaskBranchOutput`` (:mod:`a3d_core.model.mask_branch`).
        refine: the edge refine (the paper's or the U-Net one), or ``None`` to use the coarse mask as the final mask.
    """

    def __init__(
        self,
        kind: str,
        category_names: list[str],
        settings: ASMSettings,
        encoder: Encoder,
        classifier: ClassificationBranch,
        mask_branch: nn.Module,
        refine: EdgeRefine | UNetRefine | None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.category_names = list(category_names)
        self.settings = settings
        self.encoder = encoder
        self.classifier = classifier
        self.mask_branch = mask_branch
        self.refine = refine

    @property
    def is_3d(self) -> bool:
        return isinstance(self.mask_branch, MeshMaskBranch)

    def active_parameter_count(self) -> int:
        """Parameters one instance's forward pass uses: all but the other categories' shape decoders."""
        total = sum(p.numel() for p in self.parameters())
        if not self.is_3d:
            return total
        decoders = list(self.mask_branch.shape_decoder.decoders.values())
        return total - sum(p.numel() for decoder in decoders[1:] for p in decoder.parameters())

    @property
    def needs_fitting(self) -> bool:
        """Whether the coarse-mask branch is built from training masks (ShapeDict) before training."""
        return isinstance(self.mask_branch, ShapeDictBranch)

    def adopt_data_sizes(self, state: Mapping[str, torch.Tensor]) -> None:
        """Take the sizes of data-sized buffers (a ShapeDict's atoms) from a state dict before loading it."""
        if self.needs_fitting:
            self.mask_branch.adopt_sizes(state, "mask_branch.")

    def fit_to_masks(self, amodal: torch.Tensor, categories: torch.Tensor, seed: int = 0) -> None:
        """Build a ShapeDict branch's dictionary from training amodal masks ``(N, S, S)`` and
        categories ``(N,)`` (indices into ``category_names``); other branches have nothing to fit."""
        if self.needs_fitting:
            self.mask_branch.fit(amodal, categories, seed)

    def config(self) -> dict[str, Any]:
        """JSON-able description; :func:`build_stage2_from_config` rebuilds the same architecture."""
        return {"kind": self.kind, "category_names": list(self.category_names), "settings": self.settings.to_dict()}

    # ------------------------------------------------------------------ per-category parameters
    def category_state(self, name: str) -> dict[str, dict[str, torch.Tensor]]:
        """Copies of everything specific to category ``name``: its classifier row and, for 3D
        kinds, its shape decoder. Load it into another model (of the same architecture, any
        category list containing ``name``) with :meth:`load_category_state` (paper 3.7)."""
        state = {"classifier": self.classifier.category_state(name)}
        if self.is_3d:
            state["shape"] = self.mask_branch.shape_decoder.category_state(name)
        return state

    def load_category_state(self, name: str, state: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        self.classifier.load_category_state(name, dict(state["classifier"]))
        if self.is_3d:
            self.mask_branch.shape_decoder.load_category_state(name, dict(state["shape"]))

    # --------------------------------------------------------------------------------- forward
    def forward(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        if self.training:
            rgb, visible, amodal = _image_inputs(batch, self.settings.image_size, ("rgb", "visible", "amodal"))
            return self._losses(batch, rgb, visible, amodal, self._occluder(batch, OCCLUDER_KEY))
        rgb, visible = _image_inputs(batch, self.settings.image_size, ("rgb", "visible"))
        return self._predict(batch, rgb, visible, self._occluder(batch, OCCLUDER_KEY))

    def _occluder(self, batch: Mapping[str, Any], key: str) -> torch.Tensor | None:
        """The occluder masks ``(B, 1, S, S)`` under ``key`` when the network reads them, else ``None``."""
        if not self.settings.occluder_input:
            return None
        if key not in batch:
            raise InputError(
                f"occluder_input is on: the batch needs {key!r} (B, 1, S, S), the mask of what may hide each instance"
            )
        return _image_inputs(batch, self.settings.image_size, (key,))[0]

    def _predict(
        self, batch: Mapping[str, Any], rgb: torch.Tensor, visible: torch.Tensor, occluder: torch.Tensor | None
    ) -> dict[str, Any]:
        inputs = _network_inputs(rgb, visible, occluder)
        features = self.encoder(inputs)
        class_logits = self.classifier(features)
        category = class_logits.argmax(dim=1)
        forced = batch.get("shape_category")
        if forced is not None:
            forced = _categories(forced, rgb.shape[0], len(self.category_names), "shape_category", lowest=-1)
            category = torch.where(forced >= 0, forced, category)
        camera = self.settings.viewpoint.camera
        angles = _camera_angles(batch, CAMERA_KEYS, rgb.shape[0], camera) if self._renders_at_true_camera else None
        branch = self._run_mask_branch(features, inputs, category, angles)
        coarse = branch.coarse_mask
        final = coarse if self.refine is None else torch.sigmoid(self.refine(coarse, rgb, visible, occluder))
        outputs = {"amodal_mask": final, "coarse_mask": coarse, "class_logits": class_logits, "category": category}
        if self.is_3d:
            outputs.update(vertices=branch.vertices, faces=self.mask_branch.faces, viewpoint=branch.viewpoint)
        return outputs

    @property
    def _renders_at_true_camera(self) -> bool:
        """Whether the mesh is rendered at the true camera (the ``"oracle"`` camera source)."""
        return self.is_3d and self.settings.viewpoint.camera == "oracle"

    def _run_mask_branch(
        self, features: torch.Tensor, inputs: torch.Tensor, category: torch.Tensor, angles: CameraAngles | None
    ) -> MaskBranchOutput:
        """The coarse-mask branch on ``features`` ``(B, D)``, ``inputs`` ``(B, C, S, S)`` and ``category``
        ``(B,)``; the oracle camera source's 3D branch also gets the true camera ``angles`` (B)."""
        if self._renders_at_true_camera:
            return self.mask_branch(features, inputs, category, angles)
        return self.mask_branch(features, inputs, category)

    # ---------------------------------------------------------------------------------- losses
    def _losses(
        self,
        batch: Mapping[str, Any],
        rgb: torch.Tensor,
        visible: torch.Tensor,
        amodal: torch.Tensor,
        occluder: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """Every active loss term, weighted (paper 3.6, cross-view 3.7), one concern per method below."""
        angles = self._training_cameras(batch, rgb.shape[0])
        rgb, visible, amodal, occluder, category = self._training_views(batch, rgb, visible, amodal, occluder)
        inputs = _network_inputs(rgb, visible, occluder)
        features = self.encoder(inputs)
        branch = self._run_mask_branch(features, inputs, category, angles)
        amodal_2d = amodal.squeeze(1)
        fit = None if branch.hypothesis_masks is None else closest_hypotheses(branch.hypothesis_masks, amodal_2d)
        losses = self._coarse_mask_terms(branch, amodal_2d, fit)
        losses.update(self._refine_terms(branch.coarse_mask, rgb, visible, occluder, amodal_2d))
        losses.update(self._classification_terms(features, category))
        if self.is_3d:
            # The camera the mesh is trained at: with hypotheses, the one closest to the amodal mask.
            viewpoint = branch.viewpoint if fit is None else pick_hypotheses(branch.hypotheses, fit.closest)
            losses.update(self._mesh_regularizer_terms(branch.vertices))
            losses.update(self._cross_view_terms(branch.vertices, viewpoint, amodal_2d))
            losses.update(self._view_cycle_terms(branch.vertices, viewpoint, rgb, visible, occluder, category))
            losses.update(self._camera_supervision_terms(branch, angles))
        return losses

    def _training_cameras(self, batch: Mapping[str, Any], batch_size: int) -> CameraAngles | None:
        """The true cameras of the training views when the camera source reads them (``"oracle"``,
        or ``"supervised"`` with a non-zero weight), else ``None``: angles of ``B`` views, or ``2B``
        ``[A; B]`` with cross-view consistency (the ``*_pair`` entries appended)."""
        camera = self.settings.viewpoint.camera
        supervised = camera == "supervised" and self.settings.losses.camera_supervision
        if not (self._renders_at_true_camera or (self.is_3d and supervised)):
            return None
        angles = _camera_angles(batch, CAMERA_KEYS, batch_size, camera)
        if not self.settings.cross_view_weight > 0:
            return angles
        pair = _camera_angles(batch, tuple(f"{key}_pair" for key in CAMERA_KEYS), batch_size, camera)
        return CameraAngles(*(torch.cat([view, other]) for view, other in zip(angles, pair)))

    def _training_views(
        self,
        batch: Mapping[str, Any],
        rgb: torch.Tensor,
        visible: torch.Tensor,
        amodal: torch.Tensor,
        occluder: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The views a training step learns from: ``rgb`` ``(B, 3, S, S)``, ``visible``, ``amodal``
        and ``occluder`` (``None`` without ``occluder_input``) ``(B, 1, S, S)`` and the categories
        ``(B,)``; with cross-view consistency (3.7) the pair views are appended, so each tensor
        holds ``2B`` views ``[A; B]``."""
        if "category" not in batch:
            raise InputError("a training batch needs 'category' (B,) int64")
        category = _categories(batch["category"], rgb.shape[0], len(self.category_names), "category")
        if not self.settings.cross_view_weight > 0:
            return rgb, visible, amodal, occluder, category
        missing = [key for key in PAIR_KEYS if key not in batch]
        if missing:
            raise InputError(
                f"cross_view_weight > 0 needs the pair entries {', '.join(missing)} in every training batch"
            )
        rgb_pair, visible_pair, amodal_pair = _image_inputs(
            batch, self.settings.image_size, ("rgb_pair", "visible_pair", "amodal_pair")
        )
        if rgb_pair.shape[0] != rgb.shape[0]:
            raise InputError(f"{rgb_pair.shape[0]} pair views for {rgb.shape[0]} views")
        category_pair = _categories(batch["category_pair"], rgb.shape[0], len(self.category_names), "category_pair")
        occluder_pair = self._occluder(batch, f"{OCCLUDER_KEY}_pair")
        return (
            torch.cat([rgb, rgb_pair]),
            torch.cat([visible, visible_pair]),
            torch.cat([amodal, amodal_pair]),
            None if occluder is None else torch.cat([occluder, occluder_pair]),
            torch.cat([category, category_pair]),
        )

    def _coarse_mask_terms(
        self, branch: MaskBranchOutput, amodal: torch.Tensor, fit: HypothesisFit | None
    ) -> dict[str, torch.Tensor]:
        """``reconstruction`` (L_R, eq. 1) of the coarse mask against ``amodal`` ``(B, S, S)``; with
        azimuth hypotheses (``fit``), L_R of the hypothesis closest to the amodal mask (a camera
        multiplex) and ``hypothesis_score``, the cross-entropy of scored hypotheses towards it."""
        weights, terms = self.settings.losses, {}
        if fit is None:
            if weights.reconstruction:
                terms["reconstruction"] = weights.reconstruction * reconstruction_loss(branch.coarse_mask, amodal)
            return terms
        if weights.reconstruction:
            terms["reconstruction"] = weights.reconstruction * fit.errors.gather(1, fit.closest[:, None]).mean()
        if branch.hypothesis_scores is not None and weights.hypothesis_score:
            terms["hypothesis_score"] = weights.hypothesis_score * classification_loss(
                branch.hypothesis_scores, fit.closest
            )
        return terms

    def _refine_terms(
        self,
        coarse: torch.Tensor,
        rgb: torch.Tensor,
        visible: torch.Tensor,
        occluder: torch.Tensor | None,
        amodal: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """``edge_refine`` (L_E, eq. 2) of the refined ``coarse`` mask ``(B, S, S)`` (read with ``rgb``
        ``(B, 3, S, S)``, ``visible`` and ``occluder`` ``(B, 1, S, S)`` or ``None``) against ``amodal``
        ``(B, S, S)``."""
        weights = self.settings.losses
        if self.refine is None or not weights.edge_refine:
            return {}
        refined = self.refine(coarse, rgb, visible, occluder)
        loss = edge_refine_loss(refined, amodal, visible.squeeze(1), weights.edge_outside_visible)
        return {"edge_refine": weights.edge_refine * loss}

    def _classification_terms(self, features: torch.Tensor, category: torch.Tensor) -> dict[str, torch.Tensor]:
        """``classification``: cross-entropy of the classification branch on ``features`` ``(B, D)`` (3.3)."""
        weight = self.settings.losses.classification
        if not weight:
            return {}
        return {"classification": weight * classification_loss(self.classifier(features), category)}

    def _mesh_regularizer_terms(self, vertices: torch.Tensor) -> dict[str, torch.Tensor]:
        """SoftRas' ``laplacian`` and ``flatten`` regularisers of the meshes ``(B, V, 3)`` (3.6)."""
        weights, regularizer, terms = self.settings.losses, self.mask_branch.regularizer, {}
        if weights.laplacian:
            terms["laplacian"] = weights.laplacian * regularizer.laplacian(vertices)
        if weights.flatten:
            terms["flatten"] = weights.flatten * regularizer.flatten(vertices)
        return terms

    def _cross_view_terms(
        self, vertices: torch.Tensor, viewpoint: Viewpoint, amodal: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``cross_view`` (3.7): the meshes ``(2B, V, 3)`` of views ``[A; B]``, each rendered at the
        other view's camera (``viewpoint``, 2B), against that view's amodal mask ``(2B, S, S)``."""
        weight = self.settings.cross_view_weight
        if not weight > 0:
            return {}
        swapped = vertices.roll(len(vertices) // 2, dims=0)  # [A; B] -> [B; A]: each shape at the other view
        crossed = self.mask_branch.render(swapped, viewpoint)
        return {"cross_view": weight * reconstruction_loss(crossed, amodal)}

    def _view_cycle_terms(
        self,
        vertices: torch.Tensor,
        viewpoint: Viewpoint,
        rgb: torch.Tensor,
        visible: torch.Tensor,
        occluder: torch.Tensor | None,
        category: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """The view cycle's ``view_cycle_camera`` and ``view_cycle_shape`` (:mod:`a3d_core.model.view_cycle`):
        meshes ``(B, V, 3)`` rendered at random cameras, re-encoded; ``viewpoint`` (B) gives the
        cameras' distance, ``rgb`` ``(B, 3, S, S)`` and ``visible`` ``(B, 1, S, S)`` the colours,
        ``category`` ``(B,)`` the shape decoder that rebuilds each mesh. With ``occluder``
        ``(B, 1, S, S)`` (occluder input) a rendered view gets an empty occluder: nothing hides it."""
        branch, weights = self.mask_branch, self.settings.losses
        if not (weights.view_cycle_camera or weights.view_cycle_shape):
            return {}
        meshes = vertices.detach()
        cameras = random_viewpoints(viewpoint, branch.viewpoint_estimator.settings.elevation_range_deg)
        with torch.no_grad():
            inputs = cycle_inputs(branch.render(meshes, cameras), rgb, visible)
            if occluder is not None:
                inputs = torch.cat([inputs, torch.zeros_like(occluder)], dim=1)
        terms = {}
        with running_statistics_frozen(self):
            if weights.view_cycle_camera:
                hypotheses, scores = branch.viewpoint_estimator.hypotheses(inputs)
                terms["view_cycle_camera"] = weights.view_cycle_camera * camera_cycle_loss(hypotheses, scores, cameras)
            if weights.view_cycle_shape:
                rebuilt = branch.shape_decoder(self.encoder(inputs), category)
                terms["view_cycle_shape"] = weights.view_cycle_shape * shape_cycle_loss(rebuilt, meshes)
        return terms

    def _camera_supervision_terms(
        self, branch: MaskBranchOutput, angles: CameraAngles | None
    ) -> dict[str, torch.Tensor]:
        """``camera_supervision`` (the ``"supervised"`` camera source): how far the estimator's
        camera (``branch``'s, of its nearest hypothesis with K > 1, as the view cycle's camera term)
        is from the true ``angles`` of the views: ``1 - cos`` of the azimuth error plus the
        elevation error in radians (:func:`~a3d_core.model.view_cycle.camera_cycle_loss`)."""
        weight = self.settings.losses.camera_supervision
        if self.settings.viewpoint.camera != "supervised" or not weight:
            return {}
        predicted = branch.viewpoint if branch.hypotheses is None else branch.hypotheses
        target = angles.at_distance(branch.viewpoint.distance.detach())
        return {"camera_supervision": weight * camera_cycle_loss(predicted, branch.hypothesis_scores, target)}


class HypothesisFit(NamedTuple):
    """How the silhouettes at K azimuth hypotheses fit the amodal masks (the camera multiplex, training).

    errors: ``(B, K)`` ``1 - softIoU`` of each hypothesis's silhouette with its amodal mask.
    closest: ``(B,)`` long, the hypothesis of the lowest error (no gradient through the choice).
    """

    errors: torch.Tensor
    closest: torch.Tensor


def closest_hypotheses(masks: torch.Tensor, amodal: torch.Tensor) -> HypothesisFit:
    """The fit of hypothesis silhouettes ``(B, K, S, S)`` to amodal masks ``(B, S, S)``."""
    count = masks.shape[1]
    errors = 1.0 - soft_iou(masks.flatten(0, 1), amodal.repeat_interleave(count, dim=0)).view(-1, count)
    return HypothesisFit(errors, errors.detach().argmin(dim=1))


def _network_inputs(rgb: torch.Tensor, visible: torch.Tensor, occluder: torch.Tensor | None) -> torch.Tensor:
    """The instance input ``(B, 4, S, S)`` ``[rgb, visible]`` of ``rgb`` ``(B, 3, S, S)`` and ``visible``
    ``(B, 1, S, S)``, or ``(B, 5, S, S)`` ``[rgb, visible, occluder]`` with ``occluder`` ``(B, 1, S, S)``."""
    return torch.cat([rgb, visible] if occluder is None else [rgb, visible, occluder], dim=1)


def _image_inputs(batch: Mapping[str, Any], size: int, keys: tuple[str, ...]) -> list[torch.Tensor]:
    """The image entries ``keys`` of a batch, checked: ``(B, C, S, S)`` floats, finite."""
    channels = {"rgb": 3, "rgb_pair": 3}
    tensors = []
    for key in keys:
        if key not in batch:
            raise InputError(f"the batch has no {key!r} entry")
        value = batch[key]
        expected = channels.get(key, 1)
        if not isinstance(value, torch.Tensor) or value.ndim != 4 or tuple(value.shape[1:]) != (expected, size, size):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise InputError(f"batch[{key!r}] must be (B, {expected}, {size}, {size}), got {shape}")
        value = value.float()
        if not bool(torch.isfinite(value).all()):
            raise InputError(f"batch[{key!r}] contains NaN or infinite values")
        tensors.append(value)
    if tensors and any(t.shape[0] != tensors[0].shape[0] for t in tensors):
        raise InputError(f"batch entries {keys} disagree on the batch size")
    return tensors


def _camera_angles(batch: Mapping[str, Any], keys: tuple[str, str], batch_size: int, camera: str) -> CameraAngles:
    """The true camera of a batch from its entries ``keys`` (elevation, azimuth), ``(B,)`` degrees
    each, which the camera source ``camera`` reads."""
    missing = [key for key in keys if key not in batch]
    if missing:
        raise InputError(
            f"camera {camera!r} reads the true camera of each view: the batch has no "
            f"{' or '.join(map(repr, missing))} entry ((B,) degrees)"
        )
    values = []
    for key in keys:
        value = batch[key]
        if not isinstance(value, torch.Tensor) or value.shape != (batch_size,) or value.dtype == torch.bool:
            raise InputError(f"batch[{key!r}] must be ({batch_size},) degrees, got {getattr(value, 'shape', value)}")
        if not bool(torch.isfinite(value.float()).all()):
            raise InputError(f"batch[{key!r}] contains NaN or infinite values")
        values.append(value)
    return CameraAngles.from_degrees(*values)


def _categories(value: Any, batch_size: int, num_categories: int, key: str, lowest: int = 0) -> torch.Tensor:
    """``value`` checked as ``(batch_size,)`` integer class indices in ``[lowest, num_categories)``."""
    if not isinstance(value, torch.Tensor) or value.shape != (batch_size,) or value.dtype.is_floating_point:
        raise InputError(
            f"batch[{key!r}] must be a ({batch_size},) integer tensor, got {getattr(value, 'shape', value)}"
        )
    if batch_size and (int(value.min()) < lowest or int(value.max()) >= num_categories):
        raise InputError(f"batch[{key!r}] has class indices outside [{lowest}, {num_categories}): {value.tolist()}")
    return value.long()


def transfer_pretrained(
    target: AmodalShapeModel, source: AmodalShapeModel, pairs: Mapping[str, str] | None = None
) -> list[str]:
    """Initialise ``target`` from a pretrained ``source`` the paper's way (3.7); returns the transferred categories.

    Everything not specific to a category (encoders, viewpoint estimator, edge refine, ...) is
    copied where names and shapes agree; the classifier row and shape decoder of each ``target``
    category in ``pairs`` (target name -> source name; default: the NAMES both models share)
    are copied from its source category; the other categories of ``target`` keep their fresh
    initialisation.
    """
    if target.kind != source.kind:
        raise InputError(f"cannot initialise a {target.kind!r} model from a {source.kind!r} one")
    category_prefixes = ("classifier.", "mask_branch.shape_decoder.decoders.")
    source_state = source.state_dict()
    shared = {
        key: value
        for key, value in target.state_dict().items()
        if not key.startswith(category_prefixes) and key in source_state and source_state[key].shape == value.shape
    }
    target.load_state_dict({**target.state_dict(), **{key: source_state[key] for key in shared}})
    if pairs is None:
        pairs = {name: name for name in target.category_names if name in source.category_names}
    overlap = [name for name in target.category_names if name in pairs]
    for name in overlap:
        target.load_category_state(name, source.category_state(pairs[name]))
    return overlap


# ------------------------------------------------------------------------------------ factories
def settings_for_kind(kind: str, settings: ASMSettings) -> ASMSettings:
    """``settings`` as a network of ``kind`` uses them: unset view-cycle weights on where a mesh
    branch exists (the ``a3d`` kinds), off for the 2D kinds (:meth:`LossSettings.for_branch`)."""
    return replace(settings, losses=settings.losses.for_branch(has_mesh=kind in MESH_KINDS))


def build_stage2(kind: str, category_names: list[str], settings: ASMSettings | None = None) -> AmodalShapeModel:
    """Build a stage-2 network of ``kind`` (see ``KINDS``) for ``category_names``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    category_names = [str(name) for name in category_names]
    if not category_names or len(set(category_names)) != len(category_names):
        raise ValueError(f"category_names must be a non-empty list of unique names, got {category_names}")
    settings = settings_for_kind(kind, settings or ASMSettings())
    size = settings.image_size
    channels = settings.input_channels
    encoder = Encoder(size, in_channels=channels, settings=settings.encoder)
    classifier = ClassificationBranch(encoder.feature_dim, category_names)
    if kind in MESH_KINDS:
        hypotheses = settings.viewpoint.azimuth_hypotheses
        if settings.viewpoint.camera == "oracle" and hypotheses != 1:
            raise ValueError(f"the oracle camera is the true one: it takes azimuth_hypotheses=1, got {hypotheses}")
        template_vertices, faces = ico_sphere_template(settings.template_level, settings.template_radius)
        mask_branch: nn.Module = MeshMaskBranch(
            ShapeDecoder(category_names, template_vertices, faces, encoder.feature_dim, settings.shape),
            ViewpointEstimator(size, in_channels=channels, settings=settings.viewpoint),
            SoftSilhouetteRenderer(settings.renderer),
        )
    else:
        if settings.cross_view_weight > 0:
            raise ValueError("cross-view consistency needs the 3D branch; the 2D baselines take cross_view_weight=0")
        if settings.losses.view_cycle_camera or settings.losses.view_cycle_shape:
            raise ValueError("the view cycle needs the 3D branch; the 2D baselines take view-cycle weights 0 or unset")
        if settings.viewpoint.camera != "learned":
            raise ValueError(
                f"camera {settings.viewpoint.camera!r} is a camera of the 3D branch; the 2D baselines take camera "
                "'learned'"
            )
        if kind == "2d-unet":
            mask_branch = UNetMaskDecoder(encoder.feature_dim, size, in_channels=channels, settings=settings.unet)
        elif kind.startswith("shapedict"):
            mask_branch = ShapeDictBranch(len(category_names), size, settings.shapedict)
        else:
            mask_branch = MaskDecoder2D(encoder.feature_dim, size, settings.mask_decoder)
    refine = None if kind.endswith("no-refine") else build_refine(settings.refine, settings.occluder_input)
    return AmodalShapeModel(kind, category_names, settings, encoder, classifier, mask_branch, refine)


def build_stage2_from_config(config: Mapping[str, Any]) -> AmodalShapeModel:
    """Rebuild a network from :meth:`AmodalShapeModel.config`; a malformed config raises InputError."""
    try:
        kind, names, settings = config["kind"], config["category_names"], config["settings"]
        return build_stage2(kind, list(names), ASMSettings.from_dict(settings))
    except InputError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"not a stage-2 model config ({error})") from None


def load_stage2_from_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> AmodalShapeModel:
    """Rebuild the network saved in a checkpoint and load its weights.

    The checkpoint is a dict with ``"model"`` (state dict), ``"model_config"`` (``model.config()``)
    and ``"category_names"`` (list of str), read with ``torch.load(weights_only=True)``. A missing
    or corrupt file, another kind of checkpoint, or weights of another architecture (missing,
    unexpected or differently shaped entries) raise :class:`InputError` naming the file.
    """
    path = Path(path)
    checkpoint = read_checkpoint(path, CHECKPOINT_KEYS, "a stage-2 checkpoint", map_location)
    try:
        model = build_stage2_from_config(checkpoint["model_config"])
    except InputError as error:
        raise InputError(f"{path}: {error}") from None
    load_checked_weights(model, checkpoint, path)
    return model
