"""Load a saved student the way the CLI commands need it: a model folder, or a PEFT adapter on its base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill_guard.errors import DistillGuardError


def load_checkpoint(directory: Path, *, trainable: bool = False) -> tuple[Any, Any]:
    """A saved model and its tokenizer; a PEFT adapter folder is loaded onto its base model.

    `trainable` leaves a PEFT adapter's matrices trainable (for the screen), as a training run would.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (directory / "adapter_config.json").is_file():
        try:
            from peft import AutoPeftModelForCausalLM
        except ImportError:
            raise DistillGuardError(f"{directory} holds a PEFT adapter; install peft to load it") from None
        model = AutoPeftModelForCausalLM.from_pretrained(directory, is_trainable=trainable)
    else:
        model = AutoModelForCausalLM.from_pretrained(directory)
    return model, AutoTokenizer.from_pretrained(directory)
