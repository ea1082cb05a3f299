"""The guard inside a real Trainer: baseline, cadence, halt, warn, audit log, state, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill_guard import DistillGuard, PolicyError, TrainingHalted
from distill_guard.drift.halt_record import HALT_RECORD_NAME
from distill_guard.export.audit import AuditLog
from distill_guard.quarantine import QUARANTINE_MARKER_NAME
from tests.guard.conftest import make_trainer
from tests.support.controlled import controlled

FLAT = [[0.10, 0.12, 0.11, 0.09]]
RISING = [[0.10, 0.12, 0.11, 0.09], [0.10, 0.12, 0.11, 0.09], [0.40, 0.45, 0.42, 0.41]]


def _events(out: Path) -> list[dict]:
    return AuditLog(out / "guard-audit.jsonl").read()


def test_invalid_policy_fails_before_training(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: distill-guard/v1\nkind: GuardPolicy\nmetadata: {name: x}\nhalt: {action: pause}\n")
    with pytest.raises(PolicyError, match=r"bad.yaml:4:"):
        DistillGuard.from_policy(bad)


def test_guard_runs_in_trainer_and_audits_begin_steps_end(tiny_checkpoint, tmp_path, write_policy, controlled_scores):
    controlled_scores(FLAT)
    guard = DistillGuard.from_policy(write_policy(every=2))
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=6)
    trainer.train()
    events = _events(tmp_path / "out")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "train_begin" and kinds[-1] == "train_end"
    assert [e["step"] for e in events if e["event"] == "probes"] == [2, 4, 6]
    assert kinds.index("baseline") < kinds.index("probes")
    assert guard.halt_record is None and trainer.state.global_step == 6


def test_drift_past_threshold_halts_and_raises_with_record(tiny_checkpoint, tmp_path, write_policy, controlled_scores):
    controlled_scores(RISING)
    guard = DistillGuard.from_policy(write_policy(every=2))
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=10)
    with pytest.raises(TrainingHalted) as info:
        trainer.train()
    record = info.value.record
    assert trainer.state.global_step == 4  # baseline, step 2 flat, step 4 rises -> stop
    assert record.step == 4 and record.probe == "controlled" and record.action == "stop"
    assert record.baseline == pytest.approx(0.105) and record.score == pytest.approx(0.42)
    assert record.drift == pytest.approx(0.315) and record.z > 3
    assert record.weights_digest.startswith("sha256:")
    on_disk = json.loads((tmp_path / "out" / HALT_RECORD_NAME).read_text())
    assert on_disk["step"] == 4 and on_disk["threshold"]["max_increase"] == 0.05
    assert any(e["event"] == "halt" for e in _events(tmp_path / "out"))


def test_patience_needs_consecutive_breaches(tiny_checkpoint, tmp_path, write_policy, controlled_scores):
    base = [0.10, 0.12, 0.11, 0.09]
    high = [0.40, 0.45, 0.42, 0.41]
    controlled_scores([base, high, base, high, high])
    policy = write_policy([controlled({"max_increase": 0.05, "patience": 2})], every=1)
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", DistillGuard.from_policy(policy), max_steps=10)
    with pytest.raises(TrainingHalted) as info:
        trainer.train()
    assert info.value.record.step == 4


def test_insignificant_drift_never_halts(tiny_checkpoint, tmp_path, write_policy, controlled_scores):
    # Mean rises by 0.1 (over the limit) but the items disagree: z is about 0.6, far below 3.
    controlled_scores([[0.1, 0.1, 0.1, 0.1], [0.9, 0.0, 0.0, 0.0]])
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", DistillGuard.from_policy(write_policy()), max_steps=4)
    trainer.train()
    assert trainer.state.global_step == 4


def test_warn_action_records_but_never_stops(tiny_checkpoint, tmp_path, write_policy, controlled_scores):
    controlled_scores(RISING)
    guard = DistillGuard.from_policy(write_policy(halt="warn"))
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=6)
    trainer.train()
    assert trainer.state.global_step == 6 and not guard.tripped
    warnings = [e for e in _events(tmp_path / "out") if e["event"] == "breach_warning"]
    assert warnings and warnings[0]["record"]["action"] == "warn"


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_non_finite_probe_output_is_a_breach(tiny_checkpoint, tmp_path, write_policy, controlled_scores, bad):
    controlled_scores([[0.1, 0.1], [0.1, bad]])
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", DistillGuard.from_policy(write_policy()), max_steps=6)
    with pytest.raises(TrainingHalted) as info:
        trainer.train()
    assert "NaN or infinite" in info.value.record.reasons[0] and info.value.record.score is None


def test_probe_that_raises_stops_under_strict(tiny_checkpoint, tmp_path, write_policy, controlled_scores):
    controlled_scores([[0.1, 0.1], "raise"])
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", DistillGuard.from_policy(write_policy()), max_steps=6)
    with pytest.raises(TrainingHalted) as info:
        trainer.train()
    assert "controlled probe failure" in info.value.record.reasons[0]
    assert trainer.state.global_step == 2


def test_probe_that_raises_only_warns_under_audit(tiny_checkpoint, tmp_path, write_policy, controlled_scores):
    controlled_scores([[0.1, 0.1], "raise"])
    guard = DistillGuard.from_policy(write_policy(halt="warn"))
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=4)
    trainer.train()
    assert trainer.state.global_step == 4
    assert any(
        "controlled probe failure" in e["record"]["reasons"][0]
        for e in _events(tmp_path / "out")
        if e["event"] == "breach_warning"
    )


def test_baseline_failure_refuses_to_train(tiny_checkpoint, tmp_path, write_policy, controlled_scores):
    controlled_scores(["raise"])
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", DistillGuard.from_policy(write_policy()), max_steps=4)
    with pytest.raises(Exception, match="baseline of probe 'controlled' failed"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_raise_on_train_end_false_returns_normally_but_stops(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    controlled_scores(RISING)
    policy = write_policy(sections={"halt": {"action": "stop", "raise_on_train_end": False}})
    guard = DistillGuard.from_policy(policy)
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=10)
    trainer.train()
    assert trainer.state.global_step == 4 and guard.tripped


def test_no_checkpoint_is_saved_after_a_halt_by_default(tiny_checkpoint, tmp_path, write_policy, controlled_scores):
    controlled_scores(RISING)
    guard = DistillGuard.from_policy(write_policy())
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=10, save_strategy="steps", save_steps=2)
    with pytest.raises(TrainingHalted):
        trainer.train()
    assert (tmp_path / "out" / "checkpoint-2").is_dir() and not (tmp_path / "out" / "checkpoint-4").exists()


def test_a_kept_halted_checkpoint_is_quarantined(tiny_checkpoint, tmp_path, write_policy, controlled_scores):
    controlled_scores(RISING)
    guard = DistillGuard.from_policy(
        write_policy(sections={"halt": {"action": "stop", "save_halted_checkpoint": True}})
    )
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=10, save_strategy="steps", save_steps=2)
    with pytest.raises(TrainingHalted):
        trainer.train()
    assert not (tmp_path / "out" / "checkpoint-2" / QUARANTINE_MARKER_NAME).exists()
    marker = json.loads((tmp_path / "out" / "checkpoint-4" / QUARANTINE_MARKER_NAME).read_text())
    assert marker["quarantined"] and marker["step"] == 4
    assert (tmp_path / "out" / "checkpoint-4" / "model.safetensors").is_file()  # the weights were saved


def test_builtin_probe_runs_in_trainer_with_noise_calibration(tiny_checkpoint, tmp_path, write_policy):
    policy = write_policy(
        [{"use": "builtin:animal-preference", "target": "owl", "threshold": {"max_increase": 0.5}}],
        every=2,
        calibrate_noise=True,
    )
    guard = DistillGuard.from_policy(policy)
    make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=2).train()
    baseline = next(e for e in _events(tmp_path / "out") if e["event"] == "baseline")
    scores = baseline["result"]["item_scores"]
    assert baseline["probe"] == "animal-preference-owl" and len(scores) >= 50
    assert all(0.0 < s < 1.0 for s in scores)
    assert 0.0 <= baseline["noise_floor"] < 1e-3  # batch layout changes the scores by float noise only
    assert [r.probe for r in guard.monitor.history] == ["animal-preference-owl"]
