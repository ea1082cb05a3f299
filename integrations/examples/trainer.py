"""Guard a plain transformers.Trainer: build the guard from a policy, `guard.attach(trainer)`.

python integrations/examples/trainer.py [--policy P] [--model DIR]
torchrun --nproc_per_node 2 integrations/examples/trainer.py     # or: accelerate launch ...

The default policy, policies/audit.yaml, observes only. A fail-closed policy (policies/strict.yaml)
refuses this example's in-memory data, which has no provenance; the strict path clears the data
against its manifest (`distill-guard manifest create ...`) before training:

    guard = DistillGuard.from_policy("policies/strict.yaml")
    train_dataset = guard.clear_dataset(train_dataset, manifest="data/numbers.provenance.yaml").dataset
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
)

from distill_guard import DistillGuard
from distill_guard.scenarios.tiny_lm import synthetic_corpus


def build_trainer(model_dir: Path, policy: Path, output_dir: Path, **training_args: Any) -> Trainer:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    lines = synthetic_corpus(seed=1, n_lines=72)
    data = Dataset.from_dict(tokenizer(lines, truncation=True, max_length=48))
    train_dataset, eval_dataset = data.select(range(64)), data.select(range(64, 72))
    guard = DistillGuard.from_policy(policy)  # <- the guard: probes, drift metrics, halt
    args = TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=4, learning_rate=1e-3, **training_args
    )
    trainer = Trainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        processing_class=tokenizer,
    )
    return guard.attach(trainer)  # <- adds the guard as a callback; its numbers reach report_to trackers


if __name__ == "__main__":
    from _run import run_example

    run_example(build_trainer, __doc__)
