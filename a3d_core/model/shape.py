"""Category-specific 3D modelling: encoder features -> a deformed ico-sphere (paper 3.3).

Each category has its own decoder, two fc-relu blocks followed by a linear layer that predicts
the vertex offsets ``dV``; the mesh is ``V = V0 + dV`` over a shared ico-sphere template ``V0``
with fixed faces. The decoders live in an ``nn.ModuleDict`` keyed by category NAME (escaped to a
legal key by :func:`category_key`), so their parameters are addressable by name: a fine-tune on
another dataset reuses the pretrained decoders of overlapping categories and starts the others
fresh (paper 3.7), via :meth:`ShapeDecoder.category_state` / :meth:`ShapeDecoder.load_category_state`.

Bilateral symmetry (``ShapeDecoderSettings.symmetric``, on by default; not in the A3D paper): as in
CMR (Kanazawa et al., ECCV 2018), the mesh is mirror-symmetric about the plane ``x = 0`` of its
own frame. The offsets are averaged with their mirror images
(``dV_i <- (dV_i + P dV_m(i)) / 2``, ``P = diag(-1, 1, 1)``, ``m(i)`` the vertex mirroring ``i``
on the ico-sphere), so every shape is exactly symmetric and the viewpoint estimator learns to
turn the object's plane of symmetry onto it. Most man-made objects are symmetric, and the
constraint halves what one view must explain: the hidden side of an object mirrors its seen side.

Which decoder runs for an instance is the caller's choice: 3D-ASM (``model.asm``) uses the
ground-truth class in training and the predicted class in evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ShapeDecoderSettings:
    """hidden_dim: width of the two fc-relu blocks.
    offset_init_std: std of the initial weights of the offset layer (its bias starts at 0), so the
        untrained decoder outputs a slightly perturbed sphere rather than a random blob.
    symmetric: mirror-symmetric meshes about ``x = 0`` (see the module docstring).
    """

    hidden_dim: int = 512
    offset_init_std: float = 1e-4
    symmetric: bool = True

    def __post_init__(self) -> None:
        if self.hidden_dim < 1:
            raise ValueError(f"hidden_dim must be positive, got {self.hidden_dim}")
        if self.offset_init_std < 0:
            raise ValueError(f"offset_init_std must be non-negative, got {self.offset_init_std}")


def category_key(name: str) -> str:
    """A legal, reversible ``nn.ModuleDict`` key for a category name.

    Letters and digits are kept; every other character (``.`` is not allowed in module names,
    ``_`` is the escape) becomes ``_`` + its 4-digit hex code: ``"traffic light" -> "traffic_0020light"``.
    """
    if not name:
        raise ValueError("category names must be non-empty")
    return "".join(ch if ch.isascii() and ch.isalnum() else f"_{ord(ch):04x}" for ch in name)


MIRROR = (-1.0, 1.0, 1.0)
"""``diag(P)``: the reflection about the plane ``x = 0``."""


def mirror_vertex_index(vertices: torch.Tensor, tolerance: float = 1e-3) -> torch.Tensor:
    """``(V,)`` long: for each vertex of ``vertices`` ``(V, 3)``, the vertex at its mirror image.

    Raises ``ValueError`` when the vertex set is not symmetric about ``x = 0`` within
    ``tolerance`` (the ico-sphere is, to float rounding).
    """
    mirrored = vertices * vertices.new_tensor(MIRROR)
    distance, index = torch.cdist(mirrored, vertices).min(dim=1)
    if float(distance.max()) > tolerance:
        raise ValueError(
            f"the template is not symmetric about x = 0 (a vertex's mirror is {float(distance.max()):.3g} from any "
            "vertex)"
        )
    return index


class CategoryShapeDecoder(nn.Module):
    """One category's decoder: features ``(N, D)`` -> vertex offsets ``(N, V, 3)``."""

    def __init__(self, feature_dim: int, num_vertices: int, settings: ShapeDecoderSettings) -> None:
        super().__init__()
        self.num_vertices = num_vertices
        self.blocks = nn.Sequential(
            nn.Linear(feature_dim, settings.hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(settings.hidden_dim, settings.hidden_dim),
            nn.ReLU(inplace=True),
        )
        self.offsets = nn.Linear(settings.hidden_dim, num_vertices * 3)
        nn.init.normal_(self.offsets.weight, std=settings.offset_init_std)
        nn.init.zeros_(self.offsets.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.offsets(self.blocks(features)).view(-1, self.num_vertices, 3)


class ShapeDecoder(nn.Module):
    """Per-category decoders over one ico-sphere template (paper 3.3).

    Args:
        category_names: the categories, in class-index order.
        template_vertices: ``(V, 3)`` the template ``V0`` (the paper's ico-sphere,
            ``a3d_core.geometry.ico_sphere_template``), symmetric about ``x = 0`` when
            ``settings.symmetric``.
        faces: ``(F, 3)`` long, shared by every reconstructed mesh.
        feature_dim: size of the encoder features.

    forward(features ``(B, D)``, categories ``(B,)`` long class indices) -> vertices ``(B, V, 3)``,
    each instance decoded by its category's decoder (mirror-symmetric when ``settings.symmetric``).
    """

    def __init__(
        self,
        category_names: list[str],
        template_vertices: torch.Tensor,
        faces: torch.Tensor,
        feature_dim: int,
        settings: ShapeDecoderSettings | None = None,
    ) -> None:
        super().__init__()
        if not category_names:
            raise ValueError("the shape decoder needs at least one category")
        keys = [category_key(name) for name in category_names]
        if len(set(keys)) != len(keys):
            raise ValueError(f"category names must be unique, got {category_names}")
        if template_vertices.ndim != 2 or template_vertices.shape[1] != 3:
            raise ValueError(f"template_vertices must be (V, 3), got {tuple(template_vertices.shape)}")
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3), got {tuple(faces.shape)}")
        self.settings = settings or ShapeDecoderSettings()
        self.category_names = list(category_names)
        template_vertices = template_vertices.detach().float()
        # Derived from the template level, so not part of the state dict.
        if self.settings.symmetric:
            mirror_index = mirror_vertex_index(template_vertices)
            template_vertices = self._symmetrized(template_vertices[None], mirror_index)[0]
            self.register_buffer("mirror_index", mirror_index, persistent=False)
        self.register_buffer("template_vertices", template_vertices.clone(), persistent=False)
        self.register_buffer("faces", faces.detach().long().clone(), persistent=False)
        num_vertices = template_vertices.shape[0]
        self.decoders = nn.ModuleDict(
            {key: CategoryShapeDecoder(feature_dim, num_vertices, self.settings) for key in keys}
        )

    @property
    def num_vertices(self) -> int:
        return int(self.template_vertices.shape[0])

    def decoder(self, name: str) -> CategoryShapeDecoder:
        """The decoder of category ``name``."""
        if name not in self.category_names:
            raise KeyError(f"unknown category {name!r} (known: {', '.join(self.category_names)})")
        return self.decoders[category_key(name)]

    def forward(self, features: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        return self.template_vertices + self.vertex_offsets(features, categories)

    def vertex_offsets(self, features: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        """Vertex offsets ``(B, V, 3)`` from the template, each instance by its category's decoder."""
        if features.ndim != 2 or categories.shape != features.shape[:1]:
            raise ValueError(
                f"features must be (B, D) and categories (B,), got {tuple(features.shape)}, {tuple(categories.shape)}"
            )
        if categories.numel() and (int(categories.min()) < 0 or int(categories.max()) >= len(self.category_names)):
            raise ValueError(f"category indices must be in [0, {len(self.category_names)}), got {categories.tolist()}")
        offsets = features.new_zeros(features.shape[0], self.num_vertices, 3)
        for index in categories.unique().tolist():
            members = (categories == index).nonzero().squeeze(1)
            offsets[members] = self.decoder(self.category_names[index])(features[members])
        if self.settings.symmetric:
            offsets = self._symmetrized(offsets, self.mirror_index)
        return offsets

    @staticmethod
    def _symmetrized(points: torch.Tensor, mirror_index: torch.Tensor) -> torch.Tensor:
        """``(B, V, 3)`` -> the mean of ``points`` and their mirror images: symmetric about ``x = 0``."""
        return 0.5 * (points + points[:, mirror_index] * points.new_tensor(MIRROR))

    def category_state(self, name: str) -> dict[str, torch.Tensor]:
        """Copies of category ``name``'s decoder parameters, keyed as in its own state dict."""
        return {key: value.detach().clone() for key, value in self.decoder(name).state_dict().items()}

    def load_category_state(self, name: str, state: dict[str, torch.Tensor]) -> None:
        """Load a state from :meth:`category_state` (of this or another model) into category ``name``.

        Raises ``ValueError`` naming the category when the keys or shapes differ (another
        template level or hidden size).
        """
        decoder = self.decoder(name)
        own = decoder.state_dict()
        if set(own) != set(state):
            raise ValueError(f"shape decoder state for {name!r} has keys {sorted(state)}; expected {sorted(own)}")
        for key, value in state.items():
            if value.shape != own[key].shape:
                raise ValueError(
                    f"shape decoder state for {name!r}: {key} has shape {tuple(value.shape)}, "
                    f"expected {tuple(own[key].shape)} (another template level or hidden size?)"
                )
        decoder.load_state_dict(state)
