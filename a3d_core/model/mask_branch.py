"""What every coarse-mask branch of 3D-ASM returns (paper 3.3 to 3.4 for A3D's, the baselines' alike).

A coarse-mask branch maps encoder features ``(B, D)``, the instance inputs ``(B, 4, S, S)`` (RGB +
visible mask) and the categories ``(B,)`` to a :class:`MaskBranchOutput`: A3D's
:class:`~a3d_core.model.asm.MeshMaskBranch` fills the mesh and camera fields, the 2D baselines
(:class:`~a3d_core.model.baseline2d.MaskDecoder2D`, :class:`~a3d_core.model.unet2d.UNetMaskDecoder`,
:class:`~a3d_core.model.shapedict.ShapeDictBranch`) the coarse mask only. Its own module, so that
the branches import it without importing the model that composes them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from a3d_core.geometry import Viewpoint


class MaskBranchOutput(NamedTuple):
    """One forward pass of a coarse-mask branch; ``None`` where the branch has no such output.

    coarse_mask: ``(B, S, S)`` the coarse amodal mask, probabilities in [0, 1].
    vertices: ``(B, V, 3)`` the reconstructed meshes (3D branch).
    viewpoint: Viewpoint of B, the camera each coarse mask was rendered at (3D branch).
    hypothesis_masks: ``(B, K, S, S)`` the silhouettes at all K azimuth hypotheses (3D branch,
        K > 1, whenever all K were rendered: always in training).
    hypotheses: Viewpoint of ``B * K``, instance-major, the cameras of ``hypothesis_masks``.
    hypothesis_scores: ``(B, K)`` the estimator's scores of the hypotheses (scored selection).
    """

    coarse_mask: torch.Tensor
    vertices: torch.Tensor | None = None
    viewpoint: Viewpoint | None = None
    hypothesis_masks: torch.Tensor | None = None
    hypotheses: Viewpoint | None = None
    hypothesis_scores: torch.Tensor | None = None
