"""Which stage 2 for the two-stage network: each candidate kind trained as ``a3d demo`` trains it.

Run by hand: ``python benchmarks/bm_twostage.py [--out DIR] [--kinds a3d,2d-unet] [--seeds 3]
[--quick]``. It prepares the demo's data (more val scenes) and test scenes of unseen objects,
trains every kind with every seed (pretrain, then finetune both stages), scores the completion
protocol and the full pipeline on val and test, and writes ``DIR/report.md`` and
``results.json``: the kind is chosen on val. A rerun reuses what the same code and settings made.
The logic lives in :mod:`a3d_core.experiments.twostage.study`; the cpu run's report is
docs/twostage_cpu.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from a3d_core.errors import A3DError
from a3d_core.experiments.twostage.study import StudySettings, run_twostage_study
from a3d_core.pipelines.demo import QUICK


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-twostage"))
    parser.add_argument("--kinds", default="a3d,2d-unet", help="comma-separated stage-2 kinds")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per kind")
    parser.add_argument("--quick", action="store_true", help="the demo's QUICK plan and a few scenes (a smoke run)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stale", choices=("redo", "refuse"), default="redo")
    args = parser.parse_args()
    command = "python benchmarks/bm_twostage.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.0f} s] {message}", flush=True)

    extra = {"plan": QUICK, "val_scenes": 2, "test_scenes": 2, "resamples": 50} if args.quick else {}
    try:
        settings = StudySettings(
            args.out, tuple(args.kinds.split(",")), args.seeds, device=args.device, stale=args.stale, **extra
        )
        run_twostage_study(settings, log=log, command=command.strip())
    except (A3DError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print((args.out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
