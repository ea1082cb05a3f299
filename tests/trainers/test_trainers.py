"""The guard on every trainer a user brings: transformers Trainer, TRL SFT, DPO and distillation.

Each example script under integrations/examples/ is trained on tiny local models with the controlled
probe planned to rise at the second evaluation: the gate runs, probes run every 2 optimizer steps,
metrics reach the exporter and the trainer's TensorBoard log, and the breach halts training with
TrainingHalted.
"""

from __future__ import annotations

import pytest

from distill_guard import ProvenanceDenied, TrainingHalted
from distill_guard.drift.halt_record import HALT_RECORD_NAME
from distill_guard.policy.dataset_manifest import Generator
from tests.support.controlled import controlled, planned_scores
from tests.support.policies import write_guard_policy
from tests.support.trackers import tensorboard_scalars

from .conftest import (
    TRAINERS,
    GuardedRun,
    build_example,
    events,
    guard_of,
    probe_steps,
    read_metrics,
    run_example,
)

FLAT = [0.10, 0.12, 0.11, 0.09]
RISEN = [0.40, 0.45, 0.42, 0.41]
KNOWN_LINEAGE = {
    "student": {"base_model": "distill-guard/tiny-base"},
    "families": [
        {"name": "tiny-llama-demo", "match": ["distill-guard/tiny-*"]},
        {"name": "other-lab", "match": ["other-lab/*"]},
    ],
}


@pytest.fixture(scope="module", params=TRAINERS)
def breached_run(request, tiny_checkpoint, teacher_checkpoint, tmp_path_factory) -> GuardedRun:
    """Baseline and step 2 flat, step 4 risen: the guard must stop the run at step 4 of 10."""
    workdir = tmp_path_factory.mktemp(request.param)
    rows = [FLAT, FLAT, RISEN]
    return run_example(
        request.param, tiny_checkpoint, teacher_checkpoint, workdir, rows, max_steps=10, report_to=["tensorboard"]
    )


def test_gate_decides_before_the_baseline(breached_run):
    kinds = [e["event"] for e in events(breached_run.out)]
    decision = events(breached_run.out, "provenance_decision")[0]
    assert decision["moment"] == "train_begin" and decision["decision"]["outcome"] == "warn"
    assert decision["decision"]["rules"][0]["id"] == "dataset-not-cleared"
    assert kinds.index("provenance_decision") < kinds.index("baseline") < kinds.index("probes")


def test_probes_run_every_two_optimizer_steps_until_the_halt(breached_run):
    assert probe_steps(breached_run.out) == [2, 4]


def test_breach_halts_at_the_step_it_was_seen(breached_run):
    assert isinstance(breached_run.error, TrainingHalted)
    assert breached_run.error.record.step == breached_run.trainer.state.global_step == 4
    assert (breached_run.out / HALT_RECORD_NAME).is_file()


def test_metrics_reach_the_exporter(breached_run):
    metrics = read_metrics(breached_run.metrics_file)
    labels = "probe=controlled,trait=owl"
    assert metrics[f"distill_guard_probe_baseline{{{labels}}}"] == pytest.approx(0.105)
    assert metrics[f"distill_guard_probe_score{{{labels}}}"] == pytest.approx(0.42)
    assert metrics[f"distill_guard_threshold_breaches_total{{{labels}}}"] == 1
    assert metrics["distill_guard_provenance_decisions_total{decision=warn,rule=dataset-not-cleared}"] == 1
    assert metrics["distill_guard_halted{}"] == 1 and metrics["distill_guard_training_step{}"] == 4


def test_the_guards_numbers_reach_the_trainers_tensorboard_log(breached_run):
    """The examples attach the guard, so its numbers go through the trainer's log to every report_to tracker."""
    scalars = tensorboard_scalars(breached_run.out)
    assert [step for step, _ in scalars["train/distill_guard/controlled/score"]] == [0, 2, 4]
    assert scalars["train/distill_guard/controlled/breach"][-1] == (4, 1.0)
    assert scalars["train/distill_guard/halted"][-1] == (4, 1.0)


@pytest.mark.parametrize("name", TRAINERS)
def test_unknown_provenance_is_refused_before_the_first_step(name, tiny_checkpoint, teacher_checkpoint, tmp_path):
    policy = write_guard_policy(tmp_path / "policy.yaml", name="test-policy", unknown="deny")
    trainer = build_example(name, tiny_checkpoint, policy, tmp_path / "out", teacher_checkpoint, max_steps=4)
    with pytest.raises(ProvenanceDenied, match="never cleared"):
        trainer.train()
    assert trainer.state.global_step == 0
    assert not events(tmp_path / "out", "baseline")


@pytest.mark.parametrize("name", TRAINERS)
def test_data_cleared_after_the_trainer_is_built_passes_a_fail_closed_gate(
    name, tiny_checkpoint, teacher_checkpoint, tmp_path, make_manifest
):
    """The documented path for trainers that transform data in __init__: clear `trainer.train_dataset`.

    The manifest lists the very rows the trainer holds (the gate binds a clearance to the files' rows);
    the unsigned teacher claim is trusted by opt-in, as this test is about the trainer wiring.
    """
    sections = {**KNOWN_LINEAGE, "provenance": {"unknown": "deny", "trust_unsigned_claims": True}}
    policy = write_guard_policy(tmp_path / "policy.yaml", [controlled()], sections=sections)
    trainer = build_example(name, tiny_checkpoint, policy, tmp_path / "out", teacher_checkpoint, max_steps=2)
    data = tmp_path / "data" / "train.jsonl"
    trainer.train_dataset.to_json(str(data))
    manifest = make_manifest([data], [Generator(model="other-lab/teacher-7b")])
    guard_of(trainer).clear_dataset(trainer.train_dataset, manifest)
    with planned_scores([FLAT]):
        trainer.train()
    assert trainer.state.global_step == 2
    decision = events(tmp_path / "out", "provenance_decision")[-1]
    assert decision["moment"] == "train_begin" and decision["decision"]["outcome"] == "allow"
