"""The guard's numbers reach every `report_to` tracker, through transformers' real reporting callbacks.

TensorBoard's event file, MLflow's local `file:` store and W&B's offline run file are read back;
nothing is mocked.
"""

from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families
from transformers import TrainerCallback

from distill_guard import DistillGuard, ProvenanceDenied, TrainingHalted
from distill_guard.errors import DistillGuardError
from tests.guard.conftest import make_trainer
from tests.support.trackers import mlflow_metrics, tensorboard_scalars, wandb_history

BASE = [0.10, 0.12, 0.11, 0.09]
HIGH = [0.40, 0.45, 0.42, 0.41]
PROBE = "distill_guard/controlled"


def _train_to_halt_at_step_4(tiny_checkpoint, out, policy, report_to: list[str], *, attach: bool = True) -> None:
    guard = DistillGuard.from_policy(policy)
    trainer = make_trainer(tiny_checkpoint, out, guard, max_steps=8, logging_steps=2, report_to=report_to)
    if attach:
        guard.attach(trainer)
    with pytest.raises(TrainingHalted):
        trainer.train()


def test_an_attached_guard_writes_its_numbers_into_the_tensorboard_event_file(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    controlled_scores([BASE, BASE, HIGH])  # baseline, step 2, step 4 trips
    _train_to_halt_at_step_4(tiny_checkpoint, tmp_path / "out", write_policy(), ["tensorboard"])
    scalars = tensorboard_scalars(tmp_path / "out")
    tag = f"train/{PROBE}"  # transformers prefixes every training log with train/ in TensorBoard
    assert [step for step, _ in scalars[f"{tag}/score"]] == [0, 2, 4]
    assert [value for _, value in scalars[f"{tag}/score"]] == pytest.approx([0.105, 0.105, 0.42])
    assert [value for _, value in scalars[f"{tag}/baseline"]] == pytest.approx([0.105] * 3)
    assert [value for _, value in scalars[f"{tag}/drift"]] == pytest.approx([0.0, 0.0, 0.315])
    assert scalars[f"{tag}/breach"] == [(0, 0.0), (2, 0.0), (4, 1.0)]
    (step_2, bound_2), (step_4, bound_4) = scalars[f"{tag}/lower_bound"]  # the decision statistic
    assert (step_2, step_4) == (2, 4) and bound_2 < 0.05 < bound_4
    assert scalars[f"{tag}/threshold"] == [(2, pytest.approx(0.155)), (4, pytest.approx(0.155))]
    assert scalars["train/distill_guard/halted"][-1] == (4, 1.0)
    assert all(value == 0.0 for step, value in scalars["train/distill_guard/halted"] if step < 4)
    assert scalars["train/distill_guard/provenance/warn"] == [(0, 1.0)]  # data never cleared, policy warns
    assert scalars["train/distill_guard/provenance/deny"] == [(0, 0.0)]
    # A probe step that is also a logging step still logs the Trainer's own loss (step 4 halts first).
    assert [step for step, _ in scalars["train/loss"]] == [2]


def test_an_attached_guard_logs_its_numbers_to_an_mlflow_file_store(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores, mlflow_store
):
    controlled_scores([BASE, BASE, HIGH])
    _train_to_halt_at_step_4(tiny_checkpoint, tmp_path / "out", write_policy(), ["mlflow"])
    metrics = mlflow_metrics("distill-guard-tests")
    assert [(s, round(v, 4)) for s, v in metrics[f"{PROBE}/score"]] == [(0, 0.105), (2, 0.105), (4, 0.42)]
    assert metrics[f"{PROBE}/breach"] == [(0, 0.0), (2, 0.0), (4, 1.0)]
    assert metrics["distill_guard/halted"][-1] == (4, 1.0)
    assert metrics["distill_guard/provenance/warn"] == [(0, 1.0)]
    assert [s for s, _ in metrics["loss"]] == [2]


def test_an_attached_guard_logs_its_numbers_to_an_offline_wandb_run(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores, wandb_offline
):
    import wandb

    controlled_scores([BASE, BASE, HIGH])
    _train_to_halt_at_step_4(tiny_checkpoint, tmp_path / "out", write_policy(), ["wandb"])
    wandb.finish(exit_code=1)  # transformers leaves the run open; this writes the whole run file
    wandb.teardown()
    rows = [row for row in wandb_history(wandb_offline) if f"train/{PROBE}/score" in row]
    assert [row["train/global_step"] for row in rows] == [0, 2, 4]
    assert [round(row[f"train/{PROBE}/score"], 4) for row in rows] == [0.105, 0.105, 0.42]
    assert rows[-1]["train/distill_guard/halted"] == 1


def test_a_plain_callback_says_that_tracker_logging_needs_attach(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores, caplog
):
    controlled_scores([BASE, BASE, HIGH])
    with caplog.at_level(logging.WARNING, logger="distill_guard"):
        _train_to_halt_at_step_4(tiny_checkpoint, tmp_path / "out", write_policy(), ["tensorboard"], attach=False)
    assert "guard.attach(trainer)" in caplog.text and "['tensorboard']" in caplog.text
    assert not [tag for tag in tensorboard_scalars(tmp_path / "out") if "distill_guard" in tag]


def test_attach_adds_the_guard_once_and_refuses_what_is_not_a_trainer(tiny_checkpoint, tmp_path, write_policy):
    guard = DistillGuard.from_policy(write_policy())
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard)
    assert guard.attach(trainer) is trainer
    assert [c for c in trainer.callback_handler.callbacks if isinstance(c, DistillGuard)] == [guard]
    with pytest.raises(DistillGuardError, match="needs a transformers Trainer"):
        guard.attach(object())  # type: ignore[arg-type]


class StopAtEpochEnd(TrainerCallback):
    """Ends training from on_epoch_end, after the guard's hooks: the guard probes the model in on_train_end."""

    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_training_stop = True


def test_a_probe_run_in_on_train_end_opens_no_second_tensorboard_file(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    """TensorBoardCallback closed its writer in its own on_train_end; logging then would start a new file."""
    controlled_scores([BASE, HIGH])
    guard = DistillGuard.from_policy(write_policy(every=100))
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=-1, report_to=["tensorboard"])
    trainer.add_callback(StopAtEpochEnd())
    with pytest.raises(TrainingHalted) as info:
        guard.attach(trainer).train()
    assert info.value.record.step == 8
    scalars = tensorboard_scalars(tmp_path / "out")  # exactly one event file
    assert scalars[f"train/{PROBE}/score"] == [(0, pytest.approx(0.105))]  # the step-8 look: audit log only


def test_a_denial_at_train_begin_reaches_the_tracker_before_the_error(tiny_checkpoint, tmp_path, write_policy):
    guard = DistillGuard.from_policy(write_policy(unknown="deny"))
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, report_to=["tensorboard"])
    with pytest.raises(ProvenanceDenied):
        guard.attach(trainer).train()
    scalars = tensorboard_scalars(tmp_path / "out")
    assert scalars["train/distill_guard/provenance/deny"] == [(0, 1.0)]
    assert f"train/{PROBE}/score" not in scalars  # refused before any baseline


class RejectsGuardKeys(TrainerCallback):
    """A tracker that refuses the guard's keys (a naming rule, a full disk): training must go on."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if any(key.startswith("distill_guard/") for key in logs or {}):
            raise OSError("tracker refused the write")


def test_a_failing_tracker_never_stops_training_and_is_counted(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    metrics_file = tmp_path / "guard.prom"
    guard = DistillGuard.from_policy(write_policy(every=2, metrics_file=metrics_file))
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=4, logging_steps=2)
    trainer.add_callback(RejectsGuardKeys())
    controlled_scores([BASE])
    guard.attach(trainer).train()
    assert trainer.state.global_step == 4
    assert [e["step"] for e in trainer.state.log_history if "loss" in e] == [2, 4]  # the Trainer's logs go on
    errors = {
        sample.labels["backend"]: sample.value
        for family in text_string_to_metric_families(metrics_file.read_text("utf-8"))
        for sample in family.samples
        if sample.name == "distill_guard_export_errors_total"
    }
    assert errors == {"trackers": 4.0}  # the decision, the baselines, steps 2 and 4
