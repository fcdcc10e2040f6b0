"""The category-specific shape decoder over an ico-sphere template (paper 3.3)."""

import pytest
import torch

from a3d_core.geometry import ico_sphere_template
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
