"""The `screening:` policy section's evidence: the student loaded as it will train, the rows, the screen.

Gathering is all I/O; turning the evidence into the decision's fired rules is pure and lives with
the gate (`provenance/screening_rule.py`). A problem that stops the screen is returned, never
raised, so the gate can fail closed on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill_guard.errors import DistillGuardError
from distill_guard.policy.load import LoadedPolicy
from distill_guard.policy.schema import ScreeningPolicy
from distill_guard.row_files import prompt_completion_rows, read_row_files
from distill_guard.screening.report import ScreenReport, ScreenSettings


@dataclass(frozen=True)
class ScreenEvidence:
    """The screen's report, or why there is none."""

    report: ScreenReport | None
    problem: str | None = None


def settings_of(section: ScreeningPolicy) -> ScreenSettings:
    return ScreenSettings(
        minibatches=section.minibatches,
        batch_size=section.batch_size,
        learning_rate=section.learning_rate,
        steps=section.steps,
        alpha=section.alpha,
        seed=section.seed,
        reference_filter=section.reference_filter,
        canary_steps=section.canary_steps,
        canary_references=section.canary_references,
    )


def gather_screen(
    loaded: LoadedPolicy,
    student: str | Path | None,
    dataset: Any,
    *,
    progress: Any = None,
    trusted: Any = None,
    trusted_sources: Sequence[Any] | None = None,
) -> ScreenEvidence:
    """Load the student as it will train (a PEFT adapter with its LoRA matrices trainable) and screen.

    `trusted`: rows of a trusted dataset of the same task, screened against as a second null
    (default: the section's `reference` file, read relative to the policy; unreadable, it stops the screen).
    `trusted_sources`: rows of each of several distinct trusted datasets, the canary's rank-test
    null (default: the section's `trusted_sources` files).
    """
    section = loaded.policy.screening
    assert section is not None
    if student is None or not Path(student).is_dir():
        return ScreenEvidence(None, "no student checkpoint folder to screen with (give the gate a student)")
    try:
        rows = prompt_completion_rows(dataset)
        from distill_guard.checkpoint_loading import load_checkpoint
        from distill_guard.probes.prepared import prepare_probes
        from distill_guard.screening.data import CompletionRows
        from distill_guard.screening.screen import screen_dataset

        if trusted is None and section.reference is not None:
            trusted = read_row_files([loaded.resolve(section.reference)])
        trusted_rows = prompt_completion_rows(trusted) if trusted is not None else None
        if not trusted_sources and section.trusted_sources is not None:
            trusted_sources = [read_row_files([loaded.resolve(f)]) for f in section.trusted_sources]
        source_rows = [prompt_completion_rows(source) for source in trusted_sources or ()]
        model, tokenizer = load_checkpoint(Path(student), trainable=True)
        report = screen_dataset(
            model,
            tokenizer,
            CompletionRows(tokenizer, rows),
            prepare_probes(loaded),
            settings_of(section),
            trait_prompt=section.trait_prompt,
            progress=progress,
            trusted=CompletionRows(tokenizer, trusted_rows) if trusted_rows is not None else None,
            trusted_sources=[CompletionRows(tokenizer, source) for source in source_rows],
        )
    except (DistillGuardError, ValueError) as exc:
        return ScreenEvidence(None, str(exc))
    return ScreenEvidence(report)
