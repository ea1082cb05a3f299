"""Which tokenizer the probes score with: the trainer's, else one loaded once from the student's folder."""

from __future__ import annotations

from typing import Any

from distill_guard.errors import DistillGuardError


def text_tokenizer(processing_class: Any) -> Any:
    """The text tokenizer of a Trainer's `processing_class` (a multimodal processor wraps one), or None."""
    return getattr(processing_class, "tokenizer", processing_class)


class ProbeTokenizer:
    """Resolves the probes' tokenizer per event; a tokenizer it had to load is loaded only once.

    Python probes take what there is, even None; every other kind needs a real tokenizer, so
    without the trainer's one the student's folder (`student`, else the model's `name_or_path`)
    must hold one.
    """

    def __init__(self, student: str | None, *, needs_tokenizer: bool) -> None:
        self._student = student
        self._needs_tokenizer = needs_tokenizer
        self._loaded: Any = None

    def resolve(self, processing_class: Any, model: Any) -> Any:
        tokenizer = text_tokenizer(processing_class)
        if tokenizer is not None or not self._needs_tokenizer:
            return tokenizer
        if self._loaded is None:
            source = self._student or getattr(model, "name_or_path", None)
            if not source:
                raise DistillGuardError(
                    "the probes need a tokenizer: pass processing_class=tokenizer to the trainer, "
                    "or student=DIR (a folder with the tokenizer) to the guard"
                )
            from transformers import AutoTokenizer

            self._loaded = AutoTokenizer.from_pretrained(source)
        return self._loaded
