"""Guard TRL's DistillationTrainer (on-policy distillation: the student generates, the teacher grades).

This is the setting subliminal learning comes from: a teacher that shares the student's base.

    python integrations/examples/distillation.py [--policy P] [--model DIR] [--teacher DIR]

The default policy, policies/audit.yaml, observes only. A fail-closed policy (policies/strict.yaml)
refuses this example's in-memory data, which has no provenance; the strict path clears the data
against its manifest (`distill-guard manifest create ...`) before training:

    guard = DistillGuard.from_policy("policies/strict.yaml")
    train_dataset = guard.clear_dataset(train_dataset, manifest="data/numbers.provenance.yaml").dataset
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import AutoTokenizer
from trl import DistillationConfig, DistillationTrainer

from distill_guard import DistillGuard


def number_prompts(n: int, seed: int = 1) -> Dataset:
    rng = random.Random(seed)
    prompts = [", ".join(str(rng.randint(0, 999)) for _ in range(5)) + "," for _ in range(n)]
    return Dataset.from_dict({"prompt": prompts})


def build_trainer(
    model_dir: Path, policy: Path, output_dir: Path, *, teacher_dir: Path | None = None, **training_args: Any
) -> DistillationTrainer:
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    guard = DistillGuard.from_policy(policy)  # <- the guard: probes, drift metrics, halt
    args = DistillationConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        max_completion_length=8,
        **training_args,
    )
    trainer = DistillationTrainer(
        model=str(model_dir),
        teacher_model=str(teacher_dir or model_dir),
        args=args,
        train_dataset=number_prompts(32),
        processing_class=tokenizer,
    )
    return guard.attach(trainer)  # <- adds the guard as a callback; its numbers reach report_to trackers


if __name__ == "__main__":
    from _run import run_example

    run_example(build_trainer, __doc__)
