"""One real halted run shared by the report and model-card tests: a tiny Llama under the guard,
probed every 2 steps and saved every 2, its controlled probe rising at step 4 (the policy keeps the
halted checkpoint, quarantined), so the run has a clean checkpoint and a quarantined one."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_guard import DistillGuard, TrainingHalted
from tests.guard.conftest import make_trainer
from tests.support.controlled import planned_scores
from tests.support.policies import write_guard_policy

BASE = [0.10, 0.12, 0.11, 0.09]
HIGH = [0.40, 0.45, 0.42, 0.41]
HALT_STEP = 4
DRIFT_LIMIT = 0.05  # the controlled suite's max_increase
KEEP_HALTED_CHECKPOINT = {"halt": {"action": "stop", "save_halted_checkpoint": True}}


@pytest.fixture(scope="package")  # one training run for every test of tests/report
def halted_run(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's output folder: audit log, halt record, checkpoint-2 (clean), checkpoint-4 (quarantined)."""
    root = tmp_path_factory.mktemp("halted-run")
    policy = write_guard_policy(root / "report-policy.yaml", every=2, sections=KEEP_HALTED_CHECKPOINT)
    out = root / "out"
    trainer = make_trainer(
        tiny_checkpoint, out, DistillGuard.from_policy(policy), max_steps=6, save_strategy="steps", save_steps=2
    )
    with planned_scores([BASE, BASE, HIGH]), pytest.raises(TrainingHalted):
        trainer.train()
    return out
