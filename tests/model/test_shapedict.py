"""ShapeDict (the 2D mask-dictionary baseline): K-means, retrieval by the visible mask, checkpoints."""

import pytest
import torch

from a3d_core.model.asm import ASMSettings, build_stage2
from a3d_core.model.shapedict import ShapeDictBranch, ShapeDictSettings, kmeans_masks, overlap_scores

S = 16


def box(top: int, left: int, bottom: int, right: int) -> torch.Tensor:
    mask = torch.zeros(S, S)
    mask[top:bottom, left:right] = 1.0
    return mask


TALL, WIDE, SMALL = box(0, 6, 16, 10), box(6, 0, 10, 16), box(6, 6, 10, 10)


def test_kmeans_recovers_two_prototypes_from_noisy_copies():
    generator = torch.Generator().manual_seed(0)
    noisy = []
    for prototype in (TALL, WIDE):
        for _ in range(10):
            flips = torch.rand(S, S, generator=generator) < 0.03
            noisy.append(torch.where(flips, 1 - prototype, prototype))
    centres = kmeans_masks(torch.stack(noisy).flatten(1), 2, 10, torch.Generator().manual_seed(1))
    recovered = sorted(((c >= 0.5).float().view(S, S) == p).all().item() for c in centres for p in (TALL, WIDE))
    assert recovered.count(True) == 2  # each prototype is one centroid, thresholded at 0.5
    assert kmeans_masks(torch.stack(noisy).flatten(1), 50, 3, generator).shape == (20, S * S)  # K >= N: every mask


def test_overlap_scores_are_soft_ious():
    scores = overlap_scores(torch.stack([TALL, SMALL]).flatten(1), torch.stack([TALL, WIDE]).flatten(1))
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert scores[0, 1] == pytest.approx(16 / (64 + 64 - 16), abs=1e-5)
    assert scores[1, 0] == pytest.approx(16 / 64, abs=1e-5)


def branch(retrieval: str = "category", mirrored: bool = False) -> ShapeDictBranch:
    dictionary = ShapeDictBranch(2, S, ShapeDictSettings(atoms_per_category=0, mirrored=mirrored, retrieval=retrieval))
    dictionary.fit(torch.stack([TALL, WIDE, box(0, 0, 16, 16)]), torch.tensor([0, 0, 1]))
    return dictionary


def inputs_with_visible(visible: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.rand(len(visible), 3, S, S), visible[:, None]], 1)


def test_retrieval_completes_the_visible_part_with_the_best_overlapping_atom():
    visible = box(0, 6, 8, 10)  # the top half of the tall bar
    out = branch()(torch.zeros(2, 8), inputs_with_visible(torch.stack([visible, visible])), torch.tensor([0, 1]))
    assert torch.equal(out.coarse_mask[0], TALL)  # category 0: the tall bar, not the wide one
    assert torch.equal(out.coarse_mask[1], torch.ones(S, S))  # category 1 has only the full square
    everywhere = branch("all")(torch.zeros(1, 8), inputs_with_visible(visible[None]), torch.tensor([1]))
    assert torch.equal(everywhere.coarse_mask[0], TALL)  # retrieval over all categories
    partly_outside = torch.maximum(box(6, 0, 10, 3), box(12, 0, 16, 3))  # the wide bar's end, and pixels
    out = branch()(torch.zeros(1, 8), inputs_with_visible(partly_outside[None]), torch.tensor([0]))
    assert torch.equal(out.coarse_mask[0], torch.maximum(WIDE, partly_outside))  # no atom covers: kept


def test_mirrored_bank_and_kmeans_sizes():
    asymmetric = box(0, 0, 16, 4)
    dictionary = ShapeDictBranch(1, S, ShapeDictSettings(atoms_per_category=0, mirrored=True))
    dictionary.fit(asymmetric[None], torch.tensor([0]))
    assert len(dictionary.atoms) == 2 and torch.equal(dictionary.atoms[1].view(S, S), asymmetric.flip(-1))
    clustered = ShapeDictBranch(2, S, ShapeDictSettings(atoms_per_category=2, mirrored=False))
    clustered.fit(torch.stack([TALL, TALL, WIDE, WIDE, SMALL]), torch.tensor([0, 0, 0, 1, 1]))
    assert clustered.atom_category.tolist() == [0, 0, 1, 1]


def test_a_fitted_dictionary_survives_a_checkpoint_and_unfitted_use_is_refused():
    settings = ASMSettings(image_size=S)
    model = build_stage2("shapedict", ["a", "b"], settings)
    with pytest.raises(RuntimeError, match="call fit"):
        model.eval()(dict(rgb=torch.rand(1, 3, S, S), visible=TALL[None, None]))
    model.fit_to_masks(torch.stack([TALL, WIDE, SMALL]), torch.tensor([0, 0, 1]))
    fresh = build_stage2("shapedict", ["a", "b"], settings)
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.mask_branch.atoms, model.mask_branch.atoms) and len(fresh.mask_branch.atoms) == 6
    batch = dict(rgb=torch.rand(2, 3, S, S), visible=torch.stack([TALL, SMALL])[:, None])
    with torch.no_grad():
        assert torch.equal(fresh.eval()(batch)["amodal_mask"], model.eval()(batch)["amodal_mask"])
