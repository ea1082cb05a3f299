"""One way to train a scenario's student: a real Hugging Face `Trainer`, so the guard sees real events.

Every scenario routes its student run through `train_student`, whose arguments (constant learning
rate unless the run names a schedule, no checkpoints, no reporting) are the production recipe of
`screening/recipe.py`, shared with the screen's canary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset
from transformers import PrinterCallback, Trainer, TrainerCallback

from distill_guard.screening.recipe import recipe_arguments


@dataclass(frozen=True)
class StudentRun:
    """How long and how hard to train a student; `schedule` is the rate's HF `lr_scheduler_type`."""

    max_steps: int
    batch_size: int
    learning_rate: float
    seed: int = 0
    schedule: str = "constant"


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
    args = recipe_arguments(
        output_dir,
        max_steps=run.max_steps,
        batch_size=run.batch_size,
        learning_rate=run.learning_rate,
        seed=run.seed,
        schedule=run.schedule,
    )
    trainer = trainer_class(model=model, args=args, train_dataset=dataset, callbacks=list(callbacks), **trainer_options)
    trainer.remove_callback(PrinterCallback)  # the scenarios report their own numbers
    trainer.train()
    return trainer
