"""The modal study: class-agnostic completers trained on real modal masks, the built-in library, or both.

Run by hand: ``python benchmarks/bm_modal.py --scale tiny|cpu [--out DIR] [--annotations FILE.json]
[--data-only | --models SLUG,...] [--stale redo|refuse]``. It prepares the real masks' Deocclusion
pairs (split by image), the built-in library and the built-in scenes, trains every kind on each
source with the same instances and batch (the headline kinds with several seeds), scores each on
the held-out real images, the scenes and the held-out library objects beside the visible mask,
and writes ``DIR/report.md`` and ``results.json``. ``--data-only`` prepares the data and stops;
``--models`` trains and scores those models only (slugs such as ``a3d-real``, or kinds), without
a report, so that two processes with disjoint models share one folder; a run without it reuses
everything made by the same code and settings and writes the report. The logic lives in
:mod:`a3d_core.experiments.modal`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from a3d_core.errors import A3DError
from a3d_core.experiments.modal.specs import MODELS, SCALES
from a3d_core.experiments.modal.study import StudySettings, run_modal_study
from a3d_core.experiments.viewpoints.provenance import STALE_POLICIES

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.shared_data import COCOAPI  # noqa: E402  (the fixture, found as the tests find it)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="study folder (default: bench-modal-<scale>)")
    parser.add_argument("--annotations", type=Path, default=COCOAPI / "instances_val2014_100.json")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--data-only", action="store_true", help="prepare the data and stop")
    group.add_argument(
        "--models",
        default=None,
        help=f"comma-separated slugs of {', '.join(m.slug for m in MODELS)}, or kinds (default: all, and the report)",
    )
    parser.add_argument("--seed", type=int, default=0, help="data, bootstrap and first training seed")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--stale", choices=STALE_POLICIES, default="redo")
    args = parser.parse_args()
    out = args.out or Path(f"bench-modal-{args.scale}")
    command = "python benchmarks/bm_modal.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.0f} s] {message}", flush=True)

    try:
        settings = StudySettings(
            args.scale,
            out,
            args.annotations,
            args.models.split(",") if args.models else None,
            args.data_only,
            args.seed,
            args.device,
            args.stale,
        )
        results = run_modal_study(settings, log=log, command=command.strip())
    except A3DError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if results is not None:
        print((out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
