"""The two-stage study's report: ``results.json`` as markdown tables."""

from __future__ import annotations

from typing import Any

from a3d_core.experiments.twostage.specs import SPLITS


def _interval(entry: dict[str, float]) -> str:
    return f"{entry['value']:.1f} [{entry['low']:.1f}, {entry['high']:.1f}]"


def _per_seed(runs: list[dict[str, Any]], part: str, metric: str) -> str:
    values = [100 * run[part][metric] for run in runs if part in run]
    if not values:
        return "-"
    mean = sum(values) / len(values)
    return f"{mean:.1f}" if len(values) == 1 else f"{mean:.1f} ({min(values):.1f}-{max(values):.1f})"


def report_markdown(results: dict[str, Any]) -> str:
    """The report: setting, each model's completion and full-pipeline scores, paired differences, the choice."""
    settings, plan = results["settings"], results["settings"]["plan"]
    machine = results["machine"]
    lines = [
        "# Which stage 2 for the two-stage network: the demo's setting, chosen on val",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Code: commit {results['commit']} (dirty: {results['dirty']}), source fingerprint {results['code'][:12]}.",
        f"Machine: {machine['platform']}, {machine['cpus']} CPUs, torch {machine['torch']} with "
        f"{machine['torch_threads']} threads; {results['seconds'] / 60:.0f} min for this invocation "
        "(a rerun reuses finished runs and scores).",
        "",
        "## Setting",
        "",
        f"Every run is `a3d demo`'s training (`DemoPlan`): categories {', '.join(plan['categories'])}; stage 2 "
        f"pretrained {plan['pretrain_steps']} steps of {plan['pretrain_batch']} on {plan['objects_per_category']} "
        f"objects x {plan['views']} views per category at {plan['image_size']} px, then both stages fine-tuned "
        f"{plan['finetune_steps']} steps of {plan['finetune_batch']} scenes on {plan['train_scenes']} training scenes, "
        f"the checkpoint chosen by the full pipeline's AP on the val scenes. Only the stage-2 kind and the training "
        f"seed differ ({settings['seeds']} seeds per kind: 0..{settings['seeds'] - 1}). Val: "
        f"{results['images']['val']} scenes ({results['instances']['val']} instances) of the training data's "
        f"seed; test: {results['images']['test']} scenes ({results['instances']['test']} instances) of seed "
        f"{settings['test_seed']}, whose objects no run saw, scored once per model.",
        "",
        "Completion: stage 2 on the ground-truth boxes and visible masks (`a3d evaluate --protocol completion`); "
        "mIoU and mIoU_occ are means over instances, 95% intervals over images and seeds. Pipeline: stage-1 "
        "detections completed by stage 2 (amodal AP and mIoU, mean over seeds with the seeds' range).",
        "",
    ]
    for split in SPLITS:
        lines += [
            f"## {split}",
            "",
            "| model | completion mIoU | completion mIoU_occ | completion AP | pipeline AP | pipeline mIoU | "
            "pipeline's visible masks AP |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, model in results["models"].items():
            entry, runs = model[split], model[split]["per_seed"]
            lines.append(
                f"| {name} | {_interval(entry['miou'])} | {_interval(entry['hidden_miou'])} | "
                f"{_per_seed(runs, 'completion', 'AP')} | {_per_seed(runs, 'pipeline', 'AP')} | "
                f"{_per_seed(runs, 'pipeline', 'mIoU')} | {_per_seed(runs, 'pipeline_visible', 'AP')} |"
            )
        lines.append("")
    lines += [
        "## Paired differences (completion, points, 95% intervals over images and seeds)",
        "",
        "| difference | " + " | ".join(f"{split} mIoU | {split} mIoU_occ" for split in SPLITS) + " |",
        "|---|" + "---:|" * (2 * len(SPLITS)),
    ]
    for name, by_split in results["differences"].items():
        cells = [f"{_interval(by_split[s]['miou'])} | {_interval(by_split[s]['hidden_miou'])}" for s in SPLITS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Training", "", "| model | seed | pretrain s | finetune s | best step |"]
    lines.append("|---|---:|---:|---:|---:|")
    for name, model in results["models"].items():
        for run in model["runs"]:
            lines.append(
                f"| {name} | {run['seed']} | {run['pretrain_seconds']:.0f} | {run['finetune_seconds']:.0f} | "
                f"{run['best_step']} |"
            )
    val = results["models"][results["chosen"]]["val"]["miou"]
    lines += [
        "",
        "## Choice",
        "",
        f"Rule: the kind with the highest completion mIoU on val. Chosen: **{results['chosen']}** "
        f"({_interval(val)} on val). Its test scores above were not used for the choice.",
        "",
    ]
    return "\n".join(lines)
