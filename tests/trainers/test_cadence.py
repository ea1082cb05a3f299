"""When probes run: every N optimizer steps (never inside a gradient-accumulation cycle), across epochs,
after evaluations when asked, and together with EarlyStoppingCallback and other callbacks' stop requests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import EarlyStoppingCallback, TrainerCallback

from distill_guard import TrainingHalted
from distill_guard.drift.halt_record import HALT_RECORD_NAME
from tests.support.controlled import controlled, planned_scores
from tests.support.policies import write_guard_policy

from .conftest import build_example, events, guard_of, probe_steps

PENDING_GRADS = {
    "path": str(Path(__file__).with_name("probes") / "pending_grads.yaml"),
    "threshold": {"max_score": 0.5},
}
FLAT = [0.10, 0.12, 0.11, 0.09]
RISEN = [0.40, 0.45, 0.42, 0.41]
EARLY_STOPPING_ARGS = {"eval_strategy": "steps", "eval_steps": 1, "metric_for_best_model": "eval_loss"}


class StopAtStep(TrainerCallback):
    """Another callback that ends training at a given optimizer step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def train_plain(tiny_checkpoint, tmp_path, policy: Path, rows, **args):
    trainer = build_example("trainer", tiny_checkpoint, policy, tmp_path / "out", tiny_checkpoint, **args)
    with planned_scores(rows):
        trainer.train()
    return trainer


def test_gradient_accumulation_counts_optimizer_steps_and_probes_outside_the_cycle(tiny_checkpoint, tmp_path):
    policy = write_guard_policy(tmp_path / "policy.yaml", [PENDING_GRADS], every=2)
    trainer = train_plain(tiny_checkpoint, tmp_path, policy, [FLAT], max_steps=4, gradient_accumulation_steps=3)
    assert trainer.state.global_step == 4
    reports = [r for e in events(tmp_path / "out", "probes") for r in e["reports"]]
    assert [r["step"] for r in reports] == [2, 4]
    assert [r["score"] for r in reports] == [0.0, 0.0]


def test_cadence_continues_across_epochs(tiny_checkpoint, tmp_path):
    policy = write_guard_policy(tmp_path / "policy.yaml", [controlled()], every=3)
    # 64 rows, batch 4, 4 micro-batches per step: 4 optimizer steps per epoch, 8 in two epochs.
    trainer = train_plain(tiny_checkpoint, tmp_path, policy, [FLAT], num_train_epochs=2, gradient_accumulation_steps=4)
    assert trainer.state.global_step == 8
    assert probe_steps(tmp_path / "out") == [3, 6]


def test_probes_also_follow_evaluations_when_the_policy_asks(tiny_checkpoint, tmp_path):
    policy = write_guard_policy(tmp_path / "policy.yaml", [controlled()], every=2, on_evaluate=True)
    train_plain(tiny_checkpoint, tmp_path, policy, [FLAT], max_steps=6, eval_strategy="steps", eval_steps=3)
    assert probe_steps(tmp_path / "out") == [2, 3, 4, 6]  # step 6 is probed once, not twice


def test_early_stopping_ends_the_run_without_a_halt(tiny_checkpoint, tmp_path):
    policy = write_guard_policy(tmp_path / "policy.yaml", [controlled()], every=1)
    trainer = build_example(
        "trainer", tiny_checkpoint, policy, tmp_path / "out", tiny_checkpoint, max_steps=10, **EARLY_STOPPING_ARGS
    )
    trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=1, early_stopping_threshold=100.0))
    with planned_scores([FLAT]):
        trainer.train()  # returns: stopping early is not a guard halt
    assert trainer.state.global_step == 2
    assert probe_steps(tmp_path / "out") == [1, 2]
    assert not guard_of(trainer).tripped and not (tmp_path / "out" / HALT_RECORD_NAME).exists()
    assert events(tmp_path / "out", "train_end")[0]["halted"] is False


def test_a_halt_on_the_step_early_stopping_also_stops_still_raises(tiny_checkpoint, tmp_path):
    policy = write_guard_policy(tmp_path / "policy.yaml", [controlled()], every=1)
    trainer = build_example(
        "trainer", tiny_checkpoint, policy, tmp_path / "out", tiny_checkpoint, max_steps=10, **EARLY_STOPPING_ARGS
    )
    trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=1, early_stopping_threshold=100.0))
    with planned_scores([FLAT, FLAT, RISEN]), pytest.raises(TrainingHalted) as info:
        trainer.train()
    assert info.value.record.step == trainer.state.global_step == 2


@pytest.mark.parametrize("guard_first", [True, False], ids=["guard-first", "guard-last"])
def test_another_callbacks_stop_request_is_kept(tiny_checkpoint, tmp_path, guard_first):
    policy = write_guard_policy(tmp_path / "policy.yaml", [controlled()], every=1)
    trainer = build_example("trainer", tiny_checkpoint, policy, tmp_path / "out", tiny_checkpoint, max_steps=10)
    guard = trainer.pop_callback(guard_of(trainer))
    for callback in (guard, StopAtStep(3)) if guard_first else (StopAtStep(3), guard):
        trainer.add_callback(callback)
    with planned_scores([FLAT]):
        trainer.train()
    assert trainer.state.global_step == 3
    assert probe_steps(tmp_path / "out") == [1, 2, 3] and not guard.tripped
