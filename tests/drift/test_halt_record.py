"""The halt record and quarantine marker on disk are a public contract, readable across versions."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from distill_guard import (
    LEGACY_QUARANTINE_MARKER_NAME,
    QUARANTINE_MARKER_NAME,
    HaltRecord,
    read_quarantine_marker,
)
from distill_guard.atomic_files import write_json_atomically
from distill_guard.drift.halt_record import halt_record_for, quarantine_marker
from distill_guard.drift.monitor import DriftMonitor
from distill_guard.policy.schema import HaltAction, SuiteRef

RECORD = HaltRecord(
    action="stop",
    step=4,
    probe="animal-preference-owl",
    trait="owl",
    baseline=0.1,
    score=0.4,
    drift=0.3,
    z=9.0,
    threshold={"max_increase": 0.05},
    reasons=["drift +0.3000 > max_increase 0.05"],
    policy="strict",
    policy_file="policies/strict.yaml",
    policy_sha256="0" * 64,
    weights_digest="sha256:abc",
)


def test_a_quarantined_checkpoint_gives_back_its_halt_record(tmp_path: Path) -> None:
    write_json_atomically(tmp_path / QUARANTINE_MARKER_NAME, quarantine_marker(RECORD))
    assert read_quarantine_marker(tmp_path) == RECORD


def test_a_checkpoint_without_a_marker_is_not_quarantined(tmp_path: Path) -> None:
    assert read_quarantine_marker(tmp_path) is None


def test_markers_of_older_versions_are_still_read(tmp_path: Path) -> None:
    old = {"quarantined": True, **RECORD.to_json()}
    old["model_fingerprint"] = old.pop("weights_digest")
    (tmp_path / LEGACY_QUARANTINE_MARKER_NAME).write_text(json.dumps(old))
    assert read_quarantine_marker(tmp_path) == RECORD


def _record_of(evaluation, ref: SuiteRef) -> HaltRecord:
    return halt_record_for(
        evaluation,
        ref,
        halt_action=HaltAction.stop,
        policy="strict",
        policy_file="policies/strict.yaml",
        policy_sha256="0" * 64,
        weights_digest="sha256:abc",
    )


def test_a_failed_probe_halts_by_its_suites_on_error_a_breach_by_the_policys_action() -> None:
    ref = SuiteRef(use="builtin:animal-preference", target="owl", threshold={"max_increase": 0.05}, on_error="warn")
    failed = DriftMonitor().observe_failure("animal-preference-owl", "owl", "CUDA out of memory", step=6)
    record = _record_of(failed, ref)
    assert (record.action, record.step, record.score) == ("warn", 6, None)  # NaN score becomes null
    assert record.threshold == {"max_increase": 0.05, "patience": 1}
    assert record.reasons == ["probe failed: CUDA out of memory"]
    breach = dataclasses.replace(failed, failed=False)
    assert _record_of(breach, ref).action == "stop"
