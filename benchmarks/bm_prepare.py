"""Prepare throughput on this machine: views per second for rendering and for occlusion, separately.

Rendering: a3d's MeshRenderer (flat two-sided shading, supersample 1 and 2) against pytorch3d's
stock MeshRenderer + HardFlatShader as the baseline, on one object of each built-in category at
Kato's 24 views, single-threaded (what each ``--workers`` process does).
Occlusion: the OcclusionGenerator (object bank of 13 renders) against a baseline that pastes one
random flat rectangle (the cost floor of painting an occluder).

    python benchmarks/bm_prepare.py [--size 64] [--views 24] [--repeats 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def render_rates(size: int, views: int, repeats: int) -> list[tuple[str, float]]:
    from pytorch3d.renderer import (
        HardFlatShader,
        MeshRasterizer,
        MeshRenderer as Pytorch3dMeshRenderer,
        PointLights,
        RasterizationSettings,
    )

    from a3d_core.data.render import MeshRenderer, RenderSettings
    from a3d_core.data.shapes import CATEGORIES, generate_shape, to_pytorch3d
    from a3d_core.geometry import kato_viewpoints, look_at_cameras

    meshes = [to_pytorch3d(generate_shape(c, (0, i))) for i, c in enumerate(CATEGORIES)]
    viewpoint = kato_viewpoints(list(range(views)))

    def stock(mesh):
        cameras = look_at_cameras(viewpoint)
        renderer = Pytorch3dMeshRenderer(
            MeshRasterizer(cameras=cameras, raster_settings=RasterizationSettings(image_size=size, bin_size=0)),
            HardFlatShader(cameras=cameras, lights=PointLights(location=[[0.0, 3.0, -3.0]])),
        )
        return renderer(mesh.extend(views))

    candidates = [
        ("pytorch3d HardFlatShader (baseline)", stock),
        ("a3d MeshRenderer, supersample 1", MeshRenderer(RenderSettings(size, supersample=1))),
        ("a3d MeshRenderer, supersample 2", MeshRenderer(RenderSettings(size, supersample=2))),
    ]
    rates = []
    for name, render in candidates:
        started = time.perf_counter()
        for _ in range(repeats):
            for mesh in meshes:
                render(mesh) if render is stock else render(mesh, viewpoint)
        rates.append((name, repeats * len(meshes) * views / (time.perf_counter() - started)))
    return rates


def occlusion_rates(size: int, samples: int) -> list[tuple[str, float]]:
    from a3d_core.data.occlusion import OcclusionGenerator
    from a3d_core.data.render import MeshRenderer, RenderSettings
    from a3d_core.data.shapes import CATEGORIES, generate_shape, to_pytorch3d
    from a3d_core.geometry import kato_viewpoints

    renderer = MeshRenderer(RenderSettings(size))
    renders = [
        renderer(to_pytorch3d(generate_shape(c, (1, i))), kato_viewpoints([3])) for i, c in enumerate(CATEGORIES)
    ]
    bank = [(r.rgb[0].numpy(), r.silhouette[0].numpy()) for r in renders]

    def rectangle(rgb, amodal, rng):
        top, left = rng.integers(0, size // 2, 2)
        occluder = np.zeros_like(amodal)
        occluder[top : top + size // 3, left : left + size // 3] = True
        return np.where(occluder[None], rng.uniform(0, 1, (3, 1, 1)).astype(np.float32), rgb), amodal & ~occluder

    generator = OcclusionGenerator(bank=bank)
    rates = []
    for name, occlude in (("one flat rectangle (baseline)", rectangle), ("a3d OcclusionGenerator", generator)):
        rng = np.random.default_rng(0)
        started = time.perf_counter()
        for k in range(samples):
            rgb, amodal = bank[k % len(bank)]
            occlude(rgb, amodal, rng)
        rates.append((name, samples / (time.perf_counter() - started)))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--views", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--occlusions", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'stage':<10} {'implementation':<40} {'views/s':>9}   ({args.size}x{args.size}, 1 thread)")
    for name, rate in render_rates(args.size, args.views, args.repeats):
        print(f"{'render':<10} {name:<40} {rate:>9.1f}")
    for name, rate in occlusion_rates(args.size, args.occlusions):
        print(f"{'occlude':<10} {name:<40} {rate:>9.1f}")


if __name__ == "__main__":
    main()
