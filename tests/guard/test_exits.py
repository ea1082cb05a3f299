"""No exit for a halted model, and the final model is always checked.

The trackers are transformers' real reporting callbacks (W&B in offline mode, MLflow on a local
`file:` store), which run before the guard in every event.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import pytest
from transformers import TrainerCallback

from distill_guard import DistillGuard, TrainingHalted
from distill_guard.drift.halt_record import HALT_RECORD_NAME
from distill_guard.export.audit import AuditLog
from distill_guard.quarantine import QUARANTINE_MARKER_NAME
from tests.guard.conftest import make_trainer
from tests.support.trackers import wandb_records

BASE = [0.10, 0.12, 0.11, 0.09]
HIGH = [0.40, 0.45, 0.42, 0.41]
KEEP_HALTED_CHECKPOINT = {"halt": {"action": "stop", "save_halted_checkpoint": True}}


def _events(out: Path, kind: str) -> list[dict]:
    return [e for e in AuditLog(out / "guard-audit.jsonl").read() if e["event"] == kind]


class StopAtEpochEnd(TrainerCallback):
    """Ends training from on_epoch_end; placed after the guard, the guard's own hooks never see it."""

    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_training_stop = True


# -- the final model is always checked -----------------------------------------------------------


def test_the_last_step_is_probed_when_max_steps_is_off_the_cadence(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    controlled_scores([BASE])
    trainer = make_trainer(
        tiny_checkpoint, tmp_path / "out", DistillGuard.from_policy(write_policy(every=2)), max_steps=5
    )
    trainer.train()
    assert [e["step"] for e in _events(tmp_path / "out", "probes")] == [2, 4, 5]


def test_a_breach_at_the_off_cadence_last_step_halts_with_record_and_no_checkpoint(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    controlled_scores([BASE, BASE, BASE, HIGH])  # baseline, step 2, step 4, step 5
    guard = DistillGuard.from_policy(write_policy(every=2))
    out = tmp_path / "out"
    trainer = make_trainer(tiny_checkpoint, out, guard, max_steps=5, save_strategy="steps", save_steps=2)
    with pytest.raises(TrainingHalted) as info:
        trainer.train()
    assert info.value.record.step == 5 and json.loads((out / HALT_RECORD_NAME).read_text())["step"] == 5
    assert (out / "checkpoint-4").is_dir() and not (out / "checkpoint-5").exists()  # the end-of-run save vetoed
    assert _events(out, "train_end")[0]["halted"] is True


def test_a_stop_no_guard_hook_saw_is_probed_at_train_end_and_can_still_halt(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    controlled_scores([BASE, HIGH])
    out = tmp_path / "out"
    # 32 rows, batch 4: 8 steps per epoch; the probe cadence (every 100) never comes.
    trainer = make_trainer(tiny_checkpoint, out, DistillGuard.from_policy(write_policy(every=100)), max_steps=-1)
    trainer.add_callback(StopAtEpochEnd())
    with pytest.raises(TrainingHalted) as info:
        trainer.train()
    assert info.value.record.step == trainer.state.global_step == 8
    assert "on_train_end" in [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert (out / HALT_RECORD_NAME).is_file() and [e["step"] for e in _events(out, "probes")] == [8]


# -- no exit for a halted model --------------------------------------------------------------------


def test_push_to_hub_refuses_after_a_halt(tiny_checkpoint, tmp_path, write_policy, controlled_scores):
    controlled_scores([BASE, HIGH])
    guard = DistillGuard.from_policy(write_policy(sections={"halt": {"action": "stop", "raise_on_train_end": False}}))
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=6)
    trainer.train()  # returns: the policy asked not to raise
    with pytest.raises(TrainingHalted) as info:
        trainer.push_to_hub()  # never reaches the Hub (no repo, no network): on_push_begin refuses first
    assert info.value.record.step == 2
    assert _events(tmp_path / "out", "push_refused")


def test_raise_false_still_saves_no_checkpoint_after_the_halt(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    controlled_scores([BASE, HIGH])
    guard = DistillGuard.from_policy(write_policy(sections={"halt": {"action": "stop", "raise_on_train_end": False}}))
    out = tmp_path / "out"
    trainer = make_trainer(tiny_checkpoint, out, guard, max_steps=6, save_strategy="steps", save_steps=2)
    trainer.train()
    assert guard.tripped and trainer.state.global_step == 2 and not (out / "checkpoint-2").exists()


# -- W&B (offline) ----------------------------------------------------------------------------------


def _wandb_model_aliases(wandb_dir: Path) -> list[str]:
    """Aliases of every model artifact the run logged: `base_model` (the architecture, at setup) and
    `final_model` (the trained weights, from WandbCallback.on_train_end under WANDB_LOG_MODEL=end)."""
    (run_file,) = wandb_dir.glob("wandb/offline-run-*/run-*.wandb")
    return [
        alias
        for r in wandb_records(run_file)
        if r.WhichOneof("record_type") == "artifact" and r.artifact.type == "model"
        for alias in r.artifact.aliases
    ]


@pytest.mark.parametrize("halts", [False, True], ids=["clean-run-uploads", "halted-run-does-not"])
def test_wandb_end_of_training_model_upload(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores, wandb_offline, halts
):
    import wandb

    controlled_scores([BASE, HIGH] if halts else [BASE])
    trainer = make_trainer(
        tiny_checkpoint, tmp_path / "out", DistillGuard.from_policy(write_policy()), max_steps=4, report_to=["wandb"]
    )
    if halts:
        with pytest.raises(TrainingHalted):
            trainer.train()
    else:
        trainer.train()
    wandb.finish(exit_code=1 if halts else 0)  # transformers leaves the run open
    wandb.teardown()  # waits for wandb's service process to write the whole run file
    aliases = _wandb_model_aliases(wandb_offline)
    assert "base_model" in aliases  # the callback ran and logged what it logs at setup
    assert ("final_model" in aliases) is not halts


# -- MLflow (local file store) ----------------------------------------------------------------------


def _logged_mlflow_models(uri: str) -> list[object]:
    import mlflow

    experiment = mlflow.get_experiment_by_name("distill-guard-tests")
    assert experiment is not None, "the MLflow callback never started a run"
    return mlflow.search_logged_models(experiment_ids=[experiment.experiment_id], output_format="list")


def _train_to_halt_at_step_4_with_mlflow(tiny_checkpoint: Path, out: Path, policy: Path) -> None:
    guard = DistillGuard.from_policy(policy)
    trainer = make_trainer(
        tiny_checkpoint, out, guard, max_steps=8, save_strategy="steps", save_steps=4, report_to=["mlflow"]
    )
    with pytest.raises(TrainingHalted):
        trainer.train()


def test_mlflow_logs_no_checkpoint_of_a_halted_run(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores, mlflow_store
):
    controlled_scores([BASE, BASE, HIGH])  # baseline, step 2, step 4 (the save step) trips
    _train_to_halt_at_step_4_with_mlflow(tiny_checkpoint, tmp_path / "out", write_policy())
    assert _logged_mlflow_models(mlflow_store) == []


@pytest.mark.slow
def test_mlflow_gets_a_halted_checkpoint_only_quarantined_when_the_policy_keeps_it(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores, mlflow_store
):
    controlled_scores([BASE, BASE, HIGH])
    _train_to_halt_at_step_4_with_mlflow(
        tiny_checkpoint, tmp_path / "out", write_policy(sections=KEEP_HALTED_CHECKPOINT)
    )
    (model,) = _logged_mlflow_models(mlflow_store)
    assert model.name == "checkpoint-4"
    uploaded = Path(model.artifact_location.removeprefix("file://"))
    markers = list(uploaded.rglob(QUARANTINE_MARKER_NAME))
    assert len(markers) == 1 and json.loads(markers[0].read_text())["step"] == 4


def test_a_checkpoint_saved_before_the_train_end_probe_halted_is_quarantined_and_its_card_corrected(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    """Attack: stop from a callback after the guard's on_epoch_end, so the epoch's checkpoint is saved
    (its card saying `halted: false`) before any guard hook probes; the train-end probe then halts."""
    from huggingface_hub import ModelCard

    from distill_guard.export.model_card import HALTED_BANNER

    controlled_scores([BASE, HIGH])
    out = tmp_path / "out"
    guard = DistillGuard.from_policy(write_policy(every=100))
    trainer = make_trainer(tiny_checkpoint, out, guard, max_steps=-1, save_strategy="epoch")
    trainer.add_callback(StopAtEpochEnd())
    with pytest.raises(TrainingHalted):
        trainer.train()
    saved = out / "checkpoint-8"
    assert (saved / QUARANTINE_MARKER_NAME).is_file()
    card = ModelCard.load(saved / "README.md")
    assert card.data.to_dict()["distill_guard"]["halted"] is True and card.text.startswith(HALTED_BANNER)
