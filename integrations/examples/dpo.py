"""Guard a TRL DPOTrainer: preference pairs, a frozen reference copy, and `guard.attach(trainer)`.

python integrations/examples/dpo.py [--policy P] [--model DIR]

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
from trl import DPOConfig, DPOTrainer

from distill_guard import DistillGuard


def number_pairs(n: int, seed: int = 1) -> Dataset:
    """Continue a number sequence: chosen keeps counting, rejected does not."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        start = rng.randint(0, 900)
        rows.append(
            {
                "prompt": ", ".join(str(start + i) for i in range(4)) + ",",
                "chosen": f" {start + 4}, {start + 5}",
                "rejected": f" {rng.randint(0, 999)}, {rng.randint(0, 999)}",
            }
        )
    return Dataset.from_list(rows)


def build_trainer(model_dir: Path, policy: Path, output_dir: Path, **training_args: Any) -> DPOTrainer:
    guard = DistillGuard.from_policy(policy)  # <- the guard: probes, drift metrics, halt
    args = DPOConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        max_length=48,
        **training_args,
    )
    trainer = DPOTrainer(
        model=str(model_dir),
        args=args,
        train_dataset=number_pairs(32),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
    )
    return guard.attach(trainer)  # <- adds the guard as a callback; its numbers reach report_to trackers


if __name__ == "__main__":
    from _run import run_example

    run_example(build_trainer, __doc__)
