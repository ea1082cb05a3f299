"""The gate's acceptance behaviour on real tiny checkpoints and real files."""

from __future__ import annotations

import json
import shutil

import datasets

from distill_guard.policy.dataset_manifest import Generator
from distill_guard.policy.load import load_policy
from distill_guard.provenance.gate import ProvenanceGate
from distill_guard.scenarios import tiny_lm

from .conftest import (
    FUTURE,
    OTHER_FAMILY_TEACHER,
    PAST,
    REPO_POLICIES,
    SAME_FAMILY_TEACHER,
    TODAY,
    TRUSTED_SIGNER,
    number_rows,
    policy_data,
    sign_manifest,
    write_card,
    write_jsonl,
)


def fired(decision) -> dict[str, str]:
    return {rule.id: rule.action for rule in decision.rules if rule.waived_by is None}


def test_same_family_untrusted_teacher_is_denied(make_policy, make_manifest, data_file, student_dir):
    gate = ProvenanceGate(make_policy(), student=student_dir, today=TODAY)
    decision = gate.clear_dataset(datasets.Dataset.from_json(str(data_file)), make_manifest([data_file])).decision
    assert not decision.allowed
    assert fired(decision) == {"same-base-untrusted": "deny"}
    assert decision.teachers[0].relation == "same_as_student"
    text = str(decision)
    assert "DENY" in text and "same-base-untrusted" in text and "tiny-llama-demo" in text


def test_audited_teacher_is_allowed(make_policy, make_manifest, data_file, student_dir):
    audit = {"ref": "SEC-123", "expires": FUTURE, "by": "ml-safety"}
    policy = make_policy(trusted_generators=[{"match": "distill-guard/tiny-teacher*", "audit": audit}])
    decision = (
        ProvenanceGate(policy, student=student_dir, today=TODAY)
        .clear_dataset(datasets.Dataset.from_json(str(data_file)), make_manifest([data_file]))
        .decision
    )
    assert decision.outcome == "allow"
    assert "SEC-123" in str(decision.to_json())


def test_expired_audit_is_not_applied(make_policy, make_manifest, data_file, student_dir):
    audit = {"ref": "SEC-123", "expires": PAST}
    policy = make_policy(trusted_generators=[{"match": SAME_FAMILY_TEACHER, "audit": audit}])
    decision = (
        ProvenanceGate(policy, student=student_dir, today=TODAY)
        .clear_dataset(datasets.Dataset.from_json(str(data_file)), make_manifest([data_file]))
        .decision
    )
    assert fired(decision) == {"same-base-untrusted": "deny"}
    assert any("expired on 2026-05-01" in item for rule in decision.rules for item in rule.evidence)


def test_different_family_teacher_is_allowed(make_policy, make_manifest, data_file, student_dir):
    manifest = sign_manifest(make_manifest([data_file], [Generator(model=OTHER_FAMILY_TEACHER)]))
    decision = (
        ProvenanceGate(make_policy(trusted_signers=[TRUSTED_SIGNER]), student=student_dir, today=TODAY)
        .clear_dataset(datasets.Dataset.from_json(str(data_file)), manifest)
        .decision
    )
    assert decision.outcome == "allow"
    assert decision.teachers[0].relation == "different_from_student"


def test_manifest_base_model_claim_puts_a_renamed_teacher_in_the_students_family(
    make_policy, make_manifest, data_file, student_dir
):
    generator = Generator(model="acme/numbers-writer", base_model="distill-guard/tiny-base")
    decision = (
        ProvenanceGate(make_policy(), student=student_dir, today=TODAY)
        .clear_dataset(datasets.Dataset.from_json(str(data_file)), make_manifest([data_file], [generator]))
        .decision
    )
    assert fired(decision) == {"same-base-untrusted": "deny"}


def test_teacher_finetuned_from_the_students_base_without_metadata_is_caught_by_the_weight_test(
    make_policy, make_manifest, data_file, student_dir, sibling_teacher_dir
):
    manifest = make_manifest([data_file], [Generator(model="acme/numbers-writer")])
    gate = ProvenanceGate(make_policy(), student=student_dir, today=TODAY)
    decision = gate.clear_dataset(
        datasets.Dataset.from_json(str(data_file)), manifest, teacher=sibling_teacher_dir
    ).decision
    assert fired(decision) == {"same-base-untrusted": "deny"}
    teacher = decision.teachers[0]
    assert teacher.relation == "same_as_student"
    assert any(source == "weights" and "same initialisation" in detail for source, detail in teacher.evidence)


def test_independently_initialised_teacher_is_not_mistaken_for_a_sibling(
    make_policy, make_manifest, data_file, student_dir, fresh_teacher_dir
):
    manifest = make_manifest([data_file], [Generator(model="acme/numbers-writer")])
    gate = ProvenanceGate(make_policy(), student=student_dir, today=TODAY)
    decision = gate.clear_dataset(
        datasets.Dataset.from_json(str(data_file)), manifest, teacher=fresh_teacher_dir
    ).decision
    assert decision.teachers[0].relation == "unknown"
    assert fired(decision) == {"unknown-teacher-family": "deny"}


def test_unresolvable_lineage_follows_the_unknown_action(make_policy, make_manifest, data_file, student_dir):
    manifest = make_manifest([data_file], [Generator(model="acme/numbers-writer")])
    decision = (
        ProvenanceGate(make_policy(rules=[], unknown="warn"), student=student_dir, today=TODAY)
        .clear_dataset(datasets.Dataset.from_json(str(data_file)), manifest)
        .decision
    )
    assert decision.outcome == "warn" and fired(decision) == {"unknown-lineage": "warn"}


def test_one_changed_byte_in_a_data_file_denies_naming_the_file(make_policy, make_manifest, data_file, student_dir):
    manifest = make_manifest([data_file], [Generator(model=OTHER_FAMILY_TEACHER)])
    raw = bytearray(data_file.read_bytes())
    raw[5] = ord("9") if raw[5] != ord("9") else ord("8")
    data_file.write_bytes(bytes(raw))
    decision = (
        ProvenanceGate(make_policy(trust_unsigned_claims=True), student=student_dir, today=TODAY)
        .clear_dataset(datasets.Dataset.from_json(str(data_file)), manifest)
        .decision
    )
    assert fired(decision) == {"manifest-integrity": "deny"}
    assert "numbers.jsonl" in decision.rules[0].message and "hash mismatch" in decision.rules[0].message


def test_waiver_cancels_a_rule_until_it_expires(make_policy, make_manifest, data_file, student_dir):
    waiver = {"rule": "same-base-untrusted", "dataset": "numbers-*", "reason": "reviewed in SEC-9, numbers only"}
    dataset = datasets.Dataset.from_json(str(data_file))
    manifest = make_manifest([data_file])
    live = make_policy(waivers=[{**waiver, "expires": FUTURE}])
    decision = ProvenanceGate(live, student=student_dir, today=TODAY).clear_dataset(dataset, manifest).decision
    assert decision.outcome == "allow"
    assert decision.rules[0].waived_by and decision.waivers[0].applied
    expired = make_policy(waivers=[{**waiver, "expires": PAST}])
    decision = ProvenanceGate(expired, student=student_dir, today=TODAY).clear_dataset(dataset, manifest).decision
    assert fired(decision) == {"same-base-untrusted": "deny"}
    assert not decision.waivers[0].applied
    assert "EXPIRED on 2026-05-01, not applied" in str(decision)


def test_mixed_dataset_drops_only_the_offending_rows(make_policy, make_manifest, tmp_path, student_dir):
    rows = number_rows(30, SAME_FAMILY_TEACHER) + number_rows(70, OTHER_FAMILY_TEACHER, start=30)
    dataset = datasets.Dataset.from_list(rows).shuffle(seed=0)
    data = write_jsonl(tmp_path / "data" / "mixed.jsonl", rows)
    manifest = make_manifest([data], [Generator(model=SAME_FAMILY_TEACHER), Generator(model=OTHER_FAMILY_TEACHER)])
    policy = make_policy(
        rules=[
            {
                "id": "drop-same-base",
                "when": {"teacher_family": "same_as_student", "teacher_trusted": False},
                "action": "drop_records",
            }
        ],
        trust_unsigned_claims=True,
    )
    clearance = ProvenanceGate(policy, student=student_dir, today=TODAY).clear_dataset(dataset, manifest)
    assert clearance.decision.outcome == "allow"
    assert [(d.generator, d.rule, d.count) for d in clearance.decision.dropped] == [
        (SAME_FAMILY_TEACHER, "drop-same-base", 30)
    ]
    assert clearance.dataset.num_rows == 70
    assert set(clearance.dataset["provenance"]) == {OTHER_FAMILY_TEACHER}
    kept = sorted(clearance.dataset["text"])
    assert kept == sorted(r["text"] for r in rows if r["provenance"] == OTHER_FAMILY_TEACHER)
    assert "Dropped 30 records generated by 'distill-guard/tiny-teacher'" in str(clearance.decision)


def test_drop_records_without_a_provenance_column_refuses_the_dataset(
    make_policy, make_manifest, data_file, student_dir
):
    policy = make_policy(
        rules=[{"id": "drop-same-base", "when": {"teacher_family": "same_as_student"}, "action": "drop_records"}]
    )
    decision = (
        ProvenanceGate(policy, student=student_dir, today=TODAY)
        .clear_dataset(datasets.Dataset.from_json(str(data_file)), make_manifest([data_file]))
        .decision
    )
    assert fired(decision) == {"drop-same-base": "deny"}
    assert "no 'provenance' column" in decision.rules[0].message


def test_dataset_never_cleared_is_denied_under_the_strict_policy(tmp_path, student_dir):
    gate = ProvenanceGate(load_policy(REPO_POLICIES / "strict.yaml"), student=student_dir, today=TODAY)
    model, _ = tiny_lm.load(student_dir)
    decision = gate.check_at_train_begin(datasets.Dataset.from_list(number_rows(5)), model)
    assert not decision.allowed
    assert fired(decision) == {"dataset-not-cleared": "deny"}
    assert "never cleared" in str(decision)


def test_dataset_without_manifest_follows_unknown(make_policy, student_dir):
    decision = (
        ProvenanceGate(make_policy(), student=student_dir, today=TODAY)
        .clear_dataset(datasets.Dataset.from_list(number_rows(5)))
        .decision
    )
    assert fired(decision) == {"unknown-provenance": "deny"}


def test_training_on_the_unfiltered_dataset_after_a_drop_is_denied(make_policy, make_manifest, tmp_path, student_dir):
    rows = number_rows(3, SAME_FAMILY_TEACHER) + number_rows(5, OTHER_FAMILY_TEACHER, start=3)
    data = write_jsonl(tmp_path / "data" / "mixed.jsonl", rows)
    manifest = make_manifest([data], [Generator(model=SAME_FAMILY_TEACHER), Generator(model=OTHER_FAMILY_TEACHER)])
    policy = make_policy(
        rules=[{"id": "drop-same-base", "when": {"teacher_family": "same_as_student"}, "action": "drop_records"}],
        trust_unsigned_claims=True,
    )
    gate = ProvenanceGate(policy, student=student_dir, today=TODAY)
    original = datasets.Dataset.from_list(rows)
    clearance = gate.clear_dataset(original, manifest)
    model, _ = tiny_lm.load(student_dir)
    assert gate.check_at_train_begin(clearance.dataset, model).allowed
    denied = gate.check_at_train_begin(original, model)
    assert fired(denied) == {"dataset-not-cleared": "deny"}
    assert any("cleared 5 rows, the trainer iterates 8" in e for e in denied.rules[0].evidence)


def test_records_from_an_undeclared_generator_follow_unknown(make_policy, make_manifest, tmp_path, student_dir):
    rows = number_rows(4, OTHER_FAMILY_TEACHER) + number_rows(1, "other-lab/sneaky", start=4)
    data = write_jsonl(tmp_path / "data" / "mixed.jsonl", rows)
    manifest = make_manifest([data], [Generator(model=OTHER_FAMILY_TEACHER)])
    decision = (
        ProvenanceGate(make_policy(trust_unsigned_claims=True), student=student_dir, today=TODAY)
        .clear_dataset(datasets.Dataset.from_list(rows), manifest)
        .decision
    )
    assert fired(decision) == {"undeclared-generator": "deny"}
    assert decision.rules[0].subject == "other-lab/sneaky"


def test_gate_without_student_decides_again_for_the_model_being_trained(
    make_policy, make_manifest, data_file, student_dir
):
    gate = ProvenanceGate(make_policy(), today=TODAY)
    dataset = datasets.Dataset.from_json(str(data_file))
    clearance = gate.clear_dataset(dataset, make_manifest([data_file]))
    assert fired(clearance.decision) == {"unknown-teacher-family": "deny"}
    model, _ = tiny_lm.load(student_dir)
    decision = gate.check_at_train_begin(dataset, model)
    assert fired(decision) == {"same-base-untrusted": "deny"}
    assert any("re-decided for student" in str(c) for c in decision.checks)


def test_decision_is_json_and_lists_metric_labels(make_policy, make_manifest, data_file, student_dir):
    decision = (
        ProvenanceGate(make_policy(), student=student_dir, today=TODAY)
        .clear_dataset(datasets.Dataset.from_json(str(data_file)), make_manifest([data_file]))
        .decision
    )
    payload = json.loads(decision.to_json())
    assert payload["allowed"] is False and payload["outcome"] == "deny"
    assert payload["rules"][0]["id"] == "same-base-untrusted"
    assert payload["student"]["families"] == ["tiny-llama-demo"]
    assert decision.metric_labels() == [("deny", "same-base-untrusted")]


def test_policy_statement_outranks_the_model_card(tmp_path, make_manifest, data_file, student_dir):
    data = policy_data()
    data["student"] = {"family": "other-lab"}
    path = tmp_path / "stated.yaml"
    path.write_text(json.dumps(data, default=str), "utf-8")
    gate = ProvenanceGate(load_policy(path), student=student_dir, today=TODAY)
    decision = gate.clear_dataset(datasets.Dataset.from_json(str(data_file)), make_manifest([data_file])).decision
    assert decision.student is not None
    assert decision.student.families == ("other-lab", "tiny-llama-demo")
    assert decision.student.evidence[0] == ("policy", "student.family = 'other-lab'")
    assert fired(decision) == {"same-base-untrusted": "deny"}


def test_clearance_for_one_student_does_not_carry_over_to_another(
    make_policy, make_manifest, data_file, student_dir, tmp_path
):
    other_student = tmp_path / "other-student"
    shutil.copytree(student_dir, other_student)
    write_card(other_student, "other-lab/base-7b")
    gate = ProvenanceGate(make_policy(trust_unsigned_claims=True), student=other_student, today=TODAY)
    dataset = datasets.Dataset.from_json(str(data_file))
    assert gate.clear_dataset(dataset, make_manifest([data_file])).decision.allowed
    model, _ = tiny_lm.load(student_dir)
    decision = gate.check_at_train_begin(dataset, model)
    assert fired(decision) == {"same-base-untrusted": "deny"}


def test_a_stream_cannot_be_cleared(make_policy, make_manifest, data_file, student_dir):
    stream = datasets.Dataset.from_json(str(data_file)).to_iterable_dataset()
    manifest = make_manifest([data_file], [Generator(model=OTHER_FAMILY_TEACHER)])
    gate = ProvenanceGate(make_policy(trust_unsigned_claims=True), student=student_dir, today=TODAY)
    decision = gate.clear_dataset(stream, manifest).decision
    assert fired(decision) == {"dataset-not-cleared": "deny"}


def test_a_dataset_that_is_not_the_manifests_rows_is_denied(make_policy, make_manifest, data_file, student_dir):
    gate = ProvenanceGate(make_policy(trust_unsigned_claims=True), student=student_dir, today=TODAY)
    manifest = make_manifest([data_file], [Generator(model=OTHER_FAMILY_TEACHER)])
    whole = gate.clear_dataset(datasets.Dataset.from_json(str(data_file)).shuffle(seed=0), manifest).decision
    part = gate.clear_dataset(datasets.Dataset.from_json(str(data_file)).select(range(10)), manifest).decision
    assert whole.allowed
    assert any("dataset rows are the manifest files' 40 rows (columns compared: text)" in str(c) for c in whole.checks)
    assert fired(part) == {"dataset-not-from-manifest": "deny"}
    assert "the dataset has 10 rows, the manifest's verified files hold 40" in part.rules[0].message


def test_the_policys_own_statement_of_a_teacher_family_clears_an_unsigned_manifest(
    make_policy, make_manifest, data_file, student_dir
):
    manifest = make_manifest([data_file], [Generator(model="acme/numbers-writer")])
    stated = make_policy(teacher_families=[{"match": "acme/numbers-*", "family": "other-lab"}])
    decision = ProvenanceGate(stated, student=student_dir, today=TODAY).clear_dataset(
        datasets.Dataset.from_json(str(data_file)), manifest
    )
    assert decision.decision.outcome == "allow"
    assert decision.decision.teachers[0].relation == "different_from_student"
    unstated = ProvenanceGate(make_policy(), student=student_dir, today=TODAY).clear_dataset(
        datasets.Dataset.from_json(str(data_file)), manifest
    )
    assert fired(unstated.decision) == {"unknown-teacher-family": "deny"}
