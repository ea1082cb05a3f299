"""Every audit-log line is versioned and attributable, and matches the committed JSON Schema."""

from __future__ import annotations

import hashlib
import json

import jsonschema
import pytest
from datasets import Dataset
from prometheus_client.parser import text_string_to_metric_families
from transformers import AutoTokenizer

from distill_guard import DistillGuard, TrainingHalted, __version__
from distill_guard.export.audit import AuditLog
from tests.conftest import REPO
from tests.guard.conftest import make_trainer
from tests.support.controlled import planned_scores
from tests.support.policies import write_guard_policy

SCHEMA = json.loads((REPO / "integrations" / "audit" / "audit-line.schema.json").read_text("utf-8"))
BASE = [0.10, 0.12, 0.11, 0.09]
HIGH = [0.40, 0.45, 0.42, 0.41]


def _validate(lines: list[dict]) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    for line in lines:
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(line)]
        assert not errors, f"{line['event']}: {errors}"


def test_the_committed_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_lines_of_a_real_halted_run_match_the_schema_and_carry_one_run_id(tiny_checkpoint, tmp_path) -> None:
    keep = {"halt": {"action": "stop", "save_halted_checkpoint": True}}
    policy = write_guard_policy(tmp_path / "policy.yaml", every=2, sections=keep)
    guard = DistillGuard.from_policy(policy)
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    rows = Dataset.from_dict({"text": ["7, 12, 33", "4, 18, 91"] * 16}).map(lambda row: tokenizer(row["text"]))
    cleared = guard.clear_dataset(rows).dataset  # unknown provenance, warned: a line before any Trainer
    out = tmp_path / "out"
    trainer = make_trainer(
        tiny_checkpoint, out, guard, max_steps=6, dataset=cleared, save_strategy="steps", save_steps=4
    )
    with planned_scores([BASE, BASE, HIGH]), pytest.raises(TrainingHalted):
        trainer.train()

    lines = AuditLog(out / "guard-audit.jsonl").read()
    assert {"provenance_decision", "baseline", "probes", "halt", "quarantine", "train_end"} <= {
        e["event"] for e in lines
    }
    _validate(lines)
    assert len({e["run_id"] for e in lines}) == 1
    assert {e["policy_sha256"] for e in lines} == {hashlib.sha256(policy.read_bytes()).hexdigest()}
    assert {(e["version"], e["rank"]) for e in lines} == {(__version__, 0)}

    second = make_trainer(tiny_checkpoint, tmp_path / "again", DistillGuard.from_policy(policy), max_steps=2)
    with planned_scores([BASE]):
        second.train()
    again = AuditLog(tmp_path / "again" / "guard-audit.jsonl").read()
    _validate(again)
    assert {e["run_id"] for e in again}.isdisjoint({e["run_id"] for e in lines})  # unique per run, not per folder name


def test_an_unnamed_run_is_labelled_with_its_run_id_not_its_folder_name(tiny_checkpoint, tmp_path) -> None:
    """Two runs in folders both named `out` never share a series; run_info joins a series to its audit log."""
    labels = []
    for name in ("first", "second"):
        metrics_file = tmp_path / f"{name}.prom"
        policy = write_guard_policy(tmp_path / f"{name}.yaml", every=2, metrics_file=metrics_file)
        out = tmp_path / name / "out"
        with planned_scores([BASE]):
            make_trainer(tiny_checkpoint, out, DistillGuard.from_policy(policy), max_steps=2).train()
        [run_id] = {e["run_id"] for e in AuditLog(out / "guard-audit.jsonl").read()}
        families = text_string_to_metric_families(metrics_file.read_text("utf-8"))
        samples = {sample.name: sample.labels for family in families for sample in family.samples}
        assert samples["distill_guard_training_step"]["run"] == run_id
        assert samples["distill_guard_run_info"]["run_id"] == run_id
        labels.append(run_id)
    assert labels[0] != labels[1]
