"""The training loop: resume equivalence, seeding, non-finite losses, validation, metrics, checkpoints."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from a3d_core.errors import InputError, TrainingError
from a3d_core.eval.miou import paired_mask_iou
from a3d_core.train.checkpoint import load_checkpoint
from a3d_core.train.distributed import DistributedContext
from a3d_core.train.loop import TrainSettings, build_scheduler, parameter_groups, train
from a3d_core.train.metrics_log import JsonlMetrics
from tests.train.toys import ToyAmodalDataset, ToyAmodalModel

CPU = DistributedContext(device=torch.device("cpu"))


def settings(**overrides) -> TrainSettings:
    values = dict(
        lr=1e-2, batch_size=4, epochs=None, steps=8, log_every=1, checkpoint_every=4, progress=False, tensorboard=False
    )
    values.update(overrides)
    return TrainSettings(**values)


def toy_model(seed: int = 0, **kwargs) -> ToyAmodalModel:
    torch.manual_seed(seed)
    return ToyAmodalModel(["cube", "ball"], **kwargs)


def mean_iou(model) -> dict[str, float]:
    dataset = ToyAmodalDataset(objects=3, seed=7)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
    return {"miou": float(paired_mask_iou(model(batch)["amodal_mask"], batch["amodal"]).mean())}


def deterministic(records: list[dict]) -> list[dict]:
    return [{key: value for key, value in record.items() if key != "instances_per_s"} for record in records]


def assert_same_state(first: torch.nn.Module, second: torch.nn.Module) -> None:
    first_state, second_state = first.state_dict(), second.state_dict()
    assert first_state.keys() == second_state.keys()
    for key in first_state:
        assert torch.equal(first_state[key], second_state[key]), key


@pytest.mark.parametrize("log_every", [1, 3])
def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path, log_every):
    # 12 items, batch 4: 3 steps per epoch. Checkpoint at step 4 (epoch 1, mid-epoch), the
    # interruption in step 6 leaves a metrics record (step 5) newer than the checkpoint.
    dataset = ToyAmodalDataset(objects=6, views=2)
    run = settings(log_every=log_every)
    uninterrupted = toy_model()
    train(uninterrupted, dataset, run, tmp_path / "a", validate=mean_iou, context=CPU)

    interrupted = toy_model(interrupt_at_call=6)
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, dataset, run, tmp_path / "b", validate=mean_iou, context=CPU)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 4
    if log_every == 1:
        assert [record["step"] for record in JsonlMetrics(tmp_path / "b" / "metrics.jsonl").read()] == [1, 2, 3, 4, 5]

    resumed = toy_model(seed=123)  # other initial weights: all must come from the checkpoint
    result = train(resumed, dataset, run, tmp_path / "b", validate=mean_iou, resume=True, context=CPU)

    assert result.start_step == 4 and result.steps == 8
    assert_same_state(uninterrupted, resumed)
    first = deterministic(JsonlMetrics(tmp_path / "a" / "metrics.jsonl").read())
    second = deterministic(JsonlMetrics(tmp_path / "b" / "metrics.jsonl").read())
    assert first == second
    expected_train_steps = [1, 2, 3, 4, 5, 6, 7, 8] if log_every == 1 else [3, 6, 8]
    assert [record["step"] for record in first if record["split"] == "train"] == expected_train_steps
    saved_a = load_checkpoint(tmp_path / "a" / "last.pt")
    saved_b = load_checkpoint(tmp_path / "b" / "last.pt")
    for state_a, state_b in zip(saved_a["optimizer"]["state"].values(), saved_b["optimizer"]["state"].values()):
        assert torch.equal(state_a["exp_avg_sq"], state_b["exp_avg_sq"])


def test_the_same_seed_repeats_a_run_and_another_seed_does_not(tmp_path):
    dataset = ToyAmodalDataset()
    first, second, third = toy_model(), toy_model(), toy_model()
    train(first, dataset, settings(steps=3), tmp_path / "a", context=CPU)
    train(second, dataset, settings(steps=3), tmp_path / "b", context=CPU)
    train(third, dataset, settings(steps=3, seed=1), tmp_path / "c", context=CPU)
    assert_same_state(first, second)
    assert not torch.equal(first.body.weight, third.body.weight)


def test_validation_does_not_change_the_training_trajectory(tmp_path):
    dataset = ToyAmodalDataset()

    def validate_with_randomness(model):
        torch.rand(100)  # a validation that draws from the global generator
        return mean_iou(model)

    with_validation, without_validation = toy_model(), toy_model()
    train(
        with_validation,
        dataset,
        settings(steps=5, val_every=1),
        tmp_path / "a",
        validate=validate_with_randomness,
        context=CPU,
    )
    train(without_validation, dataset, settings(steps=5), tmp_path / "b", context=CPU)
    assert_same_state(with_validation, without_validation)


def test_validation_runs_every_val_every_steps_and_at_the_end_and_keeps_the_best(tmp_path):
    scores = iter([0.5, 0.9, 0.7])
    seen_modes = []

    def scripted(model):
        seen_modes.append(model.training)
        return {"miou": next(scores)}

    result = train(
        toy_model(),
        ToyAmodalDataset(),
        settings(steps=7, val_every=3, checkpoint_every=100),
        tmp_path,
        validate=scripted,
        context=CPU,
    )

    assert [entry["step"] for entry in result.validation] == [3, 6, 7]
    assert seen_modes == [False, False, False]
    assert result.best_step == 6 and result.best_metric == 0.9
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 6
    assert load_checkpoint(tmp_path / "best.pt")["metrics"] == {"miou": 0.9}
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 7
    validation_records = [r for r in JsonlMetrics(tmp_path / "metrics.jsonl").read() if r["split"] == "val"]
    assert [(r["step"], r["miou"]) for r in validation_records] == [(3, 0.5), (6, 0.9), (7, 0.7)]


def test_jsonl_records_hold_the_hand_computed_first_loss(tmp_path):
    dataset = ToyAmodalDataset()
    model = toy_model(dropout=0.0)
    before = copy.deepcopy(model).train()
    # The first global batch is DistributedSampler's permutation for seed 0, epoch 0.
    first_indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:4].tolist()
    batch = torch.utils.data.default_collate([dataset[i] for i in first_indices])
    with torch.no_grad():
        expected_mask = float(F.binary_cross_entropy_with_logits(before.logits(batch), batch["amodal"][:, 0]))
        expected_weights = float(0.01 * before.head.weight.pow(2).sum())

    train(model, dataset, settings(steps=5, log_every=2, lr=1e-3), tmp_path, context=CPU)

    records = JsonlMetrics(tmp_path / "metrics.jsonl").read()
    assert [r["step"] for r in records] == [2, 4, 5]
    assert [r["epoch"] for r in records] == [0, 1, 1]
    for record in records:
        assert record["split"] == "train" and record["lr"] == pytest.approx(1e-3)
        assert record["loss"] == pytest.approx(record["loss/mask"] + record["loss/weights"], rel=1e-6)
        assert record["instances_per_s"] > 0

    single = tmp_path / "single"
    train(toy_model(dropout=0.0), dataset, settings(steps=1), single, context=CPU)
    first = JsonlMetrics(single / "metrics.jsonl").read()[0]
    assert first["loss/mask"] == pytest.approx(expected_mask, rel=1e-6)
    assert first["loss/weights"] == pytest.approx(expected_weights, rel=1e-6)


def test_a_non_finite_loss_stops_with_the_step_and_the_term(tmp_path):
    model = toy_model(nan_at_call=3)
    with pytest.raises(TrainingError, match=r"step 3: loss term 'weights' is nan"):
        train(model, ToyAmodalDataset(), settings(steps=5, checkpoint_every=1), tmp_path, context=CPU)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2


def test_resuming_a_checkpoint_of_another_architecture_names_the_file(tmp_path):
    small = toy_model(hidden=4)
    train(
        small,
        ToyAmodalDataset(),
        settings(steps=1),
        tmp_path,
        checkpoint_metadata={"model_config": small.config()},
        context=CPU,
    )
    wider = toy_model(hidden=5)
    with pytest.raises(
        TrainingError,
        match=r"last\.pt: checkpoint of another model or dataset \(model_config differs: hidden: 4 -> 5\)",
    ):
        train(
            wider,
            ToyAmodalDataset(),
            settings(steps=2),
            tmp_path,
            checkpoint_metadata={"model_config": wider.config()},
            resume=True,
            context=CPU,
        )


def test_resuming_with_another_seed_or_batch_size_is_refused(tmp_path):
    train(toy_model(), ToyAmodalDataset(), settings(steps=1), tmp_path, context=CPU)
    with pytest.raises(TrainingError, match="seed=0, not 5"):
        train(toy_model(), ToyAmodalDataset(), settings(steps=2, seed=5), tmp_path, resume=True, context=CPU)
    with pytest.raises(TrainingError, match="batch_size=4, not 2"):
        train(toy_model(), ToyAmodalDataset(), settings(steps=2, batch_size=2), tmp_path, resume=True, context=CPU)


def test_a_fresh_run_never_overwrites_a_run_and_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(InputError, match="checkpoint not found"):
        train(toy_model(), ToyAmodalDataset(), settings(steps=1), tmp_path, resume=True, context=CPU)
    train(toy_model(), ToyAmodalDataset(), settings(steps=1), tmp_path, context=CPU)
    with pytest.raises(InputError, match="holds a run already"):
        train(toy_model(), ToyAmodalDataset(), settings(steps=1), tmp_path, context=CPU)


def test_a_dataset_smaller_than_a_batch_is_refused(tmp_path):
    with pytest.raises(InputError, match="fewer than one batch of 64"):
        train(toy_model(), ToyAmodalDataset(), settings(batch_size=64), tmp_path, context=CPU)


def test_training_lowers_the_loss(tmp_path):
    result_records = tmp_path / "metrics.jsonl"
    train(toy_model(dropout=0.0), ToyAmodalDataset(), settings(steps=60, log_every=10, lr=5e-2), tmp_path, context=CPU)
    losses = [record["loss"] for record in JsonlMetrics(result_records).read()]
    assert losses[-1] < 0.3 * losses[0]


def test_the_model_returning_no_loss_dict_is_a_training_error(tmp_path):
    class Broken(ToyAmodalModel):
        def forward(self, batch):
            return self.logits(batch).mean()

    with pytest.raises(TrainingError, match="expected a dict of scalar losses"):
        train(Broken(["cube"]), ToyAmodalDataset(), settings(steps=1), tmp_path, context=CPU)


def test_schedule_warms_up_linearly_then_decays_to_zero_with_cosine():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=1.0)
    scheduler = build_scheduler(optimizer, settings(lr=1.0, lr_schedule="cosine", warmup_steps=2), total_steps=4)
    rates = []
    for _ in range(5):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    # factor(s) = min(1, (s+1)/2) * (1 + cos(pi s / 4)) / 2
    assert rates == pytest.approx([0.5, 0.8535534, 0.5, 0.1464466, 0.0], abs=1e-6)


def test_lr_scales_give_each_prefix_its_rate_and_the_longest_prefix_wins():
    model = torch.nn.ModuleDict(
        {"stage1": torch.nn.Linear(2, 2), "stage2": torch.nn.ModuleDict({"head": torch.nn.Linear(2, 1)})}
    )
    model["stage1"].bias.requires_grad_(False)  # frozen parameters are left out
    groups = parameter_groups(model, settings(lr=0.1, lr_scales={"stage1.": 10.0, "stage2.head.bias": 0.5}))
    rates = {id(p): group["lr"] for group in groups for p in group["params"]}

    assert rates == pytest.approx(
        {
            id(model["stage1"].weight): 1.0,
            id(model["stage2"]["head"].weight): 0.1,
            id(model["stage2"]["head"].bias): 0.05,
        }
    )
    with pytest.raises(ValueError, match="no trainable parameter name starts with"):
        parameter_groups(model, settings(lr_scales={"stage3.": 2.0}))


def test_a_scaled_group_moves_its_parameters_further(tmp_path):
    def trained(lr_scales):
        torch.manual_seed(0)
        model = ToyAmodalModel(["cube"])
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        train(
            model,
            ToyAmodalDataset(),
            settings(steps=1, lr_scales=lr_scales),
            tmp_path / str(len(lr_scales)),
            context=CPU,
        )
        return {name: float((p.detach() - before[name]).abs().max()) for name, p in model.named_parameters()}

    plain, scaled = trained({}), trained({"": 4.0})
    # Adam's first step moves every parameter by about lr (sign of the gradient), whatever its size.
    moved = [name for name in plain if plain[name] > 0]
    assert moved and all(scaled[name] == pytest.approx(4 * plain[name], rel=1e-3) for name in moved)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"lr": 0.0}, "lr must be a positive"),
        ({"lr_scales": {"stage1.": 0.0}}, "lr_scales must map"),
        ({"epochs": 2, "steps": 3}, "exactly one of epochs and steps"),
        ({"steps": None, "epochs": None}, "exactly one of epochs and steps"),
        ({"amp": "fp8"}, "amp must be one of"),
        ({"grad_clip_norm": 0.0}, "grad_clip_norm must be positive"),
        ({"val_every": 0}, "val_every must be >= 1"),
    ],
)
def test_settings_are_validated(overrides, message):
    with pytest.raises(ValueError, match=message):
        settings(**overrides)
