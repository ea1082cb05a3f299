"""The `screening:` section inside the provenance gate: a flagged dataset fires the `screening` rule."""

from __future__ import annotations

from pathlib import Path

import datasets

from distill_guard.policy.load import load_policy
from distill_guard.provenance.gate import ProvenanceGate
from tests.screening.conftest import write_policy


def fired(decision) -> list[str]:
    return [r.id for r in decision.rules]


def test_clear_dataset_denies_data_the_screen_flags(tiny_checkpoint: Path, owl_rows, tmp_path: Path) -> None:
    gate = ProvenanceGate(load_policy(write_policy(tmp_path)), student=tiny_checkpoint)
    decision = gate.clear_dataset(datasets.Dataset.from_list(owl_rows)).decision
    assert decision.outcome == "deny"
    assert "screening" in fired(decision)
    assert any(c.status == "flagged" for c in decision.checks)


def test_clear_dataset_passes_the_students_own_samples(tiny_checkpoint: Path, own_rows, tmp_path: Path) -> None:
    gate = ProvenanceGate(load_policy(write_policy(tmp_path)), student=tiny_checkpoint)
    decision = gate.clear_dataset(datasets.Dataset.from_list(own_rows)).decision
    assert "screening" not in fired(decision)
    assert any(c.status == "screened" for c in decision.checks)


def test_without_a_student_folder_the_data_is_not_screened_and_not_passed(owl_rows, tmp_path: Path) -> None:
    gate = ProvenanceGate(load_policy(write_policy(tmp_path)))
    decision = gate.clear_dataset(datasets.Dataset.from_list(owl_rows)).decision
    assert decision.outcome == "deny"
    assert any(r.id == "screening" and "could not be screened" in r.message for r in decision.rules)
