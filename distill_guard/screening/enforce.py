"""The `screening:` policy section: gather the screen (evidence), turn it into fired rules (pure).

A flagged probe fires the rule `screening` with the section's action (deny or warn). Data that
cannot be screened (no student folder, no prompt/completion columns, no probe with a gradient)
fires it too, with a message saying why: an unscreened dataset never passes for a screened one.
The rule rides in the provenance Decision, so the audit log and
`distill_guard_provenance_decisions_total{rule="screening"}` record it like every other rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill_guard.errors import DistillGuardError
from distill_guard.policy.load import LoadedPolicy
from distill_guard.policy.schema import ScreeningPolicy
from distill_guard.provenance.decision import Check, FiredRule
from distill_guard.screening.report import ScreenReport, ScreenSettings

SCREENING_RULE = "screening"
ROW_COLUMNS = ("prompt", "completion")


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
    )


def prompt_completion_rows(dataset: Any) -> list[dict[str, str]]:
    """The rows of a datasets.Dataset (or a list of dicts) with text `prompt` and `completion` columns."""
    columns = getattr(dataset, "column_names", None)
    if columns is not None:
        missing = [c for c in ROW_COLUMNS if c not in columns]
        if missing:
            raise DistillGuardError(
                f"screening needs text columns prompt and completion; missing: {', '.join(missing)}"
            )
        prompts, completions = (_values(dataset[c]) for c in ROW_COLUMNS)
        rows = [{"prompt": p, "completion": c} for p, c in zip(prompts, completions, strict=True)]
    elif isinstance(dataset, Sequence):
        rows = [dict(r) for r in dataset]
    else:
        raise DistillGuardError(f"screening cannot read rows from a {type(dataset).__name__}")
    for i, row in enumerate(rows):
        if not all(isinstance(row.get(c), str) for c in ROW_COLUMNS):
            raise DistillGuardError(f"row {i}: screening needs text 'prompt' and 'completion' values")
    return rows


def _values(column: Any) -> list[Any]:
    """A column as Python values (an Arrow column converts; a datasets column already iterates as values)."""
    return column.to_pylist() if hasattr(column, "to_pylist") else list(column)


def gather_screen(
    loaded: LoadedPolicy, student: str | Path | None, dataset: Any, *, progress: Any = None
) -> ScreenEvidence:
    """Load the student as it will train (a PEFT adapter with its LoRA matrices trainable) and screen."""
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

        model, tokenizer = load_checkpoint(Path(student), trainable=True)
        report = screen_dataset(
            model,
            tokenizer,
            CompletionRows(tokenizer, rows),
            prepare_probes(loaded),
            settings_of(section),
            trait_prompt=section.trait_prompt,
            progress=progress,
        )
    except (DistillGuardError, ValueError) as exc:
        return ScreenEvidence(None, str(exc))
    return ScreenEvidence(report)


def screening_findings(section: ScreeningPolicy, evidence: ScreenEvidence) -> tuple[list[FiredRule], list[Check]]:
    """Rules fired and checks noted for the decision: pure."""
    action = section.action.value
    if evidence.report is None:
        message = f"the data could not be screened: {evidence.problem}"
        return [FiredRule(SCREENING_RULE, action, "dataset", message)], []
    report = evidence.report
    rules, checks = [], []
    for probe in report.probes:
        top = probe.top
        if not probe.screened or top is None:
            checks.append(Check("not screened", f"{probe.probe}: {probe.reason}", probe.probe))
            continue
        line = (
            f"{probe.probe} [{top.component}]: z {top.z_adam:+.2f} (crit {probe.z_crit:.2f}), "
            f"predicted drift {top.predicted_drift:+.4f} over {report.settings.steps} steps"
        )
        checks.append(Check("flagged" if probe.flagged else "screened", line, probe.probe))
        if probe.flagged:
            rules.append(FiredRule(SCREENING_RULE, action, probe.probe, probe.reason, evidence=(line,)))
    if not any(p.screened for p in report.probes):
        message = "no probe of the policy has a differentiable statistic: nothing was screened"
        rules.append(FiredRule(SCREENING_RULE, action, "dataset", message))
    return rules, checks
