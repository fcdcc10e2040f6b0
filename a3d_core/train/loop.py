"""One training loop for every model that follows torchvision's contract.

In training mode the model maps a batch to a dict of already-weighted scalar losses; the loop
minimises their sum with Adam (paper: lr 1e-4, batch 64). It is shared by ``a3d pretrain``
(stage 2 on single objects) and ``a3d finetune``.

What the loop guarantees:

* Seeded: the data order of epoch ``e`` is a permutation drawn from ``seed + e``
  (:class:`~a3d_core.train.distributed.ShardedBatches`), the model's own randomness comes from
  the global generators, seeded with ``seed + rank`` at the start of a run.
* Resumable: ``resume=True`` restores model, optimizer, scheduler, gradient scaler, generators
  and the partial logging window from ``<out>/last.pt`` and skips the batches already seen, so
  the result equals an uninterrupted run. This holds when each dataset item is a function of
  its index and of the epoch (per-epoch randomness goes through ``dataset.set_epoch(epoch)`` or
  ``dataset.epoch``, which the loop sets) and, in a distributed run, when the number of processes is unchanged.
* Stops with :class:`~a3d_core.errors.TrainingError` naming the step and the loss term as soon
  as a loss is not finite.
* Mixed precision (bf16 or fp16 autocast, a GradScaler for fp16) on CUDA only.
* Gradient-norm clipping, optional linear warm-up and cosine decay of the learning rate.
* Validation through a passed-in function every ``val_every`` steps and at the end, without
  touching the training generators; a checkpoint follows every validation, ``best.pt`` keeps
  the best one.
* Metrics as JSONL (``<out>/metrics.jsonl``) and TensorBoard when installed; progress (the
  step, the loss, the latest value of the validation metric, instances per second) reported to
  a passed-in :class:`~a3d_core.progress.ProgressReporter` (the CLI draws a bar or prints lines).
* Runs under ``torchrun`` (see :mod:`a3d_core.train.distributed`); only rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from a3d_core.errors import InputError, TrainingError, describe_config_difference
from a3d_core.progress import SILENT, ProgressReporter
from a3d_core.runtime import move_to_device, resolve_device, seed_everything
from a3d_core.train.checkpoint import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
)
from a3d_core.train.distributed import (
    DistributedContext,
    ShardedBatches,
    all_gather_objects,
    all_reduce_mean,
    barrier,
    set_dataset_epoch,
    wrap_model,
)
from a3d_core.train.metrics_log import METRICS_FILE, TENSORBOARD_DIR, JsonlMetrics, open_tensorboard
from a3d_core.train.rng import capture_rng_state, isolated_rng, restore_rng_state

ValidateFn = Callable[[nn.Module], Mapping[str, float]]
"""Called with the unwrapped model in eval mode; returns metrics such as ``{"miou": 0.8}``."""

LR_SCHEDULES = ("constant", "cosine")
AMP_MODES = ("off", "bf16", "fp16")

RESUME_INVARIANTS = ("seed", "batch_size", "lr", "weight_decay", "grad_clip_norm", "lr_schedule", "warmup_steps", "amp")
"""Settings that shape the trajectory: resuming with another value would not continue the run."""


@dataclass
class TrainSettings:
    """How to train.

    Attributes:
        lr: Adam learning rate (paper: 1e-4).
        lr_scales: parameter-name prefix -> multiplier of ``lr`` for the parameters under it
            (the longest matching prefix wins), e.g. ``{"stage1.": 10.0}`` for a detector that
            starts from scratch beside a pretrained stage 2.
        batch_size: instances per optimizer step, over all processes together (paper: 64).
        epochs: passes over the training set; leave ``None`` when ``steps`` is given.
        steps: optimizer steps; overrides nothing, set it with ``epochs=None``.
        weight_decay: Adam's L2 penalty.
        grad_clip_norm: clip the global gradient norm to this value; ``None`` turns clipping off.
        lr_schedule: ``"constant"`` or ``"cosine"`` (decay to 0 at the last step).
        warmup_steps: linear warm-up from ``lr / warmup_steps`` to ``lr``.
        amp: mixed precision on CUDA: ``"bf16"``, ``"fp16"`` (with a GradScaler) or ``"off"``;
            always off on CPU.
        seed: seeds data order and the model's randomness.
        workers: DataLoader worker processes.
        log_every: write a train record (losses averaged over the window) every this many steps.
        val_every: validate every this many steps (and at the end); ``None``: only at the end.
        checkpoint_every: write ``last.pt`` every this many steps (and after each validation,
            and at the end).
        best_metric: validation metric that selects ``best.pt`` (higher is better).
        progress: report progress to the reporter passed to :func:`train` (rank 0 only).
        tensorboard: also log to TensorBoard when ``torch.utils.tensorboard`` is importable.
    """

    lr: float = 1e-4
    lr_scales: dict[str, float] = field(default_factory=dict)
    batch_size: int = 64
    epochs: int | None = 1
    steps: int | None = None
    weight_decay: float = 0.0
    grad_clip_norm: float | None = 10.0
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    amp: str = "bf16"
    seed: int = 0
    workers: int = 0
    log_every: int = 10
    val_every: int | None = None
    checkpoint_every: int = 500
    best_metric: str = "miou"
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"TrainSettings.lr must be a positive finite number, got {self.lr}")
        if not all(
            isinstance(scale, (int, float)) and scale > 0 and math.isfinite(scale) for scale in self.lr_scales.values()
        ):
            raise ValueError(
                f"TrainSettings.lr_scales must map prefixes to positive finite numbers, got {self.lr_scales}"
            )
        if self.batch_size < 1:
            raise ValueError(f"TrainSettings.batch_size must be >= 1, got {self.batch_size}")
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("TrainSettings: set exactly one of epochs and steps")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"TrainSettings.epochs must be >= 1, got {self.epochs}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"TrainSettings.steps must be >= 1, got {self.steps}")
        if self.weight_decay < 0:
            raise ValueError(f"TrainSettings.weight_decay must be >= 0, got {self.weight_decay}")
        if self.grad_clip_norm is not None and not self.grad_clip_norm > 0:
            raise ValueError(f"TrainSettings.grad_clip_norm must be positive or None, got {self.grad_clip_norm}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"TrainSettings.lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"TrainSettings.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"TrainSettings.amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.workers < 0:
            raise ValueError(f"TrainSettings.workers must be >= 0, got {self.workers}")
        for name in ("log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainSettings.{name} must be >= 1, got {getattr(self, name)}")
        if self.val_every is not None and self.val_every < 1:
            raise ValueError(f"TrainSettings.val_every must be >= 1 or None, got {self.val_every}")
        if not self.best_metric:
            raise ValueError("TrainSettings.best_metric must name a validation metric")

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps of the whole run."""
        return self.steps if self.steps is not None else self.epochs * steps_per_epoch


@dataclass(frozen=True)
class TrainResult:
    """What a training run did.

    Attributes:
        start_step: the step the run started from (0, or the resumed checkpoint's step).
        steps: the last step taken (== total steps when the run completed).
        train_losses: the last logged train record's losses (``"loss"`` and ``"loss/<term>"``).
        validation: every validation of this invocation, each a dict with ``step`` and metrics.
        best_metric: the best value of ``TrainSettings.best_metric`` so far (``None`` without validation).
        best_step: the step of ``best_metric``.
        last_checkpoint, best_checkpoint: paths (``best_checkpoint`` is ``None`` without validation).
        seconds: wall time of this invocation.
    """

    start_step: int
    steps: int
    train_losses: dict[str, float]
    validation: list[dict[str, float]]
    best_metric: float | None
    best_step: int | None
    last_checkpoint: Path
    best_checkpoint: Path | None
    seconds: float


@dataclass
class _LossWindow:
    """Sums of the losses since the last train record (part of the checkpoint, for exact logs)."""

    sums: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    instances: int = 0
    seconds: float = 0.0

    def add(self, losses: Mapping[str, float], instances: int, seconds: float) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.steps += 1
        self.instances += instances
        self.seconds += seconds

    def means(self) -> dict[str, float]:
        return {name: total / self.steps for name, total in self.sums.items()}

    def instances_per_second(self) -> float:
        return self.instances / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _LoopState:
    """Counters carried across a resume."""

    window: _LossWindow = field(default_factory=_LossWindow)
    best_metric: float | None = None
    best_step: int | None = None
    latest_metrics: dict[str, float] = field(default_factory=dict)

    def record_validation(self, step: int, metrics: Mapping[str, float], best_metric: str) -> bool:
        """Keep ``metrics`` as the latest; returns whether ``best_metric`` improved (higher is better)."""
        self.latest_metrics = dict(metrics)
        if self.best_metric is not None and metrics[best_metric] <= self.best_metric:
            return False
        self.best_metric, self.best_step = metrics[best_metric], step
        return True

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": dataclasses.asdict(self.window),
            "best_metric": self.best_metric,
            "best_step": self.best_step,
            "latest_metrics": dict(self.latest_metrics),
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> _LoopState:
        return cls(
            window=_LossWindow(**state["window"]),
            best_metric=state["best_metric"],
            best_step=state["best_step"],
            latest_metrics=dict(state["latest_metrics"]),
        )


class _Precision:
    """Autocast dtype and gradient scaler for ``amp`` on ``device`` (full precision on CPU)."""

    def __init__(self, amp: str, device: torch.device) -> None:
        self.device_type = device.type
        self.dtype: torch.dtype | None = None
        if device.type == "cuda" and amp != "off":
            self.dtype = torch.bfloat16 if amp == "bf16" and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)


def parameter_groups(model: nn.Module, settings: TrainSettings) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: one per learning rate, ``lr`` times the scale of the
    longest ``settings.lr_scales`` prefix that names the parameter (1 when none does).

    Raises:
        ValueError: a prefix that names no trainable parameter (a typo would silently do nothing).
    """
    prefixes = sorted(settings.lr_scales, key=len, reverse=True)
    groups: dict[float, list[nn.Parameter]] = {}
    used = set()
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        prefix = next((prefix for prefix in prefixes if name.startswith(prefix)), None)
        used.add(prefix)
        groups.setdefault(settings.lr_scales[prefix] if prefix is not None else 1.0, []).append(parameter)
    unused = [prefix for prefix in prefixes if prefix not in used]
    if unused:
        raise ValueError(f"TrainSettings.lr_scales: no trainable parameter name starts with {unused}")
    return [{"params": params, "lr": settings.lr * scale} for scale, params in groups.items()]


def build_scheduler(
    optimizer: torch.optim.Optimizer, settings: TrainSettings, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_steps``, then constant or cosine decay to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        warmup = min(1.0, (step + 1) / settings.warmup_steps) if settings.warmup_steps else 1.0
        if settings.lr_schedule == "constant":
            return warmup
        progress = min(1.0, step / max(1, total_steps))
        return warmup * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train(
    model: nn.Module,
    dataset: Dataset,
    settings: TrainSettings,
    out_dir: str | Path,
    *,
    validate: ValidateFn | None = None,
    collate_fn: Callable[[list[Any]], Any] = default_collate,
    checkpoint_metadata: Mapping[str, Any] | None = None,
    run_config: Mapping[str, Any] | None = None,
    resume: bool = False,
    context: DistributedContext | None = None,
    progress: ProgressReporter = SILENT,
) -> TrainResult:
    """Train ``model`` on ``dataset``; write checkpoints and metrics under ``out_dir``.

    Args:
        model: in train mode ``model(batch)`` returns a dict of scalar loss tensors (summed);
            in eval mode whatever ``validate`` expects.
        dataset: map-style dataset; ``collate_fn`` turns a list of its items into a batch.
        settings: see :class:`TrainSettings`.
        out_dir: the run folder: ``last.pt``, ``best.pt``, ``metrics.jsonl``, ``tensorboard/``.
        validate: ``validate(model) -> metrics``; run on rank 0 with the model in eval mode.
        checkpoint_metadata: entries stored in every checkpoint (e.g. ``model_config``,
            ``category_names``); on resume each must equal the checkpoint's.
        run_config: the command's own configuration, stored as ``config`` beside the loop's.
        resume: continue from ``<out_dir>/last.pt``.
        context: process rank and device (default: one process on ``resolve_device("auto")``).
        progress: receives the phase ``train`` (steps, loss, latest validation metric, instances per
            second) when ``settings.progress``, on rank 0.

    Raises:
        InputError: resume without a checkpoint, or a fresh run into a folder that holds one.
        TrainingError: a non-finite loss; a checkpoint that does not fit the model or settings.
    """
    started = time.perf_counter()
    context = context or DistributedContext(device=resolve_device("auto"))
    out_dir = Path(out_dir)
    last_path, best_path = out_dir / LAST_CHECKPOINT, out_dir / BEST_CHECKPOINT
    batches = ShardedBatches(len(dataset), settings.batch_size, context, settings.seed)
    total_steps = settings.total_steps(batches.steps_per_epoch)
    run = _Run(model, settings, total_steps, context)
    if resume:
        start_step = run.restore(last_path, dict(checkpoint_metadata or {}))
    else:
        if last_path.exists():
            raise InputError(
                f"{out_dir}: holds a run already ({last_path.name}); pass --resume to continue it or choose another "
                "output folder"
            )
        seed_everything(settings.seed + context.rank)
        start_step = 0
    trained = wrap_model(run.module, context)
    sinks = _open_sinks(out_dir, start_step, settings.tensorboard) if context.is_main else []
    config = {"train": dataclasses.asdict(settings), **dict(run_config or {})}

    validations: list[dict[str, float]] = []
    last_losses: dict[str, float] = {}
    reporter = _TrainingReporter(
        progress if settings.progress and context.is_main else SILENT,
        settings.best_metric,
        run.state.latest_metrics.get(settings.best_metric),
    )
    reporter.start(total_steps, start_step)
    iterator = None
    step = start_step
    try:
        for step in range(start_step + 1, total_steps + 1):
            epoch, batch_in_epoch = divmod(step - 1, batches.steps_per_epoch)
            if iterator is None or batch_in_epoch == 0:
                iterator = iter(_epoch_loader(dataset, batches, epoch, batch_in_epoch, collate_fn, settings, context))
            step_started = time.perf_counter()
            losses = run.optimizer_step(trained, move_to_device(next(iterator), context.device), step)
            seconds = time.perf_counter() - step_started
            run.state.window.add(losses, settings.batch_size, seconds)
            reporter.advance(step, losses["loss"], instances_per_second=settings.batch_size / max(seconds, 1e-9))

            if step % settings.log_every == 0 or step == total_steps:
                last_losses = run.state.window.means()
                record = {
                    "step": step,
                    "split": "train",
                    "epoch": epoch,
                    **last_losses,
                    "lr": run.scheduler.get_last_lr()[0],
                }
                _append(sinks, {**record, "instances_per_s": run.state.window.instances_per_second()})
                run.state.window = _LossWindow()

            validates = validate is not None and (
                step == total_steps or (settings.val_every is not None and step % settings.val_every == 0)
            )
            improved = False
            if validates and context.is_main:
                metrics = _validate(validate, run.module, settings.best_metric)
                validations.append({"step": step, **metrics})
                _append(sinks, {"step": step, "split": "val", **metrics})
                reporter.show_validation(step, metrics[settings.best_metric])
                improved = run.state.record_validation(step, metrics, settings.best_metric)

            if validates or step % settings.checkpoint_every == 0 or step == total_steps:
                rng_by_rank = all_gather_objects(capture_rng_state(), context)
                if context.is_main:
                    checkpoint = run.checkpoint(step, epoch, rng_by_rank, dict(checkpoint_metadata or {}), config)
                    save_checkpoint(checkpoint, last_path)
                    if improved:
                        save_checkpoint(checkpoint, best_path)
        reporter.end()
    finally:
        for sink in sinks:
            sink.close()
    barrier(context)  # every process returns after rank 0 has written the last checkpoint

    return TrainResult(
        start_step=start_step,
        steps=max(step, start_step),
        train_losses=last_losses,
        validation=validations,
        best_metric=run.state.best_metric,
        best_step=run.state.best_step,
        last_checkpoint=last_path,
        best_checkpoint=best_path if run.state.best_step is not None else None,
        seconds=time.perf_counter() - started,
    )


class _Run:
    """The mutable parts of a training run: model, optimizer, scheduler, scaler and loop state."""

    def __init__(
        self, model: nn.Module, settings: TrainSettings, total_steps: int, context: DistributedContext
    ) -> None:
        self.settings = settings
        self.total_steps = total_steps
        self.context = context
        self.module = model.to(context.device)
        self.optimizer = torch.optim.Adam(
            parameter_groups(self.module, settings), lr=settings.lr, weight_decay=settings.weight_decay
        )
        self.scheduler = build_scheduler(self.optimizer, settings, total_steps)
        self.precision = _Precision(settings.amp, context.device)
        self.state = _LoopState()

    def restore(self, path: Path, metadata: Mapping[str, Any]) -> int:
        """Continue from the checkpoint at ``path``; returns its step."""
        checkpoint = load_checkpoint(path)
        _check_resumable(checkpoint, self.settings, metadata, self.total_steps, path)
        load_model_state(self.module, checkpoint, path)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.precision.scaler.load_state_dict(checkpoint["grad_scaler"])
        rng_by_rank = checkpoint.get("rng_by_rank")
        same_world = rng_by_rank is not None and len(rng_by_rank) == self.context.world_size
        restore_rng_state(rng_by_rank[self.context.rank] if same_world else checkpoint["rng"])
        self.state = _LoopState.from_dict(checkpoint["loop_state"])
        return int(checkpoint["step"])

    def checkpoint(
        self,
        step: int,
        epoch: int,
        rng_by_rank: list[dict[str, Any]],
        metadata: Mapping[str, Any],
        config: Mapping[str, Any],
    ) -> dict[str, Any]:
        """The checkpoint dict after ``step`` (layout in :mod:`a3d_core.train.checkpoint`)."""
        checkpoint = {
            **metadata,
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "grad_scaler": self.precision.scaler.state_dict(),
            "rng": rng_by_rank[0],
            "step": step,
            "epoch": epoch,
            "total_steps": self.total_steps,
            "config": dict(config),
            "metrics": dict(self.state.latest_metrics),
            "loop_state": self.state.as_dict(),
        }
        if self.context.is_distributed:
            checkpoint["rng_by_rank"] = rng_by_rank
        return checkpoint

    def optimizer_step(self, trained: nn.Module, batch: Any, step: int) -> dict[str, float]:
        """One step on ``batch``; returns ``{"loss": total, "loss/<term>": ...}`` averaged over processes.

        Raises:
            TrainingError: naming the step and the term, when a loss is not finite (before any update).
        """
        trained.train()
        with self.precision.autocast():
            losses = trained(batch)
        names, terms = _loss_terms(losses, step)
        total = torch.stack([term.float() for term in terms]).sum()
        reported = all_reduce_mean(
            torch.stack([total.detach()] + [term.detach().float() for term in terms]), self.context
        )
        values = reported.tolist()
        for name, value in sorted(zip(["total"] + names, values), key=lambda named: named[0] == "total"):
            if not math.isfinite(value):
                raise TrainingError(
                    f"step {step}: loss term {name!r} is {value} (not finite); training stopped before the update. "
                    "Lower --lr, keep gradient clipping on, or check the data"
                )
        scaler = self.precision.scaler
        self.optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        if self.settings.grad_clip_norm is not None:
            scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.settings.grad_clip_norm)
        scaler.step(self.optimizer)
        scaler.update()
        self.scheduler.step()
        return dict(zip(["loss"] + [f"loss/{name}" for name in names], values))


def _open_sinks(out_dir: Path, start_step: int, tensorboard: bool) -> list[Any]:
    """The JSONL file, cut back to ``start_step``, and TensorBoard when asked for and installed."""
    jsonl = JsonlMetrics(out_dir / METRICS_FILE)
    jsonl.rewind(start_step)
    sinks: list[Any] = [jsonl]
    writer = open_tensorboard(out_dir / TENSORBOARD_DIR, purge_step=start_step + 1) if tensorboard else None
    if writer is not None:
        sinks.append(writer)
    return sinks


def _append(sinks: list[Any], record: Mapping[str, Any]) -> None:
    for sink in sinks:
        sink.append(record)


def _check_resumable(
    checkpoint: Mapping[str, Any], settings: TrainSettings, metadata: Mapping[str, Any], total_steps: int, path: Path
) -> None:
    """Refuse a resume that could not continue the checkpoint's run."""
    for key, value in metadata.items():
        if key in checkpoint and checkpoint[key] != value:
            saved = checkpoint[key]
            if isinstance(saved, Mapping) and isinstance(value, Mapping):
                detail = describe_config_difference(saved, value)
            else:
                detail = f"{saved!r} -> {value!r}"
            raise TrainingError(f"{path}: checkpoint of another model or dataset ({key} differs: {detail})")
    if "loop_state" not in checkpoint or "grad_scaler" not in checkpoint:
        raise TrainingError(f"{path}: not a checkpoint of this training loop (no loop state); it cannot be resumed")
    saved_settings = checkpoint["config"].get("train", {})
    for name in RESUME_INVARIANTS:
        if name in saved_settings and saved_settings[name] != getattr(settings, name):
            raise TrainingError(
                f"{path}: the run used {name}={saved_settings[name]!r}, not {getattr(settings, name)!r}; "
                "resume with the same value to continue it"
            )
    if settings.lr_schedule == "cosine" and checkpoint.get("total_steps") != total_steps:
        raise TrainingError(
            f"{path}: the cosine schedule of the run spans {checkpoint.get('total_steps')} steps, not {total_steps}; "
            "resume with the same --epochs/--steps"
        )


def _epoch_loader(
    dataset: Dataset,
    batches: ShardedBatches,
    epoch: int,
    skip: int,
    collate_fn: Callable[[list[Any]], Any],
    settings: TrainSettings,
    context: DistributedContext,
) -> DataLoader:
    """The loader of ``epoch`` from batch ``skip`` on; worker seeds depend on (seed, epoch) only."""
    set_dataset_epoch(dataset, epoch)
    return DataLoader(
        dataset,
        batch_sampler=list(batches.epoch(epoch, skip)),
        collate_fn=collate_fn,
        num_workers=settings.workers,
        generator=torch.Generator().manual_seed(settings.seed * 1_000_003 + epoch),
        pin_memory=context.device.type == "cuda",
    )


def _loss_terms(losses: Any, step: int) -> tuple[list[str], list[torch.Tensor]]:
    if not isinstance(losses, Mapping) or not losses:
        raise TrainingError(
            f"step {step}: the model returned {type(losses).__name__} in training mode, expected a dict of scalar "
            "losses"
        )
    names, terms = [], []
    for name, term in losses.items():
        if not isinstance(term, torch.Tensor) or term.numel() != 1:
            raise TrainingError(f"step {step}: loss term {name!r} is not a scalar tensor")
        names.append(str(name))
        terms.append(term.reshape(()))
    return names, terms


def _validate(validate: ValidateFn, model: nn.Module, best_metric: str) -> dict[str, float]:
    """Run ``validate`` in eval mode, leaving the generators and the train mode as they were."""
    was_training = model.training
    model.eval()
    try:
        with isolated_rng(), torch.no_grad():
            metrics = {str(name): float(value) for name, value in validate(model).items()}
    finally:
        model.train(was_training)
    if best_metric not in metrics:
        raise TrainingError(
            f"validation returned {sorted(metrics)}, without the metric {best_metric!r} that selects best.pt"
        )
    return metrics


_METRIC_LABELS = {"miou": "mIoU", "ap": "AP"}


class _TrainingReporter:
    """Reports the phase ``train``: step M/N, loss, the latest value of the validation metric that
    selects ``best.pt`` (mIoU in pretraining, AP in fine-tuning) and instances per second."""

    def __init__(self, reporter: ProgressReporter, metric: str, latest: float | None) -> None:
        self.reporter = reporter
        self.metric_label = f"val {_METRIC_LABELS.get(metric, metric)}"
        self.metric = "-" if latest is None else f"{latest:.3f}"

    def start(self, total_steps: int, start_step: int) -> None:
        self.reporter.start("train", total_steps, done=start_step, unit="step")

    def advance(self, step: int, loss: float, instances_per_second: float) -> None:
        self.reporter.update(
            step, **{"loss": f"{loss:.4f}", self.metric_label: self.metric, "inst/s": f"{instances_per_second:.1f}"}
        )

    def show_validation(self, step: int, value: float) -> None:
        self.metric = f"{value:.3f}"
        self.reporter.update(step, **{self.metric_label: self.metric})

    def end(self) -> None:
        self.reporter.end()
