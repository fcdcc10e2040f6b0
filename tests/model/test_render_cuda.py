"""The soft silhouette renderer on CUDA: ``fast`` agrees with the pytorch3d reference there (the
backend ``auto`` picks on CUDA) and with itself on the CPU, in values and vertex gradients."""

import pytest
import torch
import torch.nn.functional as F

from tests.model.test_render import (
    SILHOUETTE_TOLERANCE,
    deformed_spheres,
    random_viewpoints,
    renderers,
    silhouettes_and_vertex_gradients,
)

pytestmark = pytest.mark.cuda


def on(device, vertices, faces, viewpoint, upstream):
    return vertices.to(device), faces.to(device), viewpoint.to(device), upstream.to(device)


@pytest.mark.parametrize("image_size", [32, 64])
def test_fast_matches_reference_and_cpu_on_cuda(image_size):
    generator = torch.Generator().manual_seed(2)
    vertices, faces = deformed_spheres(2, level=3, generator=generator)
    viewpoint = random_viewpoints(2, generator)
    upstream = torch.randn(2, image_size, image_size, generator=generator)
    fast, reference = renderers(image_size)
    fast_cuda, fast_cuda_gradient = silhouettes_and_vertex_gradients(
        fast, *on("cuda", vertices, faces, viewpoint, upstream)
    )
    reference_cuda, reference_gradient = silhouettes_and_vertex_gradients(
        reference, *on("cuda", vertices, faces, viewpoint, upstream)
    )
    fast_cpu, fast_cpu_gradient = silhouettes_and_vertex_gradients(fast, vertices, faces, viewpoint, upstream)
    assert fast_cuda.is_cuda and reference_cuda.amax() > 0.5
    assert (fast_cuda - reference_cuda).abs().max() < SILHOUETTE_TOLERANCE
    assert F.cosine_similarity(fast_cuda_gradient.flatten(), reference_gradient.flatten(), dim=0) > 0.99
    assert (fast_cuda.cpu() - fast_cpu).abs().max() < 1e-5
    torch.testing.assert_close(fast_cuda_gradient.cpu(), fast_cpu_gradient, atol=1e-5, rtol=1e-4)
