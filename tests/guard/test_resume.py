"""Checkpoint state: a resumed run keeps its step-0 baseline and never silently resumes clean after a halt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import Trainer

from distill_guard import DistillGuard, TrainingHalted
from distill_guard.export.audit import AuditLog
from distill_guard.quarantine import QUARANTINE_MARKER_NAME
from tests.guard.conftest import make_trainer

BASE = [0.10, 0.12, 0.11, 0.09]
HIGH = [0.40, 0.45, 0.42, 0.41]
KEEP_HALTED_CHECKPOINT = {
    "halt": {"action": "stop", "save_halted_checkpoint": True}
}  # a halted run can only resume from one


def _resume(
    checkpoint: Path, out: Path, guard: DistillGuard, tiny: Path, max_steps: int, *, restore: bool = True
) -> Trainer:
    trainer = make_trainer(
        tiny,
        out,
        guard,
        max_steps=max_steps,
        save_strategy="steps",
        save_steps=2,
        restore_callback_states_from_checkpoint=restore,
    )
    trainer.train(resume_from_checkpoint=str(checkpoint))
    return trainer


def _run_until_halt_at_step_2(tiny: Path, out: Path, policy: Path, controlled_scores) -> None:
    controlled_scores([BASE, HIGH])
    first = make_trainer(tiny, out, DistillGuard.from_policy(policy), max_steps=8, save_strategy="steps", save_steps=2)
    with pytest.raises(TrainingHalted):
        first.train()


def test_resume_keeps_the_step_zero_baseline(tiny_checkpoint, tmp_path, write_policy, controlled_scores):
    out = tmp_path / "out"
    policy = write_policy(every=2)
    controlled_scores([BASE])
    first = make_trainer(
        tiny_checkpoint, out, DistillGuard.from_policy(policy), max_steps=4, save_strategy="steps", save_steps=2
    )
    first.train()
    # After resuming, scores that equal the original baseline must not breach; a re-baseline on a
    # drifted model would hide a real rise, so the second run sees HIGH from its first call on.
    controlled_scores([HIGH])
    resumed = DistillGuard.from_policy(policy)
    with pytest.raises(TrainingHalted) as info:
        _resume(out / "checkpoint-4", out, resumed, tiny_checkpoint, max_steps=8)
    assert info.value.record.step == 6
    assert info.value.record.baseline == pytest.approx(sum(BASE) / 4)
    baselines = [e for e in AuditLog(out / "guard-audit.jsonl").read() if e["event"] == "baseline"]
    assert len(baselines) == 1, "the resumed run must not take a new baseline"


def test_tripped_run_refuses_to_resume_without_the_flag(tiny_checkpoint, tmp_path, write_policy, controlled_scores):
    out, policy = tmp_path / "out", write_policy(every=2, sections=KEEP_HALTED_CHECKPOINT)
    _run_until_halt_at_step_2(tiny_checkpoint, out, policy, controlled_scores)
    assert (out / "checkpoint-2").is_dir()
    with pytest.raises(TrainingHalted) as info:
        _resume(out / "checkpoint-2", out, DistillGuard.from_policy(policy), tiny_checkpoint, max_steps=8)
    assert info.value.record.step == 2
    assert any(e["event"] == "resume_refused" for e in AuditLog(out / "guard-audit.jsonl").read())


def test_tripped_run_refuses_to_resume_even_without_restoring_callback_states(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    out, policy = tmp_path / "out", write_policy(every=2, sections=KEEP_HALTED_CHECKPOINT)
    _run_until_halt_at_step_2(tiny_checkpoint, out, policy, controlled_scores)
    controlled_scores([BASE])
    with pytest.raises(TrainingHalted) as info:
        _resume(out / "checkpoint-2", out, DistillGuard.from_policy(policy), tiny_checkpoint, 8, restore=False)
    assert info.value.record.step == 2
    assert len([e for e in AuditLog(out / "guard-audit.jsonl").read() if e["event"] == "baseline"]) == 1


def test_a_quarantine_marker_alone_refuses_the_resume(tiny_checkpoint, tmp_path, write_policy, controlled_scores):
    """A checkpoint whose trainer_state.json lost the halt record still carries its marker."""
    out, policy = tmp_path / "out", write_policy(every=2, sections=KEEP_HALTED_CHECKPOINT)
    _run_until_halt_at_step_2(tiny_checkpoint, out, policy, controlled_scores)
    state_file = out / "checkpoint-2" / "trainer_state.json"
    state = json.loads(state_file.read_text("utf-8"))
    state["stateful_callbacks"]["DistillGuard"]["attributes"]["saved_guard_state"]["halt_record"] = None
    state_file.write_text(json.dumps(state), "utf-8")
    assert (out / "checkpoint-2" / QUARANTINE_MARKER_NAME).is_file()
    controlled_scores([BASE])
    with pytest.raises(TrainingHalted):
        _resume(out / "checkpoint-2", out, DistillGuard.from_policy(policy), tiny_checkpoint, 8, restore=False)
    guard = DistillGuard.from_policy(policy, resume_after_halt=True)
    _resume(out / "checkpoint-2", out, guard, tiny_checkpoint, max_steps=6, restore=False)
    assert not guard.tripped


def test_tripped_run_resumes_only_when_the_user_says_so(tiny_checkpoint, tmp_path, write_policy, controlled_scores):
    out, policy = tmp_path / "out", write_policy(every=2, sections=KEEP_HALTED_CHECKPOINT)
    _run_until_halt_at_step_2(tiny_checkpoint, out, policy, controlled_scores)
    controlled_scores([BASE])
    guard = DistillGuard.from_policy(policy, resume_after_halt=True)
    _resume(out / "checkpoint-2", out, guard, tiny_checkpoint, max_steps=6)
    assert guard.halt_record is None and not guard.tripped
    acknowledged = [e for e in AuditLog(out / "guard-audit.jsonl").read() if e["event"] == "resume_after_halt"]
    assert acknowledged and acknowledged[0]["acknowledged_halt"]["step"] == 2


def test_the_users_guard_object_stays_in_use_after_restore(tiny_checkpoint, tmp_path, write_policy, controlled_scores):
    out = tmp_path / "out"
    policy = write_policy(every=2)
    controlled_scores([BASE])
    make_trainer(
        tiny_checkpoint, out, DistillGuard.from_policy(policy), max_steps=2, save_strategy="steps", save_steps=2
    ).train()
    guard = DistillGuard.from_policy(policy)
    trainer = _resume(out / "checkpoint-2", out, guard, tiny_checkpoint, max_steps=4)
    assert guard in trainer.callback_handler.callbacks
    assert [r.step for r in guard.monitor.history] == [2, 4]


def test_a_restore_adopts_the_guard_of_the_trainer_being_resumed_not_the_newest_of_its_policy(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    out = tmp_path / "out"
    policy = write_policy(every=2)
    controlled_scores([BASE])
    guard = DistillGuard.from_policy(policy)
    make_trainer(tiny_checkpoint, out, guard, max_steps=2, save_strategy="steps", save_steps=2).train()
    bystander = DistillGuard.from_policy(policy)  # same policy file, in no trainer
    trainer = _resume(out / "checkpoint-2", out, guard, tiny_checkpoint, max_steps=4)
    assert guard in trainer.callback_handler.callbacks and bystander not in trainer.callback_handler.callbacks
    assert [r.step for r in guard.monitor.history] == [2, 4]
    assert bystander.monitor.history == []


def test_a_new_run_started_from_a_quarantined_checkpoint_is_denied(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    """Attack: not a resume (which the halt record refuses) but a fresh run whose model is loaded from
    the halted run's kept checkpoint; the policy only warns on uncleared data, the marker still denies."""
    from distill_guard import ProvenanceDenied

    out = tmp_path / "out"
    policy = write_policy(every=2, sections=KEEP_HALTED_CHECKPOINT)
    _run_until_halt_at_step_2(tiny_checkpoint, out, policy, controlled_scores)
    halted = out / "checkpoint-2"
    assert (halted / QUARANTINE_MARKER_NAME).is_file()
    controlled_scores([BASE])
    fresh = make_trainer(halted, tmp_path / "again", DistillGuard.from_policy(policy), max_steps=2)
    with pytest.raises(ProvenanceDenied) as info:
        fresh.train()
    assert "quarantined-checkpoint" in [rule.id for rule in info.value.decision.rules]


def test_a_quarantined_checkpoint_whose_marker_was_deleted_is_still_denied_by_its_card(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    """Attack: delete distill-guard-quarantine.json, then start the new run; the card still says halted."""
    from distill_guard import ProvenanceDenied

    out = tmp_path / "out"
    policy = write_policy(every=2, sections=KEEP_HALTED_CHECKPOINT)
    _run_until_halt_at_step_2(tiny_checkpoint, out, policy, controlled_scores)
    halted = out / "checkpoint-2"
    (halted / QUARANTINE_MARKER_NAME).unlink()
    controlled_scores([BASE])
    fresh = make_trainer(halted, tmp_path / "again", DistillGuard.from_policy(policy), max_steps=2)
    with pytest.raises(ProvenanceDenied) as info:
        fresh.train()
    (rule,) = [rule for rule in info.value.decision.rules if rule.id == "quarantined-checkpoint"]
    assert rule.evidence == (str(halted / "README.md"),)
