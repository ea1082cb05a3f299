"""One way to train a scenario's student: a real Hugging Face `Trainer`, so the guard sees real events.

Every scenario routes its student run through `train_student`, which keeps the arguments that
matter for a CPU miniature (constant learning rate, no checkpoints, no reporting) in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments


@dataclass(frozen=True)
class StudentRun:
    """How long and how hard to train a student."""

    max_steps: int
    batch_size: int
    learning_rate: float
    seed: int = 0


def train_student(
    model: nn.Module,
    dataset: Dataset[Any],
    run: StudentRun,
    output_dir: str | Path,
    *,
    callbacks: Sequence[TrainerCallback] = (),
    trainer_class: type[Trainer] = Trainer,
    **trainer_options: Any,
) -> Trainer:
    """Train `model` for `run.max_steps` optimizer steps with `trainer_class` (default: plain `Trainer`,
    for a model whose forward returns {'loss': ...}); `trainer_options` go to its constructor.

    Returns the trainer after `train()`; a guard's `TrainingHalted` propagates to the caller.
    """
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=run.max_steps,
        per_device_train_batch_size=run.batch_size,
        learning_rate=run.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        seed=run.seed,
        data_seed=run.seed,
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    trainer = trainer_class(model=model, args=args, train_dataset=dataset, callbacks=list(callbacks), **trainer_options)
    trainer.remove_callback(PrinterCallback)  # the scenarios report their own numbers
    trainer.train()
    return trainer
