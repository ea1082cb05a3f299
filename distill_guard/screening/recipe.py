"""The production recipe as `TrainingArguments`: AdamW at a constant rate, no checkpoints, no reporting.

The canary trains its copies with it, and the scenarios' students do too, so "trained like the
planned run" means one set of arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainingArguments


def recipe_arguments(
    output_dir: str | Path,
    *,
    max_steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    schedule: str = "constant",
    use_cpu: bool = True,
    **extra: Any,
) -> TrainingArguments:
    """`max_steps` steps of `batch_size` at `learning_rate`, seeded; `extra` overrides any argument.

    `schedule` is a Hugging Face `lr_scheduler_type` ("linear": from `learning_rate` down to 0 at
    `max_steps`); the canary keeps the default, the constant rate of the production recipe.
    """
    options: dict[str, Any] = {
        "output_dir": str(output_dir),
        "max_steps": max_steps,
        "per_device_train_batch_size": batch_size,
        "learning_rate": learning_rate,
        "lr_scheduler_type": schedule,
        "warmup_steps": 0,
        "weight_decay": 0.0,
        "seed": seed,
        "data_seed": seed,
        "use_cpu": use_cpu,
        "save_strategy": "no",
        "logging_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "remove_unused_columns": False,
    }
    return TrainingArguments(**(options | extra))
