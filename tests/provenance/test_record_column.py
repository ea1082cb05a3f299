"""Per-record provenance columns: JSON Lines and Datasets, blanks, wrong types."""

from __future__ import annotations

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill_guard.errors import DistillGuardError
from distill_guard.policy.dataset_manifest import Generator
from distill_guard.provenance.gate import ProvenanceGate
from distill_guard.provenance.record_column import (
    MAX_GENERATORS,
    MISSING,
    file_records,
    generator_counts,
    provenance_column,
)

from .conftest import OTHER_FAMILY_TEACHER, SAME_FAMILY_TEACHER, TODAY, number_rows, write_jsonl


def test_jsonl_and_parquet_files_are_counted_per_generator(tmp_path):
    first = write_jsonl(tmp_path / "a.jsonl", number_rows(3, SAME_FAMILY_TEACHER))
    second = write_jsonl(tmp_path / "b.jsonl", [*number_rows(2, OTHER_FAMILY_TEACHER), {"text": "1, 2"}])
    unlabelled = write_jsonl(tmp_path / "c.jsonl", number_rows(4))
    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(number_rows(5, OTHER_FAMILY_TEACHER)), parquet)
    table = file_records([first, second, unlabelled, parquet], "provenance")
    column = provenance_column(table, "provenance")
    assert generator_counts(column) == {SAME_FAMILY_TEACHER: 3, OTHER_FAMILY_TEACHER: 7, MISSING: 5}


def test_files_without_any_provenance_give_no_column(tmp_path):
    plain = write_jsonl(tmp_path / "a.jsonl", number_rows(3))
    assert provenance_column(file_records([plain], "provenance"), "provenance") is None


def test_records_without_a_generator_follow_unknown(make_policy, make_manifest, tmp_path, student_dir):
    rows = [*number_rows(3, OTHER_FAMILY_TEACHER), {"text": "5, 6", "provenance": ""}]
    data = write_jsonl(tmp_path / "data" / "mixed.jsonl", rows)
    manifest = make_manifest([data], [Generator(model=OTHER_FAMILY_TEACHER)])
    decision = (
        ProvenanceGate(make_policy(trust_unsigned_claims=True), student=student_dir, today=TODAY)
        .clear_dataset(datasets.Dataset.from_list(rows), manifest)
        .decision
    )
    assert not decision.allowed
    assert {r.subject for r in decision.rules} == {MISSING}
    assert "1 rows carry no generator id" in str(decision)


def test_blank_records_are_dropped_by_a_drop_rule(make_policy, make_manifest, tmp_path, student_dir):
    rows = [*number_rows(3, OTHER_FAMILY_TEACHER), {"text": "5, 6", "provenance": None}]
    data = write_jsonl(tmp_path / "data" / "mixed.jsonl", rows)
    manifest = make_manifest([data], [Generator(model=OTHER_FAMILY_TEACHER)])
    policy = make_policy(
        rules=[{"id": "drop-unknown", "when": {"teacher_family": "unknown"}, "action": "drop_records"}],
        trust_unsigned_claims=True,
    )
    clearance = ProvenanceGate(policy, student=student_dir, today=TODAY).clear_dataset(
        datasets.Dataset.from_list(rows), manifest
    )
    assert clearance.dataset.num_rows == 3
    assert [(d.generator, d.count) for d in clearance.decision.dropped] == [(MISSING, 1)]


def test_a_provenance_column_that_is_not_text_is_an_error(make_policy, student_dir):
    dataset = datasets.Dataset.from_dict({"text": ["a"], "provenance": [7]})
    with pytest.raises(DistillGuardError, match="expected generator ids as text"):
        ProvenanceGate(make_policy(), student=student_dir, today=TODAY).clear_dataset(dataset)


def test_a_column_of_per_row_ids_is_refused_rather_than_resolved_row_by_row():
    values = pa.chunked_array([[f"run-{i}" for i in range(MAX_GENERATORS + 1)]])
    with pytest.raises(DistillGuardError, match="distinct generator ids"):
        generator_counts(values)
