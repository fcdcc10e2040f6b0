"""The viewpoint benchmark: a 3D shape prior against 2D baselines at viewpoints training never saw.

Run by hand: ``python benchmarks/bm_viewpoints.py --scale tiny|cpu|gpu [--out DIR] [--models SLUG,...]
[--stale redo|refuse]``. It prepares the built-in library with held-out azimuths, elevations,
(elevation, azimuth) pairs and far views, trains every model on the same data, augmentation and
instance budget (the headline models with several seeds), and writes ``DIR/report.md`` (tables
with 95% intervals over objects and seeds, viewpoint error, novel-view IoU), ``results.json`` and
the plots. A rerun resumes: finished models and evaluations made by the same code and settings
are reused, an interrupted model continues from its ``last.pt``; stale ones are redone, or with
``--stale refuse`` refused. The logic lives in :mod:`a3d_core.experiments.viewpoints`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from a3d_core.errors import A3DError
from a3d_core.experiments.viewpoints.benchmark import BenchmarkSettings, run_viewpoint_benchmark
from a3d_core.experiments.viewpoints.provenance import STALE_POLICIES
from a3d_core.experiments.viewpoints.specs import ALL_MODELS, MODELS, SCALES


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="benchmark folder (default: bench-viewpoints-<scale>)")
    parser.add_argument(
        "--models",
        default=None,
        help=f"comma-separated model slugs of {', '.join(spec.slug for spec in ALL_MODELS)} "
        f"(default: {', '.join(spec.slug for spec in MODELS)})",
    )
    parser.add_argument("--seed", type=int, default=0, help="data, bootstrap and first training seed")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--stale",
        choices=STALE_POLICIES,
        default="redo",
        help="a cached dataset or model made by other code or settings: redo it, or refuse with an error",
    )
    args = parser.parse_args()
    out = args.out or Path(f"bench-viewpoints-{args.scale}")
    command = "python benchmarks/bm_viewpoints.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.0f} s] {message}", flush=True)

    try:
        settings = BenchmarkSettings(
            args.scale, out, args.models.split(",") if args.models else None, args.seed, args.device, args.stale
        )
        run_viewpoint_benchmark(settings, log=log, command=command.strip())
    except A3DError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print((out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
