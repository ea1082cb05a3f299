"""Guard a TRL SFTTrainer: `guard.attach(trainer)` adds the guard as a callback. Works the same for a LoRA student
(`peft_config=LoraConfig(...)`): the probes score the model with its adapters applied.

    python integrations/examples/sft.py [--policy P] [--model DIR]
    accelerate launch --num_processes 2 integrations/examples/sft.py   # add --multi_gpu on CPU

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
from transformers import AutoTokenizer
from trl import SFTConfig, SFTTrainer

from distill_guard import DistillGuard
from distill_guard.scenarios.tiny_lm import synthetic_corpus


def build_trainer(
    model_dir: Path, policy: Path, output_dir: Path, *, peft_config: Any = None, **training_args: Any
) -> SFTTrainer:
    train_dataset = Dataset.from_dict({"text": synthetic_corpus(seed=1, n_lines=64)})
    guard = DistillGuard.from_policy(policy)  # <- the guard: probes, drift metrics, halt
    args = SFTConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        max_length=48,
        **training_args,
    )
    trainer = SFTTrainer(
        model=str(model_dir),
        args=args,
        train_dataset=train_dataset,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=peft_config,
    )
    return guard.attach(trainer)  # <- adds the guard as a callback; its numbers reach report_to trackers


if __name__ == "__main__":
    from _run import run_example

    run_example(build_trainer, __doc__)
