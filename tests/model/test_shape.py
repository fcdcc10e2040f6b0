"""The category-specific shape decoder over an ico-sphere template (paper 3.3)."""

import pytest
import torch

from a3d_core.eval.shape3d import voxelize
from a3d_core.geometry import ico_sphere_template, mesh_template
from a3d_core.model.shape import ShapeDecoder, ShapeDecoderSettings, category_key, mirror_vertex_index


def decoder_for(names, level=1, hidden=16, feature_dim=8, symmetric=True):
    vertices, faces = ico_sphere_template(level)
    return ShapeDecoder(
        names, vertices, faces, feature_dim, ShapeDecoderSettings(hidden_dim=hidden, symmetric=symmetric)
    )


def mirror_gap(points):
    """Largest distance from a point of ``(V, 3)`` mirrored about x = 0 to the nearest point."""
    mirrored = points * torch.tensor([-1.0, 1.0, 1.0])
    return float((mirrored[:, None] - points[None]).norm(dim=2).min(dim=1).values.max())


def test_category_keys_are_legal_and_distinct():
    assert category_key("car") == "car"
    assert category_key("traffic light") == "traffic_0020light"
    assert len({category_key(n) for n in ["a.b", "a_b", "a b", "ab"]}) == 4
    assert all("." not in category_key(n) for n in ["a.b", "x.y.z"])


def test_untrained_decoder_outputs_a_near_sphere():
    decoder = decoder_for(["car", "chair"])
    vertices = decoder(torch.rand(3, 8), torch.tensor([0, 1, 0]))
    assert vertices.shape == (3, 42, 3) and vertices.dtype == torch.float32
    assert torch.allclose(vertices, decoder.template_vertices.expand(3, -1, -1), atol=1e-2)


def test_default_template_has_642_vertices():
    assert decoder_for(["car"], level=3).num_vertices == 642


def test_each_instance_uses_its_own_category_decoder():
    decoder = decoder_for(["car", "chair"])
    with torch.no_grad():
        decoder.decoder("chair").offsets.weight.zero_()
        decoder.decoder("chair").offsets.bias.view(-1, 3)[:, 1] = 0.1  # every vertex up by 0.1
        decoder.decoder("car").offsets.weight.zero_()
    vertices = decoder(torch.rand(2, 8), torch.tensor([1, 0]))
    assert torch.allclose(vertices[0], decoder.template_vertices + torch.tensor([0.0, 0.1, 0.0]))
    assert torch.allclose(vertices[1], decoder.template_vertices)


def test_category_state_round_trips_by_name_between_category_lists():
    pretrained = decoder_for(["car", "chair"])
    finetuned = decoder_for(["boat", "car"])
    finetuned.load_category_state("car", pretrained.category_state("car"))
    features = torch.rand(4, 8)
    expected = pretrained(features, torch.zeros(4, dtype=torch.long))
    assert torch.equal(finetuned(features, torch.ones(4, dtype=torch.long)), expected)
    assert not torch.equal(finetuned(features, torch.zeros(4, dtype=torch.long)), expected)


def test_category_state_of_another_template_is_refused():
    with pytest.raises(ValueError, match="another template level"):
        decoder_for(["car"], level=2).load_category_state("car", decoder_for(["car"], level=1).category_state("car"))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="unique"):
        decoder_for(["car", "car"])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        decoder_for(["car", "chair"])(torch.rand(1, 8), torch.tensor([2]))


def trained_looking(decoder):
    """Large random offset weights: far-from-sphere, generic shapes."""
    with torch.no_grad():
        for name in decoder.category_names:
            decoder.decoder(name).offsets.weight.normal_(std=0.05)
    return decoder


def test_symmetric_meshes_are_their_own_mirror_images():
    decoder = trained_looking(decoder_for(["car", "chair"], level=2))
    vertices = decoder(torch.randn(3, 8), torch.tensor([0, 1, 1]))
    assert (vertices - decoder.template_vertices).abs().max() > 0.05  # really deformed
    assert max(mirror_gap(mesh) for mesh in vertices.detach()) < 1e-6
    asymmetric = trained_looking(decoder_for(["car"], level=2, symmetric=False))
    assert mirror_gap(asymmetric(torch.randn(1, 8), torch.tensor([0]))[0].detach()) > 0.01


def test_symmetric_offsets_pass_gradients_to_the_decoder():
    decoder = trained_looking(decoder_for(["car"]))
    features = torch.randn(2, 8, requires_grad=True)
    decoder(features, torch.tensor([0, 0]))[:, :, 0].sum().backward()  # x of every vertex: cancels for a symmetric mesh
    assert features.grad.abs().max() < 1e-5
    features.grad = None
    decoder(features, torch.tensor([0, 0]))[:, :, 1].pow(2).sum().backward()
    assert features.grad.abs().max() > 0 and decoder.decoder("car").offsets.weight.grad.abs().max() > 0


def test_mirror_index_pairs_the_template_and_refuses_an_asymmetric_one():
    vertices, _ = ico_sphere_template(2)
    index = mirror_vertex_index(vertices)
    assert torch.equal(index[index], torch.arange(len(vertices)))  # mirroring twice is the identity
    assert torch.allclose(vertices[index], vertices * torch.tensor([-1.0, 1.0, 1.0]), atol=1e-3)
    with pytest.raises(ValueError, match="not symmetric"):
        mirror_vertex_index(vertices + torch.tensor([0.1, 0.0, 0.0]))


# -------------------------------------------------------------------- the deformation prior (CMR)
@pytest.mark.parametrize("symmetric", [True, False])
def test_instance_deformation_is_zero_at_the_category_mean_shape_and_grows_with_the_instance_part(symmetric):
    decoder = decoder_for(["car", "chair"], symmetric=symmetric)
    categories = torch.tensor([0, 1, 1])
    with torch.no_grad():
        for name in ("car", "chair"):  # a mean shape per category, and no instance part yet
            decoder.decoder(name).offsets.bias.normal_(std=0.2)
            decoder.decoder(name).offsets.weight.zero_()
    features = torch.randn(3, 8)
    vertices = decoder(features, categories)
    assert (vertices - decoder.template_vertices).abs().max() > 0.05  # not the sphere
    assert decoder.instance_deformation(vertices, categories).item() == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        decoder.decoder("chair").offsets.weight.normal_(std=0.1)
    vertices = decoder(features, categories)
    chair_only = decoder.instance_deformation(vertices[1:], categories[1:])
    assert chair_only.item() > 0 and decoder.instance_deformation(vertices[:1], categories[:1]).item() < 1e-12


def test_the_deformation_loss_is_added_when_weighted_and_trains_the_mean_shape():
    from a3d_core.model.asm import build_stage2
    from a3d_core.model.losses import LossSettings
    from tests.model.conftest import make_batch, tiny_settings

    torch.manual_seed(0)
    model = build_stage2("a3d", ["car", "chair"], tiny_settings(losses=LossSettings(deformation=2.0))).train()
    with torch.no_grad():
        for parameter in model.mask_branch.shape_decoder.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    losses = model(make_batch(2))
    assert losses["deformation"].item() > 0
    losses["deformation"].backward()
    decoder = model.mask_branch.shape_decoder.decoder("car")
    assert decoder.offsets.weight.grad.abs().sum() > 0  # pulls the instance part in
    assert "deformation" not in build_stage2("a3d", ["car", "chair"], tiny_settings()).train()(make_batch(2))


# ------------------------------------------------------------------- the parts template
def part_labels(faces: torch.Tensor, num_vertices: int) -> torch.Tensor:
    """``(V,)``: the connected component of every vertex, by faces."""
    labels = torch.arange(num_vertices)
    for _ in range(num_vertices):
        corners = labels[faces]  # (F, 3)
        smallest = corners.min(dim=1).values
        updated = labels.scatter_reduce(0, faces.reshape(-1), smallest.repeat_interleave(3), reduce="amin")
        if torch.equal(updated, labels):
            return labels
        labels = updated
    return labels


@pytest.mark.parametrize("level, part_vertices", [(1, 12), (2, 42), (3, 162)])
def test_the_parts_template_is_eight_closed_spheres_a_level_coarser(level, part_vertices):
    vertices, faces = mesh_template("parts", level)
    assert vertices.shape == (8 * part_vertices, 3)
    labels = part_labels(faces, len(vertices))
    assert len(labels.unique()) == 8 and all(int((labels == part).sum()) == part_vertices for part in labels.unique())
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values
    _, counts = edges.unique(dim=0, return_counts=True)
    assert bool((counts == 2).all())  # every edge between exactly two faces: each part closed
    assert mirror_gap(vertices) < 1e-5  # symmetric about x = 0, as the symmetric decoder needs
    assert float(vertices.norm(dim=1).max()) < 0.5  # inside the sphere of the same radius


def test_separated_parts_leave_a_hole_the_voxel_metric_sees():
    vertices, faces = mesh_template("parts", 2)
    labels = part_labels(faces, len(vertices))
    centres = torch.stack([vertices[labels == part].mean(0) for part in labels.unique()])
    spread = vertices + (3 * centres).repeat_interleave(42, dim=0)  # each part moved out, away from the others
    blob, apart = voxelize(vertices.numpy(), faces.numpy()), voxelize(spread.numpy(), faces.numpy())
    centre = slice(14, 18)
    assert bool(blob[centre, centre, centre].all()) and not bool(apart[centre, centre, centre].any())
    assert int(apart.sum()) > 0


def test_a_symmetric_decoder_over_the_parts_template_keeps_every_mesh_symmetric():
    vertices, faces = mesh_template("parts", 1)
    decoder = ShapeDecoder(["car"], vertices, faces, 8, ShapeDecoderSettings(hidden_dim=16, offset_init_std=0.1))
    meshes = decoder(torch.rand(3, 8), torch.zeros(3, dtype=torch.long))
    assert meshes.shape == (3, 96, 3)
    assert max(mirror_gap(mesh) for mesh in meshes.detach()) < 1e-5
    with pytest.raises(ValueError, match="template must be one of"):
        mesh_template("torus", 1)


# ------------------------------------------------- progressive conditioning (instance warmup)
def warmup_decoder(warmup=0.5):
    vertices, faces = ico_sphere_template(1)
    settings = ShapeDecoderSettings(hidden_dim=16, offset_init_std=0.1, instance_warmup=warmup)
    decoder = ShapeDecoder(["car", "chair"], vertices, faces, 8, settings)
    with torch.no_grad():
        decoder.decoder("car").offsets.bias.normal_(std=0.1)
    return decoder


def test_the_instance_warmup_starts_every_instance_at_its_category_mean_shape_and_unlocks_it_linearly():
    decoder = warmup_decoder(0.5)
    features, cars = torch.rand(3, 8), torch.zeros(3, dtype=torch.long)
    free = ShapeDecoder(
        ["car", "chair"], decoder.template_vertices, decoder.faces, 8, ShapeDecoderSettings(hidden_dim=16)
    )
    free.load_state_dict({k: v for k, v in decoder.state_dict().items() if k != "instance_scale"})
    mean_shape = decoder.template_vertices + decoder._symmetrized(
        decoder.decoder("car").category_offsets[None], decoder.mirror_index
    )
    decoder.set_training_progress(0.0)
    meshes = decoder(features, cars)
    assert torch.allclose(meshes, mean_shape.expand(3, -1, -1), atol=1e-6)  # one mesh for the category
    decoder.set_training_progress(0.25)  # halfway through the warmup: half the instance part
    halfway = decoder(features, cars) - mean_shape
    assert torch.allclose(halfway, 0.5 * (free(features, cars) - mean_shape), atol=1e-6)
    decoder.set_training_progress(0.9)
    assert torch.allclose(decoder(features, cars), free(features, cars), atol=1e-6)
    assert float(decoder.state_dict()["instance_scale"]) == 1.0  # saved: a checkpoint evaluates as validated


def test_without_the_warmup_the_state_dict_and_meshes_are_the_papers():
    vertices, faces = ico_sphere_template(1)
    decoder = ShapeDecoder(["car"], vertices, faces, 8, ShapeDecoderSettings(hidden_dim=16))
    assert "instance_scale" not in decoder.state_dict()  # old checkpoints load unchanged
    before = decoder(torch.ones(2, 8), torch.zeros(2, dtype=torch.long))
    decoder.set_training_progress(0.0)
    assert torch.equal(decoder(torch.ones(2, 8), torch.zeros(2, dtype=torch.long)), before)
    with pytest.raises(ValueError, match="instance_warmup must be in"):
        ShapeDecoderSettings(instance_warmup=1.5)
