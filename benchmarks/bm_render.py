"""Benchmark the soft silhouette renderer's backends side by side: meshes per second.

For each configuration both backends render the same batch of deformed ico-spheres from random
Kato-style viewpoints, forward only and forward + backward (the loss is a weighted sum of the
silhouettes, so every pixel sends a gradient). The grid varies one axis at a time around a base
point (image size, template level, faces per pixel, batch size); the base point is the issue's
target case: 64x64, level 3 (642 vertices), K = 50, batch 8. The forward runs under
``torch.no_grad``, where the ``fast`` backend evaluates each face in its bounding box (inference);
``--inference`` times only that, at the sizes inference uses: crops of 32 and 64 pixels, levels 2
and 3, the instances of one image (4) and of a 4-image batch of ``bm_predict.py`` (20).

    python benchmarks/bm_render.py              # the full sweep (minutes on 2 CPU cores)
    python benchmarks/bm_render.py --quick      # a small sweep (seconds)
    python benchmarks/bm_render.py --target     # only the base case
    python benchmarks/bm_render.py --inference  # forward only, no gradient, at inference sizes
    python benchmarks/bm_render.py --device cuda
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from rich.console import Console
from rich.table import Table

from a3d_core.geometry import Viewpoint, ico_sphere_template
from a3d_core.model.render import SilhouetteRendererSettings, SoftSilhouetteRenderer

BACKENDS_COMPARED = ("pytorch3d", "fast")
WORKLOADS = ("fwd", "f+b")


@dataclass(frozen=True)
class Case:
    image_size: int
    level: int
    faces_per_pixel: int
    batch: int


FULL_BASE = Case(image_size=64, level=3, faces_per_pixel=50, batch=8)
FULL_AXES = {"image_size": (32, 64, 128), "level": (2, 3, 4), "faces_per_pixel": (10, 50, 100), "batch": (1, 8, 32)}
QUICK_BASE = Case(image_size=32, level=2, faces_per_pixel=50, batch=4)
QUICK_AXES = {"image_size": (32, 64), "level": (2, 3), "faces_per_pixel": (50,), "batch": (4,)}
INFERENCE_CASES = [
    Case(image_size=size, level=level, faces_per_pixel=50, batch=batch)
    for size, level, batch in itertools.product((32, 64), (2, 3), (4, 20))
]


def sweep(base: Case, axes: dict[str, tuple[int, ...]]) -> list[Case]:
    """The base case, then each axis varied alone (duplicates dropped, order kept)."""
    cases = [base]
    for field, values in axes.items():
        cases += [replace(base, **{field: value}) for value in values]
    return list(dict.fromkeys(cases))


def make_inputs(case: Case, device: torch.device, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    template, faces = ico_sphere_template(case.level)
    radial = 1 + 0.25 * torch.rand(case.batch, template.shape[0], 1, generator=generator)
    vertices = (template[None] * radial).to(device)
    viewpoint = Viewpoint.from_degrees(
        torch.rand(case.batch, generator=generator) * 60 - 30, torch.rand(case.batch, generator=generator) * 360, 2.732
    ).to(device)
    upstream = torch.randn(case.batch, case.image_size, case.image_size, generator=generator).to(device)
    return vertices, faces.to(device), viewpoint, upstream


def workloads(case: Case, backend: str, device: torch.device) -> dict[str, Callable[[], None]]:
    """The two timed workloads of one backend on one case: forward only, forward + backward."""
    renderer = SoftSilhouetteRenderer(
        SilhouetteRendererSettings(image_size=case.image_size, faces_per_pixel=case.faces_per_pixel, backend=backend)
    )
    vertices, faces, viewpoint, upstream = make_inputs(case, device)

    def forward() -> None:
        with torch.no_grad():
            renderer(vertices, faces, viewpoint)

    def forward_backward() -> None:
        leaf = vertices.detach().requires_grad_(True)
        (renderer(leaf, faces, viewpoint) * upstream).sum().backward()

    return {"fwd": forward, "f+b": forward_backward}


def measure(
    case: Case, device: torch.device, repeats: int, seconds_per_round: float, names: tuple[str, ...] = WORKLOADS
) -> dict[tuple[str, str], float]:
    """Meshes per second for each (backend, workload of ``names``), from the best of its timings.

    ``repeats`` rounds; in each, every workload is timed once, and again while it has used less
    than ``seconds_per_round`` (at most 10 times), so that cheap workloads get many tries. The
    backends take turns within each round, so that load from other processes on a shared
    machine hits both alike.
    """
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    runs = {
        (backend, name): run
        for backend in BACKENDS_COMPARED
        for name, run in workloads(case, backend, device).items()
        if name in names
    }
    best = {key: float("inf") for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            spent, calls = 0.0, 0
            while calls == 0 or (spent < seconds_per_round and calls < 10):
                synchronize()
                start = time.perf_counter()
                run()
                synchronize()
                elapsed = time.perf_counter() - start
                best[key], spent, calls = min(best[key], elapsed), spent + elapsed, calls + 1
    return {key: case.batch / seconds for key, seconds in best.items()}


def warm_up(device: torch.device) -> None:
    """One small forward + backward per backend, so that one-time initialisation is not timed."""
    for backend in BACKENDS_COMPARED:
        workloads(Case(image_size=16, level=1, faces_per_pixel=10, batch=1), backend, device)["f+b"]()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    grid = parser.add_mutually_exclusive_group()
    grid.add_argument("--quick", action="store_true", help="a small grid that runs in seconds")
    grid.add_argument("--target", action="store_true", help="only the target case (64x64, level 3, K 50, batch 8)")
    grid.add_argument("--inference", action="store_true", help="forward only, no gradient, at inference sizes")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds per case (the best time counts)")
    parser.add_argument(
        "--seconds-per-round",
        type=float,
        default=0.5,
        help="re-time a workload within a round while it has used less than this",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    names = ("fwd",) if args.inference else WORKLOADS
    if args.target:
        cases = [FULL_BASE]
    elif args.inference:
        cases = INFERENCE_CASES
    else:
        cases = sweep(QUICK_BASE, QUICK_AXES) if args.quick else sweep(FULL_BASE, FULL_AXES)

    console = Console(width=120)
    table = Table(
        title=f"Soft silhouette renderer, meshes/s on {device.type} ({torch.get_num_threads()} threads)",
        caption="fwd: forward only; f+b: forward + backward; fast/p3d: speed-up of fast over pytorch3d",
    )
    for column in ("image", "level (V)", "K", "batch"):
        table.add_column(column, justify="right")
    for backend in BACKENDS_COMPARED:
        for name in names:
            table.add_column(f"{backend} {name}", justify="right")
    for name in names:
        table.add_column(f"fast/p3d {name}", justify="right")
    warm_up(device)
    for case in cases:
        console.log(f"measuring {case}")
        rates = measure(case, device, args.repeats, args.seconds_per_round, names)
        vertices = ico_sphere_template(case.level)[0].shape[0]
        table.add_row(
            f"{case.image_size}",
            f"{case.level} ({vertices})",
            f"{case.faces_per_pixel}",
            f"{case.batch}",
            *(f"{rates[backend, name]:.1f}" for backend in BACKENDS_COMPARED for name in names),
            *(f"{rates['fast', name] / rates['pytorch3d', name]:.2f}x" for name in names),
        )
    console.print(table)


if __name__ == "__main__":
    main()
