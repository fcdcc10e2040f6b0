"""The viewpoint benchmark's report: ``report.md`` and the plots, from ``results.json`` alone.

:func:`report_markdown` writes the tables (protocol, models, mIoU and hidden-part mIoU with
intervals, A3D minus each baseline, viewpoint error, novel-view IoU, meshes judged in 3D, per
category) and plain sentences of what they show, generated from the numbers whichever way they
come out; :func:`write_plots` draws per-category bars with intervals, the viewpoint-error
histogram and novel-view IoU against the step (:mod:`a3d_core.eval.charts`); :func:`example_figure`
draws the most occluded held-out instances as the best baseline and A3D complete them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from a3d_core.boxes import DEFAULT_CROP_SCALE
from a3d_core.data.shapenet import load_split_arrays
from a3d_core.eval import charts
from a3d_core.eval.viewpoint_diagnostics import DEFAULT_STEPS
from a3d_core.experiments.viewpoints.specs import CAMERA_MODELS
from a3d_core.experiments.viewpoints.training import open_split
from a3d_core.io.atomic import atomic_write_bytes
from a3d_core.model.asm import AmodalShapeModel


def _cell(interval: dict[str, float]) -> str:
    if interval is None or math.isnan(interval["value"]):
        return "-"
    return f"{interval['value']:.1f} [{interval['low']:.1f}, {interval['high']:.1f}]"


def _signed(interval: dict[str, float]) -> str:
    return f"{interval['value']:+.1f} [{interval['low']:+.1f}, {interval['high']:+.1f}]"


def _verdict(interval: dict[str, float]) -> str:
    if interval["low"] > 0:
        return "ahead"
    if interval["high"] < 0:
        return "behind"
    return "not distinguishable"


SPLIT_MEANING = {
    "test": "unseen objects at training cameras",
    "test_newview": "held-out azimuth wedge with its mirrors and twins, at training elevations",
    "test_elevation": "held-out elevations, at training azimuths",
    "test_combination": "held-out (elevation, azimuth) pairs with their mirrors and twins; each elevation and "
    "azimuth seen in training",
    "test_farview": "far views: each camera at least 45 degrees from every training camera, mirror and twin",
}


def report_markdown(results: dict[str, Any]) -> str:
    """The benchmark's report: protocol, models, the tables, the diagnostics and what they show."""
    scale, protocol, models = results["scale"], results["protocol"], results["models"]
    splits = list(results["splits"])
    machine = results["machine"]
    lines = [f"# Viewpoint benchmark, scale `{scale['name']}`", ""]
    if results["command"]:
        lines += [f"Command: `{results['command']}`", ""]
    lines += [provenance_line(results), ""]
    load = results["load_average"]
    lines += [
        f"Machine: {machine['platform']}, {machine['cpus']} CPUs, torch {machine['torch']} with "
        f"{machine['torch_threads']} threads{', ' + machine['cuda'] if machine['cuda'] else ', no GPU'}; "
        f"load average {load['start'][0]:.1f} at the start of this invocation, {load['end'][0]:.1f} at its end; "
        f"this invocation took {results['seconds'] / 60:.0f} min (a rerun reuses finished models and evaluations); "
        f"the models' training took {sum(m['seconds'] for m in results['models'].values()) / 60:.0f} min in all "
        "(the table below, each summed over resumed runs).",
        "",
    ]
    lines += [
        "## Protocol",
        "",
        f"Built-in shape library, {len(results['categories'])} categories, "
        f"{scale['objects_per_category']} objects each "
        f"(split {scale['split_fractions']} by object), {scale['image_size']}x{scale['image_size']} views framed at "
        f"{DEFAULT_CROP_SCALE}, synthetic occlusion. Training elevations {protocol['elevations']}; Kato azimuth views "
        f"{protocol['view_ids']} (view v is azimuth -15 v degrees; v mirrors (24 - v) mod 24, its front/back twin is "
        f"(12 - v) mod 24; held-out sets are closed under both). Held out: views "
        f"{protocol['holdout_views']}, elevations {protocol['holdout_elevations']}, pairs {protocol['holdout_pairs']}, "
        f"far views {protocol.get('farview', [])}. "
        "Train and val objects are seen at the training cameras only; "
        "checkpoints and the best baseline are chosen on val. "
        f"Headline models trained with {scale.get('seeds', 1)} seeds, the others with one.",
        "",
        "| split | what it holds | cameras | instances | objects |",
        "|---|---|---:|---:|---:|",
    ]
    first = next(iter(models))
    for split in splits:
        metrics = results["splits"][split][first]
        lines.append(
            f"| {split} | {SPLIT_MEANING.get(split, '')} | {len(protocol['cameras'].get(split, []))} | "
            f"{metrics['instances']} | {metrics['objects']} |"
        )
    lines += [
        "",
        "## Models",
        "",
        f"Every trained model: flips per object, Adam {scale['lr']:g}, batch {scale['batch_size']}, "
        f"{scale['instances']:,} "
        "training instances (a cross-view step counts both views), checkpoint chosen on val mIoU.",
        "",
        "| model | what it is | active parameters | instances seen | steps | seeds | train time (s), all seeds "
        "| val mIoU |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, record in models.items():
        lines.append(
            f"| {name} | {record['description']} | {record['parameters']:,} | {record['instances']:,} "
            f"| {record['steps']:,} | {len(record.get('runs', [None]))} "
            f"| {record['seconds']:.0f} | {_cell(record['val']['miou'])} |"
        )
    for metric, title in (
        ("miou", "mIoU (%), mean over categories and seeds, 95% intervals over test objects and seeds"),
        ("hidden_miou", "mIoU of the hidden part (%): prediction minus visible against amodal minus visible"),
    ):
        lines += ["", f"## {title}", "", "| model | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
        for name in models:
            lines.append(f"| {name} | " + " | ".join(_cell(results["splits"][s][name][metric]) for s in splits) + " |")
    several = [name for name in models if results["splits"][splits[0]][name].get("seeds", 1) > 1]
    if several:
        lines += ["", "## mIoU (%) of each seed", "", "| model | seed | " + " | ".join(splits) + " |"]
        lines.append("|---|---:|" + "---:|" * len(splits))
        for name in several:
            for index, seed_run in enumerate(models[name]["runs"]):
                cells = [f"{results['splits'][s][name]['miou_per_seed'][index]:.1f}" for s in splits]
                lines.append(f"| {name} | {seed_run['seed']} | " + " | ".join(cells) + " |")
    bands = results.get("occlusion_bands", [])
    if bands:
        lines += [
            "",
            "## mIoU (%) by occlusion band (share of the amodal mask hidden)",
            "",
            "| model | " + " | ".join(f"{s} {band}" for s in splits for band in bands) + " |",
            "|---|" + "---:|" * (len(splits) * len(bands)),
            "| instances | "
            + " | ".join(
                str(results["splits"][s][first]["occlusion_bands"][band]["instances"]) for s in splits for band in bands
            )
            + " |",
        ]
        for name in models:
            cells = [
                _cell(results["splits"][s][name]["occlusion_bands"][band]["miou"]) for s in splits for band in bands
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if results["differences"]:
        best = results["best_baseline"]
        lines += [
            "",
            f"## Each 3D model minus each baseline (mIoU points, 95% intervals paired by instance and seed index "
            f"over the seeds both have); best baseline on val: **{best}**",
            "",
            "| model | baseline | " + " | ".join(splits) + " |",
            "|---|---|" + "---:|" * len(splits),
        ]
        for name, opponents in results["differences"].items():
            for opponent, by_split in opponents.items():
                marker = " (best)" if opponent == best else ""
                lines.append(
                    f"| {name} | {opponent}{marker} | "
                    + " | ".join(_signed(by_split[s]["miou"]) for s in splits)
                    + " |"
                )
    for name, diagnostics in results["diagnostics"].items():
        lines += [
            "",
            f"## {name}: viewpoint error (degrees; all seeds' instances) after the per-category alignment fitted on "
            "each seed's val",
            "",
            "| split | median azimuth error | modulo 180 (front/back) | median elevation error | median angle "
            "| within 30 degrees |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for split, summary in diagnostics["viewpoint_errors"].items():
            lines.append(
                f"| {split} | {summary['median_azimuth_error']:.0f} | {summary['median_azimuth_error_mod180']:.0f} "
                f"| {summary['median_elevation_error']:.0f} | "
                f"{summary['median_angle_error']:.0f} | {100 * summary['share_within']:.0f}% |"
            )
        shapes = diagnostics.get("shapes_3d")
        if shapes:
            categories = results["categories"]
            lines += [
                "",
                f"## {name}: meshes judged in 3D, voxel IoU (%) at 32^3 with the true mesh, after the val alignment",
                "",
                f"{shapes['meshes']} reconstructions ({results['meshes_per_object']} `test` views of each object): "
                "mesh "
                f"{_cell(shapes['mesh'])}, the template sphere {_cell(shapes['sphere'])}.",
                "",
                "| category | mesh | sphere |",
                "|---|---:|---:|",
            ]
            for index, row in sorted(shapes["per_category"].items(), key=lambda item: int(item[0])):
                lines.append(f"| {categories[int(index)]} | {row['mesh']:.1f} | {row['sphere']:.1f} |")
        lines += [
            "",
            f"## {name}: novel-view IoU (%), the mesh of a `test` view rendered at another view of its object",
            "",
            "| step | pairs | mesh | reuse the input view's mask | difference |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, row in diagnostics["novel_view"].items():
            lines.append(
                f"| {label} | {row['pairs']} | {_cell(row['mesh'])} | {_cell(row['reuse_input_mask'])} "
                f"| {_signed(row['difference'])} |"
            )
    lines += ["", "## Per category, mIoU (%)", ""]
    for split in splits:
        lines += [f"**{split}**", "", "| category | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
        for category in results["categories"]:
            cells = [results["splits"][split][m]["per_category"].get(category) for m in models]
            lines.append(
                f"| {category} | " + " | ".join("-" if c is None else f"{c['value']:.1f}" for c in cells) + " |"
            )
        lines.append("")
    lines += [
        "## What the table shows",
        "",
        *what_it_shows(results),
        "",
        "![examples](examples.png)",
        "",
        f"Above: the most occluded held-out instances ({results['examples_per_split']} categories a split), "
        "completed by the best baseline and by A3D; each row: the input, the visible mask, the predicted amodal "
        "mask with its completed part in orange, the ground truth.",
        "",
        "Plots: " + ", ".join(f"[{p}]({p})" for p in plot_names(results)),
        "",
    ]
    return "\n".join(lines)


def provenance_line(results: dict[str, Any]) -> str:
    """The commit of this invocation and the commits every model was trained at."""
    trained = sorted(
        {run["commit"] for record in results["models"].values() for run in record.get("runs", []) if run.get("commit")}
    )
    dirty = " (with uncommitted changes)" if results.get("dirty") else ""
    return (
        f"Code: commit {results.get('commit')}{dirty}, source fingerprint {str(results.get('code'))[:12]}; "
        f"models trained at commit(s) {', '.join(trained) or 'none'} with the same source fingerprint "
        "(a rerun retrains what another code or settings made)."
    )


def what_it_shows(results: dict[str, Any]) -> list[str]:
    """Plain sentences, generated from the numbers, whichever way they come out."""
    sentences = []
    best = results.get("best_baseline")
    for name, differences in results["differences"].items():
        for split, by_metric in differences[best].items():
            interval = by_metric["miou"]
            sentences.append(
                f"- {split}: {name} minus {best} = {_signed(interval)} mIoU points: {name} is {_verdict(interval)}."
            )
    for name, diagnostics in results["diagnostics"].items():
        for label, row in diagnostics["novel_view"].items():
            sentences.append(
                f"- {name}, novel view at {label}: the mesh gives {row['mesh']['value']:.1f} IoU against "
                f"{row['reuse_input_mask']['value']:.1f} for reusing the input view's mask: the mesh is "
                f"{_verdict(row['difference'])}."
            )
    return sentences


def plot_names(results: dict[str, Any]) -> list[str]:
    names = [f"per_category_{split}.png" for split in results["splits"]]
    if results["diagnostics"]:
        names += ["viewpoint_error.png", "novel_view.png"]
    return names


def _triple(interval: dict[str, float] | None) -> tuple[float, float, float]:
    """``(value, low, high)`` of an interval, NaNs when there is none (a chart leaves it out)."""
    if interval is None:
        return (math.nan, math.nan, math.nan)
    return (interval["value"], interval["low"], interval["high"])


def write_plots(results: dict[str, Any], out: Path) -> None:
    """Per-category bars with intervals per split; viewpoint-error histogram; novel-view IoU against the step."""
    candidates = ("visible mask", results.get("best_baseline"), results["main_model"], *(m.name for m in CAMERA_MODELS))
    shown = [m for m in dict.fromkeys(candidates) if m in results["models"]]
    for split, by_model in results["splits"].items():
        series = {m: [_triple(by_model[m]["per_category"].get(c)) for c in results["categories"]] for m in shown}
        atomic_write_bytes(
            out / f"per_category_{split}.png",
            charts.grouped_bars(f"mIoU per category, {split}", results["categories"], series, y_label="IoU (%)"),
        )
    if not results["diagnostics"]:
        return
    samples = {
        name: np.concatenate([np.asarray(v) for v in d["angle_errors"].values()])
        for name, d in results["diagnostics"].items()
    }
    atomic_write_bytes(
        out / "viewpoint_error.png",
        charts.histogram("viewpoint error, all test splits", samples, np.arange(0, 181, 10), "degrees"),
    )
    labels = [step.label for step in DEFAULT_STEPS]
    series = {
        f"{name}: mesh": [_triple(d["novel_view"].get(label, {}).get("mesh")) for label in labels]
        for name, d in results["diagnostics"].items()
    }
    reference = next(iter(results["diagnostics"].values()))["novel_view"]
    series["reuse input mask"] = [_triple(reference.get(label, {}).get("reuse_input_mask")) for label in labels]
    atomic_write_bytes(
        out / "novel_view.png", charts.lines("novel-view IoU against the step", labels, series, y_label="IoU (%)")
    )


EXAMPLES_PER_SPLIT = 2
EXAMPLE_MIN_OCCLUSION = 0.4


def example_figure(
    data: Path, models: dict[str, AmodalShapeModel], splits: Sequence[str], device: torch.device
) -> bytes:
    """Panels (input | visible | predicted amodal, its completed part in orange | ground truth), one
    row per model, for the most occluded instance of the first categories of each held-out split.
    Each model predicts in eval mode and is left in the mode it was in."""
    import imageio.v3 as iio

    from a3d_core.io.panels import figure_of_rows, instance_row

    rows = []
    for split in splits:
        dataset = open_split(data, split)
        rates = load_split_arrays(data, split, ["occlusion_rate"])[1]["occlusion_rate"]  # the items' order, unframed
        picks, categories = [], set()
        for i in np.argsort(-rates, kind="stable"):
            category = int(dataset.category_index[i])
            if category not in categories and rates[i] >= EXAMPLE_MIN_OCCLUSION:
                picks.append(int(i))
                categories.add(category)
            if len(picks) == EXAMPLES_PER_SPLIT:
                break
        if not picks:
            continue
        items = [dataset[i] for i in picks]
        keys = [key for key in ("rgb", "visible", "amodal", "occluder") if key in items[0]]
        batch = {key: torch.stack([item[key] for item in items]).to(device) for key in keys}
        for k, item in enumerate(items):
            pixels = (item["rgb"].permute(1, 2, 0) * 255).round().byte().numpy()
            name = dataset.categories[int(dataset.category_index[picks[k]])]
            for model_name, model in models.items():
                was_training = model.training
                model.eval()
                with torch.no_grad():
                    outputs = model({key: value[k : k + 1] for key, value in batch.items()})
                model.train(was_training)
                predicted = outputs["amodal_mask"][0].cpu().numpy()
                rows.append(
                    instance_row(
                        pixels,
                        item["visible"][0].numpy(),
                        predicted,
                        item["amodal"][0].numpy(),
                        f"{split} {name}: {model_name}",
                    )
                )
    if not rows:
        return iio.imwrite("<bytes>", np.zeros((8, 8, 3), np.uint8), extension=".png")
    return iio.imwrite("<bytes>", figure_of_rows(rows, ground_truth=True), extension=".png")
