"""The viewpoint benchmark: a 3D shape prior against 2D baselines at viewpoints training never saw.

Run by hand: ``python benchmarks/bm_viewpoints.py --scale tiny|cpu|gpu [--out DIR] [--models SLUG,...]``.
It prepares the built-in library with held-out azimuths, elevations and (elevation, azimuth)
pairs, trains every model on the same data, augmentation and instance budget, and writes
``DIR/report.md`` (tables with 95% intervals, viewpoint error, novel-view IoU), ``results.json``
and the plots. A rerun resumes: finished models and evaluations are reused, an interrupted model
continues from its ``last.pt``. The logic lives in :mod:`a3d_core.experiments.viewpoints`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from a3d_core.errors import A3DError
from a3d_core.experiments.viewpoints.benchmark import BenchmarkSettings, run_viewpoint_benchmark
from a3d_core.experiments.viewpoints.specs import MODELS, SCALES


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="benchmark folder (default: bench-viewpoints-<scale>)")
    parser.add_argument(
        "--models",
        default=None,
        help=f"comma-separated model slugs (default: all: {', '.join(spec.slug for spec in MODELS)})",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    out = args.out or Path(f"bench-viewpoints-{args.scale}")
    command = "python benchmarks/bm_viewpoints.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.0f} s] {message}", flush=True)

    try:
        settings = BenchmarkSettings(
            args.scale, out, args.models.split(",") if args.models else None, args.seed, args.device
        )
        run_viewpoint_benchmark(settings, log=log, command=command.strip())
    except A3DError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print((out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
