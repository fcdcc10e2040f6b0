"""Completion learned from modal masks, on held-out real masks: mIoU and mIoU_occ with 95% intervals over images.

Run by hand (docs/modal.md has the commands that made its table)::

    python benchmarks/bm_modal.py --dataset DIR [--split test] NAME=RUN/best.pt [NAME=RUN/best.pt ...]

``DIR`` is an ``a3d prepare modal`` dataset: its test split holds the test IMAGES' instances, each
with a pasted eraser in front. Each checkpoint is scored on the instances framed as ``a3d pretrain``
frames them (its ``input_framing``), beside the visible-mask baseline; mIoU_occ is the IoU of the
hidden part (``prediction - visible`` against ``modal - visible``) over the instances with one.
Intervals resample the IMAGES (:func:`a3d_core.eval.intervals.bootstrap_mean`), the unit the split
is made of.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from a3d_core.data.framing import FramedViews
from a3d_core.data.shapenet import ShapeNetAmodalDataset
from a3d_core.eval.instances import score_instances
from a3d_core.eval.intervals import bootstrap_mean
from a3d_core.model.asm import load_stage2_from_checkpoint


def _cell(values: np.ndarray, images: np.ndarray) -> str:
    kept = ~np.isnan(values)
    interval = bootstrap_mean(values[kept], np.zeros(int(kept.sum()), np.int64), images[kept])
    return f"{100 * interval.value:.1f} [{100 * interval.low:.1f}, {100 * interval.high:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("checkpoints", nargs="+", help="NAME=PATH of a3d pretrain checkpoints")
    args = parser.parse_args()
    manifest = json.loads((args.dataset / "dataset.json").read_text())
    image_of = {entry["index"]: entry["image_id"] for entry in manifest["objects"]}
    dataset = ShapeNetAmodalDataset(args.dataset, args.split)
    images = np.array([image_of[int(i)] for i in dataset.object_index])
    table = Table(title=f"{args.dataset.name}/{args.split}: {len(dataset)} instances, {len(set(images))} images")
    for column in ("completer", "mIoU (%)", "mIoU_occ (%)"):
        table.add_column(column)
    rows = {}
    for spec in args.checkpoints:
        name, path = spec.split("=", 1)
        model = load_stage2_from_checkpoint(path)
        framing = model.settings.input_framing
        scores = score_instances(model, FramedViews(dataset, framing) if framing else dataset, device="cpu")
        if not rows:
            visible = scores.visible_iou.numpy().astype(np.float64)
            no_hidden = np.where(np.isnan(scores.hidden_iou.numpy()), np.nan, 0.0)
            rows["visible mask"] = (_cell(visible, images), _cell(no_hidden, images))
        iou, hidden = scores.iou.numpy().astype(np.float64), scores.hidden_iou.numpy().astype(np.float64)
        rows[name] = (_cell(iou, images), _cell(hidden, images))
    for name, cells in rows.items():
        table.add_row(name, *cells)
    Console(width=160).print(table)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
