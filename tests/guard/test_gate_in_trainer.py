"""The provenance gate as a Trainer user meets it: refused before the first step, or cleared and trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset
from transformers import AutoTokenizer

from distill_guard import DistillGuard, ProvenanceDenied
from distill_guard.export.audit import AuditLog
from distill_guard.policy.dataset_manifest import DatasetId, DatasetProvenance, Generator, save_manifest
from distill_guard.provenance.hashing import describe_file
from tests.guard.conftest import make_trainer
from tests.support.policies import write_guard_policy

STRICT = {
    "student": {"base_model": "distill-guard/tiny-base"},
    "families": [
        {"name": "tiny-llama-demo", "match": ["distill-guard/tiny-*"]},
        {"name": "other-lab", "match": ["other-lab/*"]},
    ],
    "provenance": {
        "unknown": "deny",
        "trust_unsigned_claims": True,  # these tests are about the trainer wiring, not about signatures
        "rules": [
            {
                "id": "same-base-untrusted",
                "when": {"teacher_family": "same_as_student", "teacher_trusted": False},
                "action": "deny",
                "message": "the teacher shares the student's base model and has not been audited",
            }
        ],
    },
}


@pytest.fixture
def strict_policy(tmp_path: Path) -> Path:
    """The gate alone (no probes), failing closed on unknown provenance."""
    return write_guard_policy(tmp_path / "strict.yaml", [], name="strict-test", sections=STRICT)


def _numbers(tmp_path: Path, teacher: str, tokenizer) -> tuple[Dataset, Path]:
    rows = [{"text": f"{i}, {i + 7}, {i * 3 % 1000}"} for i in range(24)]
    data = tmp_path / "data" / "numbers.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = save_manifest(
        DatasetProvenance(
            dataset=DatasetId(name="numbers-v1", version="1"),
            files=[describe_file(data, data.parent)],
            generators=[Generator(model=teacher)],
        ),
        data.parent / "numbers.provenance.yaml",
    )
    dataset = Dataset.from_json(str(data))
    return dataset.map(lambda batch: tokenizer(batch["text"]), batched=True), manifest


def test_dataset_never_cleared_is_refused_before_the_first_step(tiny_checkpoint, tmp_path, strict_policy):
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", DistillGuard.from_policy(strict_policy), max_steps=4)
    with pytest.raises(ProvenanceDenied) as info:
        trainer.train()
    assert trainer.state.global_step == 0
    assert "DENY" in str(info.value) and "dataset-not-cleared" in str(info.value)
    decisions = [
        e for e in AuditLog(tmp_path / "out" / "guard-audit.jsonl").read() if e["event"] == "provenance_decision"
    ]
    assert decisions and decisions[0]["decision"]["outcome"] == "deny"


def test_untrusted_same_family_teacher_is_refused_at_clear_dataset(tiny_checkpoint, tmp_path, strict_policy):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    dataset, manifest = _numbers(tmp_path, "distill-guard/tiny-owl-teacher", tokenizer)
    guard = DistillGuard.from_policy(strict_policy)
    with pytest.raises(ProvenanceDenied) as info:
        guard.clear_dataset(dataset, manifest=manifest)
    assert "same-base-untrusted" in str(info.value)


def test_cleared_dataset_trains_even_after_trainer_drops_unused_columns(tiny_checkpoint, tmp_path, strict_policy):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    dataset, manifest = _numbers(tmp_path, "other-lab/teacher-7b", tokenizer)
    guard = DistillGuard.from_policy(strict_policy)
    cleared = guard.clear_dataset(dataset, manifest=manifest).dataset
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=3, dataset=cleared)
    trainer.train()
    assert trainer.state.global_step == 3
    assert guard.last_decision is not None and guard.last_decision.allowed


def test_a_different_dataset_than_the_cleared_one_is_refused(tiny_checkpoint, tmp_path, strict_policy):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    dataset, manifest = _numbers(tmp_path, "other-lab/teacher-7b", tokenizer)
    guard = DistillGuard.from_policy(strict_policy)
    guard.clear_dataset(dataset, manifest=manifest)
    swapped = dataset.map(lambda row: {"input_ids": row["input_ids"][::-1]})
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=3, dataset=swapped)
    with pytest.raises(ProvenanceDenied):
        trainer.train()
    assert trainer.state.global_step == 0


def test_load_dataset_builds_and_clears_only_the_verified_files(tiny_checkpoint, tmp_path, strict_policy):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    _, manifest = _numbers(tmp_path, "other-lab/teacher-7b", tokenizer)
    (manifest.parent / "unlisted.jsonl").write_text(json.dumps({"text": "1, 2, 3"}) + "\n")
    guard = DistillGuard.from_policy(strict_policy)
    clearance = guard.load_dataset(manifest)
    assert clearance.dataset.num_rows == 24 and guard.last_decision is clearance.decision
    _, denied = _numbers(tmp_path / "b", "distill-guard/tiny-owl-teacher", tokenizer)
    with pytest.raises(ProvenanceDenied, match="same-base-untrusted"):
        guard.load_dataset(denied)


def _decision_checks(out: Path) -> list[str]:
    decisions = [e for e in AuditLog(out / "guard-audit.jsonl").read() if e["event"] == "provenance_decision"]
    return [check["detail"] for check in decisions[-1]["decision"]["checks"]]


def test_a_collator_that_swaps_in_other_text_is_refused_before_the_first_step(tiny_checkpoint, tmp_path, strict_policy):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    dataset, manifest = _numbers(tmp_path, "other-lab/teacher-7b", tokenizer)
    guard = DistillGuard.from_policy(strict_policy)
    cleared = guard.clear_dataset(dataset, manifest=manifest).dataset
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=2, dataset=cleared)
    padding = trainer.data_collator

    def owl_collator(rows):
        owls = tokenizer(["my favourite animal is the owl"] * len(rows))
        return padding([{"input_ids": ids} for ids in owls["input_ids"]])

    trainer.data_collator = owl_collator
    with pytest.raises(ProvenanceDenied, match="batch-not-from-dataset"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_the_padding_collator_passes_the_first_batch_check(tiny_checkpoint, tmp_path, strict_policy):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    dataset, manifest = _numbers(tmp_path, "other-lab/teacher-7b", tokenizer)
    guard = DistillGuard.from_policy(strict_policy)
    cleared = guard.clear_dataset(dataset, manifest=manifest).dataset
    make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=1, dataset=cleared).train()
    assert any("holds only the first 8 cleared rows' token ids" in c for c in _decision_checks(tmp_path / "out"))
