"""What the trainer iterates must be the data that was cleared; Trainer and SFTTrainer both pass."""

from __future__ import annotations

import datetime as dt
import decimal

import datasets
import pyarrow as pa
import pytest
from transformers import Trainer, TrainingArguments
from trl import SFTConfig, SFTTrainer

from distill_guard.policy.dataset_manifest import Generator
from distill_guard.provenance.content_digest import content_digest
from distill_guard.provenance.gate import ProvenanceGate
from distill_guard.scenarios import tiny_lm

from .conftest import OTHER_FAMILY_TEACHER, TODAY, number_rows, write_jsonl


def test_identical_content_matches_whatever_the_arrow_layout():
    table = pa.table({"text": ["a", "bb", None, "dddd"], "ids": [[1, 2], [3], None, [4, 5, 6]]})
    compact = pa.table({"text": ["bb", None], "ids": [[3], None]})
    assert content_digest(table.slice(1, 2)) == content_digest(compact)
    filtered = datasets.Dataset(table).select([1, 2])
    assert content_digest(filtered) == content_digest(datasets.Dataset(compact))


@pytest.mark.parametrize(
    ("changed", "reason"),
    [
        ({"text": ["x", "y", "z!"], "n": [1, 2, 3]}, "content differs in columns: text"),
        ({"text": ["x", "z", "y"], "n": [1, 3, 2]}, "content differs in columns: n, text"),
        ({"text": ["x", "y"], "n": [1, 2]}, "cleared 3 rows, the trainer iterates 2"),
        ({"text": ["x", "y", "z"], "n": [1, 2, 3], "extra": [0, 0, 0]}, "columns never cleared: extra"),
    ],
)
def test_changed_reordered_truncated_or_extended_data_does_not_match(changed, reason):
    cleared = content_digest(datasets.Dataset.from_dict({"text": ["x", "y", "z"], "n": [1, 2, 3]}))
    assert cleared.mismatch(content_digest(datasets.Dataset.from_dict(changed))) == reason


def test_a_column_subset_of_the_cleared_data_matches():
    dataset = datasets.Dataset.from_dict({"text": ["x", "y"], "provenance": ["a", "b"]})
    assert content_digest(dataset).mismatch(content_digest(dataset.remove_columns(["provenance"]))) is None


def test_map_style_datasets_are_content_hashed_by_rows():
    rows = [{"input_ids": [1, 2]}, {"input_ids": [3]}]
    assert content_digest(rows).mismatch(content_digest([dict(r) for r in rows])) is None
    assert content_digest(rows).mismatch(content_digest([{"input_ids": [1, 2]}, {"input_ids": [4]}])) is not None


def test_an_iterable_dataset_cannot_be_cleared_at_train_begin(make_policy, student_dir):
    stream = datasets.Dataset.from_list(number_rows(3)).to_iterable_dataset()
    decision = ProvenanceGate(make_policy(), student=student_dir, today=TODAY).check_at_train_begin(stream, None)
    assert not decision.allowed and "cannot be content-hashed" in decision.rules[0].message


def _tokenized(tokenizer, rows):
    dataset = datasets.Dataset.from_list(rows)
    return dataset.map(lambda r: tokenizer(r["text"]), batched=True)


def test_plain_trainer_removing_unused_columns_still_matches(make_policy, make_manifest, tmp_path, student_dir):
    rows = number_rows(8, OTHER_FAMILY_TEACHER)
    data = write_jsonl(tmp_path / "data" / "numbers.jsonl", rows)
    model, tokenizer = tiny_lm.load(student_dir)
    train = _tokenized(tokenizer, rows)
    gate = ProvenanceGate(make_policy(trust_unsigned_claims=True), student=student_dir, today=TODAY)
    clearance = gate.clear_dataset(train, make_manifest([data], [Generator(model=OTHER_FAMILY_TEACHER)]))
    args = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, report_to=[])
    trainer = Trainer(model=model, args=args, train_dataset=clearance.dataset)
    iterated = trainer.get_train_dataloader().dataset
    assert "text" not in iterated.column_names
    decision = gate.check_at_train_begin(iterated, model)
    assert decision.allowed, str(decision)


def test_sft_trainer_is_cleared_after_it_tokenizes(make_policy, make_manifest, tmp_path, student_dir):
    rows = number_rows(8, OTHER_FAMILY_TEACHER)
    data = write_jsonl(tmp_path / "data" / "numbers.jsonl", rows)
    manifest = make_manifest([data], [Generator(model=OTHER_FAMILY_TEACHER)])
    model, tokenizer = tiny_lm.load(student_dir)
    raw = datasets.Dataset.from_list(rows)
    gate = ProvenanceGate(make_policy(trust_unsigned_claims=True), student=student_dir, today=TODAY)
    gate.clear_dataset(raw, manifest)
    args = SFTConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=2,
        report_to=[],
        max_length=32,
        bf16=False,
        use_cpu=True,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=raw, processing_class=tokenizer)
    before = gate.check_at_train_begin(trainer.get_train_dataloader().dataset, model)
    assert not before.allowed
    assert any("SFTTrainer" in hint for hint in before.rules[0].evidence)
    gate.clear_dataset(trainer.train_dataset, manifest)
    after = gate.check_at_train_begin(trainer.get_train_dataloader().dataset, model)
    assert after.allowed, str(after)


def test_every_common_arrow_type_is_hashed_by_content():
    table = pa.table(
        {
            "when": pa.array([dt.datetime(2020, 1, 1), None, dt.datetime(2021, 1, 1)]),
            "day": pa.array([dt.date(2020, 1, 1), None, dt.date(2021, 1, 1)]),
            "amount": pa.array([decimal.Decimal("1.5"), None, decimal.Decimal("2")]),
            "flag": pa.array([True, None, False]),
            "label": pa.array(["a", None, "b"]).dictionary_encode(),
            "record": pa.array([{"x": 1, "y": "s"}, None, {"x": 2, "y": None}]),
            "pair": pa.array([[1, 2], [3, 4], None], type=pa.list_(pa.int32(), 2)),
            "words": pa.array([["a", "b"], None, []]),
            "score": pa.array([1.5, None, float("nan")]),
        }
    )
    rechunked = pa.concat_tables([table.slice(0, 1), table.slice(1, 2)])
    assert content_digest(rechunked) == content_digest(table)
    for i, name in enumerate(table.column_names):
        values = table.column(i).to_pylist()
        values[0], values[2] = values[2], values[0]
        swapped = table.set_column(i, name, pa.array(values, type=table.schema.field(i).type))
        assert content_digest(table).mismatch(content_digest(swapped)) == f"content differs in columns: {name}"
