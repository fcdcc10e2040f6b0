"""ShapeDict: a 2D shape-prior baseline, a dictionary of training amodal masks (issue 12).

After Xiao et al., "Amodal segmentation based on visible region segmentation and shape prior"
(AAAI 2021; the A3D paper's ref. 30): the amodal masks of the training instances, in the crop
frame the network sees, are clustered per category by K-means; an instance is completed by the
dictionary atom (a soft mean mask) of its category that best overlaps its visible mask (soft
IoU), united with the visible mask, and, as in A3D, the region-specific edge refine (paper 3.5)
then reads ``[coarse mask, RGB, visible]``. With ``atoms_per_category = 0`` every training mask
is an atom: the training-free retrieval, its simplest form. With ``mirrored`` the flipped masks
join the bank (a flip is the mirror view, :mod:`a3d_core.data.viewpoints`).

Which category's atoms are searched follows the shape decoder's rule in
:class:`~a3d_core.model.asm.AmodalShapeModel`: the ground-truth category in training, the
classification branch's prediction in evaluation; ``retrieval="all"`` searches every category.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from a3d_core.model.mask_branch import MaskBranchOutput

RETRIEVALS = ("category", "all")


@dataclass
class ShapeDictSettings:
    """atoms_per_category: K of the per-category K-means (0: every training mask is an atom).
    kmeans_iterations: Lloyd iterations after the k-means++ seeding.
    mirrored: add every training mask's left-right flip to the bank.
    retrieval: ``"category"`` (the instance's category's atoms) or ``"all"``.
    """

    atoms_per_category: int = 64
    kmeans_iterations: int = 25
    mirrored: bool = True
    retrieval: str = "category"

    def __post_init__(self) -> None:
        if self.atoms_per_category < 0 or self.kmeans_iterations < 0:
            raise ValueError("atoms_per_category and kmeans_iterations must be non-negative")
        if self.retrieval not in RETRIEVALS:
            raise ValueError(f"retrieval must be one of {RETRIEVALS}, got {self.retrieval!r}")


def kmeans_masks(masks: torch.Tensor, clusters: int, iterations: int, generator: torch.Generator) -> torch.Tensor:
    """K-means of flattened masks ``(N, P)`` in [0, 1] -> centroids ``(min(clusters, N), P)``.

    k-means++ seeding (each next seed drawn with probability proportional to the squared distance
    to the nearest seed), then Lloyd iterations; a cluster left empty keeps its centroid.
    """
    count = len(masks)
    if clusters >= count:
        return masks.clone()
    centroids = [masks[int(torch.randint(count, (1,), generator=generator))]]
    nearest = ((masks - centroids[0]) ** 2).sum(1)
    for _ in range(1, clusters):
        pick = int(torch.multinomial(nearest + 1e-12, 1, generator=generator))
        centroids.append(masks[pick])
        nearest = torch.minimum(nearest, ((masks - masks[pick]) ** 2).sum(1))
    centres = torch.stack(centroids)
    for _ in range(iterations):
        assignment = torch.cdist(masks, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, assignment, masks)
        sizes = torch.bincount(assignment, minlength=clusters).to(masks.dtype)
        filled = sizes > 0
        centres[filled] = sums[filled] / sizes[filled, None]
    return centres


def overlap_scores(visible: torch.Tensor, atoms: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Soft IoU of every visible mask ``(B, P)`` with every atom ``(A, P)`` -> ``(B, A)``."""
    intersection = visible @ atoms.T
    union = visible.sum(1, keepdim=True) + atoms.sum(1)[None] - intersection
    return intersection / (union + eps)


class ShapeDictBranch(nn.Module):
    """The coarse-mask branch of ShapeDict; see the module docstring.

    forward(features ``(B, D)``, inputs ``(B, C, S, S)`` (RGB, visible, the occluder mask with
    ``ASMSettings.occluder_input``), categories ``(B,)``)
    -> a :class:`~a3d_core.model.mask_branch.MaskBranchOutput` whose coarse mask ``(B, S, S)`` is
    max(best atom, visible mask), its only field. Before training call
    :meth:`fit` with the training amodal masks; the atoms are buffers, saved in checkpoints.
    """

    def __init__(self, num_categories: int, image_size: int, settings: ShapeDictSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or ShapeDictSettings()
        self.num_categories = num_categories
        self.image_size = image_size
        self.register_buffer("atoms", torch.zeros(0, image_size * image_size))
        self.register_buffer("atom_category", torch.zeros(0, dtype=torch.int64))

    @torch.no_grad()
    def fit(self, amodal: torch.Tensor, categories: torch.Tensor, seed: int = 0) -> None:
        """Build the dictionary from training amodal masks ``(N, S, S)`` and their categories ``(N,)``."""
        if (
            amodal.ndim != 3
            or amodal.shape[1:] != (self.image_size, self.image_size)
            or categories.shape != amodal.shape[:1]
        ):
            raise ValueError(
                f"fit expects masks (N, {self.image_size}, {self.image_size}) and categories (N,), "
                f"got {tuple(amodal.shape)}, {tuple(categories.shape)}"
            )
        masks, categories = amodal.float().flatten(1), categories.long()
        if self.settings.mirrored:
            masks = torch.cat([masks, amodal.float().flip(-1).flatten(1)])
            categories = torch.cat([categories, categories])
        generator = torch.Generator().manual_seed(seed)
        atoms, owners = [], []
        for category in range(self.num_categories):
            members = masks[categories == category]
            if not len(members):
                continue
            clusters = self.settings.atoms_per_category or len(members)
            centres = kmeans_masks(members, clusters, self.settings.kmeans_iterations, generator)
            atoms.append(centres)
            owners.append(torch.full((len(centres),), category, dtype=torch.int64))
        if not atoms:
            raise ValueError("ShapeDict.fit: no training masks")
        self.atoms = torch.cat(atoms).to(self.atoms.device)
        self.atom_category = torch.cat(owners).to(self.atoms.device)

    def forward(self, features: torch.Tensor, inputs: torch.Tensor, categories: torch.Tensor) -> MaskBranchOutput:
        if not len(self.atoms):
            raise RuntimeError("ShapeDict has no atoms: call fit() with the training masks first")
        visible = inputs[:, 3].float()
        scores = overlap_scores(visible.flatten(1), self.atoms)
        if self.settings.retrieval == "category":
            scores = scores.masked_fill(self.atom_category[None] != categories[:, None], -1.0)
        best = self.atoms[scores.argmax(1)].view_as(visible)
        return MaskBranchOutput(coarse_mask=torch.maximum(best, visible))

    def adopt_sizes(self, state_dict, prefix: str = "") -> None:
        """Resize the atoms to those of ``state_dict`` (the dictionary's size depends on the data
        it was fitted on), so that loading it checks and copies like any other weights."""
        for name in ("atoms", "atom_category"):
            saved = state_dict.get(prefix + name)
            if isinstance(saved, torch.Tensor) and saved.ndim == getattr(self, name).ndim:
                setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        self.adopt_sizes(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
