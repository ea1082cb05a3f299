"""What a callback sees at on_train_begin is what the gate checks: a real Trainer, one step."""

from __future__ import annotations

import datasets
from transformers import Trainer, TrainerCallback, TrainingArguments

from distill_guard.policy.dataset_manifest import Generator
from distill_guard.provenance.gate import ProvenanceGate
from distill_guard.scenarios import tiny_lm

from .conftest import OTHER_FAMILY_TEACHER, TODAY, number_rows, write_jsonl


class GateAtTrainBegin(TrainerCallback):
    """Calls the gate the way DistillGuard does: with the dataloader's dataset and the model."""

    def __init__(self, gate: ProvenanceGate) -> None:
        self.gate = gate
        self.decisions = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.decisions.append(self.gate.check_at_train_begin(kwargs["train_dataloader"].dataset, kwargs["model"]))


def train_one_step(tmp_path, model, dataset, callback):
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2, report_to=[], use_cpu=True
    )
    Trainer(model=model, args=args, train_dataset=dataset, callbacks=[callback]).train()


def test_cleared_data_passes_and_other_data_is_denied_at_train_begin(make_policy, make_manifest, tmp_path, student_dir):
    rows = number_rows(6, OTHER_FAMILY_TEACHER)
    data = write_jsonl(tmp_path / "data" / "numbers.jsonl", rows)
    model, tokenizer = tiny_lm.load(student_dir)

    def tokenize(batch):
        encoded = tokenizer(batch["text"], padding="max_length", max_length=16)
        return {**encoded, "labels": encoded["input_ids"]}

    cleared = datasets.Dataset.from_list(rows).map(tokenize, batched=True)
    gate = ProvenanceGate(make_policy(trust_unsigned_claims=True), student=student_dir, today=TODAY)
    gate.clear_dataset(cleared, make_manifest([data], [Generator(model=OTHER_FAMILY_TEACHER)]))
    callback = GateAtTrainBegin(gate)
    train_one_step(tmp_path, model, cleared, callback)
    other = datasets.Dataset.from_list(number_rows(6, OTHER_FAMILY_TEACHER, start=100)).map(tokenize, batched=True)
    train_one_step(tmp_path, model, other, callback)
    assert [d.outcome for d in callback.decisions] == ["allow", "deny"]
    assert callback.decisions[1].rules[0].id == "dataset-not-cleared"
