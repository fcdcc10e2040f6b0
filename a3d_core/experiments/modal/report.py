"""The modal study's ``report.md``, from its ``results.json``."""

from __future__ import annotations

from typing import Any

from a3d_core.experiments.modal.specs import TEST_SETS

TEST_SET_NAMES = {
    "real": "real (held-out COCO images, synthetic erasers)",
    "scenes": "scenes (built-in scenes, completion protocol)",
    "library": "library (held-out built-in objects)",
}


def _cell(interval: dict[str, float] | None) -> str:
    if interval is None or interval["value"] != interval["value"]:
        return "-"
    return f"{interval['value']:.1f} [{interval['low']:.1f}, {interval['high']:.1f}]"


def report_markdown(results: dict[str, Any]) -> str:
    """``report.md``: the table of every model on every test set, the paired differences, what
    differs between the models, and where and by what code the results were made."""
    scale = results["scale"]
    lines = [
        f"# Completion learned from modal masks: scale `{scale['name']}`",
        "",
        f"`{results['command']}`; commit {results['commit']} (dirty: {results['dirty']}); "
        f"{results['seconds']:.0f} s in this process; machine: {results['machine']}.",
        "",
        "Every completer is class-agnostic and reads masks only, RGB = (visible, occluder, 0). mIoU and mIoU_occ "
        "(IoU of the hidden part, over the instances with one) in %, with 95% bootstrap intervals over test IMAGES "
        "(library: test objects) and training seeds. Test sets:",
        "",
    ]
    for test_set in TEST_SETS:
        first = next(iter(results["test_sets"][test_set].values()))
        lines.append(f"- {TEST_SET_NAMES[test_set]}: {first['instances']} instances, {first['units']} units")
    header = " | ".join(f"{t}: mIoU | {t}: mIoU_occ" for t in TEST_SETS)
    lines += ["", f"| completer | trained on | seeds | {header} |", "|---|---|---:|" + "---:|" * 2 * len(TEST_SETS)]
    for name, model in results["models"].items():
        cells = []
        for test_set in TEST_SETS:
            metrics = results["test_sets"][test_set][name]
            cells += [_cell(metrics["miou"]), _cell(metrics["hidden_miou"])]
        lines.append(f"| {model['kind']} | {model['source'] or '-'} | {len(model['runs'])} | {' | '.join(cells)} |")
    lines += [
        "",
        "## Paired differences (percentage points; paired by instance and seed index)",
        "",
        "| completer | difference | test set | mIoU | mIoU_occ |",
        "|---|---|---|---:|---:|",
    ]
    for difference in results["differences"]:
        lines.append(
            f"| {difference['kind']} | {difference['first']} - {difference['second']} | {difference['test_set']} | "
            f"{_cell(difference['miou'])} | {_cell(difference['hidden_miou'])} |"
        )
    lines += [
        "",
        "## What differs between the models",
        "",
        f"Every trained model: {scale['instances']} training instances in batches of {scale['batch_size']}, "
        f"Adam {scale['lr']}, flips, {scale['image_size']} px, no cross-view, the checkpoint chosen on its own "
        "source's val mIoU.",
        "",
        "| model | parameters | optimizer steps | instances | training s (all seeds) | best val mIoU per seed |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, model in results["models"].items():
        runs = model["runs"]
        vals = ", ".join("-" if r["val_miou"] is None else f"{100 * r['val_miou']:.1f}" for r in runs)
        lines.append(
            f"| {name} | {model['parameters']:,} | {runs[0]['steps']} | {runs[0]['instances']} | "
            f"{model['seconds']:.0f} | {vals or '-'} |"
        )
    return "\n".join(lines) + "\n"
