"""`distill-guard screen`: would training on this data push a trait probe up? (exit 0 pass, 3 denied, 1 invalid)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from distill_guard.cli import exit_codes
from distill_guard.cli.input_errors import exit_on_invalid_input
from distill_guard.errors import DistillGuardError
from distill_guard.export.deployment import with_deployment_environment
from distill_guard.export.telemetry import Telemetry
from distill_guard.policy.load import LoadedPolicy, load_policy, today_utc
from distill_guard.policy.schema import ScreeningAction, ScreeningPolicy
from distill_guard.provenance.checkpoint_folder import validate_checkpoint_folder
from distill_guard.provenance.decision import Decision
from distill_guard.provenance.screening_rule import screening_findings
from distill_guard.row_files import read_row_files
from distill_guard.screening.enforce import ScreenEvidence, gather_screen
from distill_guard.screening.reference_filter import FILTER_NAMES

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def screen(
    student: Annotated[
        Path, typer.Option(help="student checkpoint directory (a PEFT adapter folder screens its LoRA)")
    ],
    data: Annotated[list[Path], typer.Option(help="row file with prompt and completion columns; repeatable")],
    policy: Annotated[Path, typer.Option(help="policy file: its probes, and its screening section")],
    as_json: Annotated[bool, typer.Option("--json", help="print the screen and the decision as JSON")] = False,
    reference_filter: Annotated[
        str | None,
        typer.Option(help="the filter the data was produced with: auto, none, number-sequences (default: policy)"),
    ] = None,
    reference: Annotated[
        list[Path] | None,
        typer.Option(
            help="a trusted dataset of the same task (prompt/completion rows): a second null; repeatable "
            "(default: the policy's screening.reference)"
        ),
    ] = None,
    trusted_source: Annotated[
        list[Path] | None,
        typer.Option(
            help="one of several distinct trusted datasets of the same task, one canary copy each: the data's "
            "canary must beat them all; repeat once per source, at least twice (default: the policy's "
            "screening.trusted_sources)"
        ),
    ] = None,
    canary_steps: Annotated[
        int | None,
        typer.Option(help="also train a copy this many steps on a sample of the data and probe it (default: policy)"),
    ] = None,
    audit_log: Annotated[
        Path | None,
        typer.Option(help="append the decision to this JSONL audit log (default: the policy's, under the working dir)"),
    ] = None,
) -> None:
    """Predict, before any training step, how far training on the data moves each probe of the policy.

    A policy without a `screening:` section is screened with its defaults and action deny.
    The decision is recorded like `check`'s: an audit line and `distill_guard_provenance_decisions_total`.
    """
    if not student.is_dir():
        err.print(f"--student {student}: no such directory", markup=False)
        raise typer.Exit(exit_codes.INVALID_INPUT)
    with exit_on_invalid_input(err):
        validate_checkpoint_folder(student)
        loaded = load_policy(policy)
        rows = _read_rows(data, "--data")
        trusted = _read_rows(reference, "--reference") if reference else None
        sources = [_read_rows([path], "--trusted-source") for path in trusted_source] if trusted_source else None
        if sources is not None and len(sources) < 2:
            raise DistillGuardError("--trusted-source: give at least 2 distinct trusted datasets (or one --reference)")
        section = loaded.policy.screening or ScreeningPolicy(action=ScreeningAction.deny)
        if reference_filter is not None:
            if reference_filter not in FILTER_NAMES:
                raise DistillGuardError(f"--reference-filter {reference_filter}: one of {', '.join(FILTER_NAMES)}")
            section = section.model_copy(update={"reference_filter": reference_filter})
        if canary_steps is not None:
            if canary_steps < 0:
                raise DistillGuardError(f"--canary-steps {canary_steps}: a number of optimizer steps, 0 for no canary")
            section = section.model_copy(update={"canary_steps": canary_steps})
        if sources is not None and (trusted is not None or section.reference is not None):
            raise DistillGuardError("--trusted-source: not with a single trusted --reference / screening.reference")
        if (sources is not None or section.trusted_sources is not None) and not section.canary_steps:
            raise DistillGuardError(
                "trusted sources are a null for the canary: give --canary-steps K > 0 (or screening.canary_steps)"
            )
        if trusted is not None and sources is None and section.trusted_sources is not None:
            raise DistillGuardError("--reference: the policy names screening.trusted_sources; give one null")
        evidence = _screen(loaded, section, student, rows, trusted, sources, quiet=as_json)
    rules, checks = screening_findings(section, evidence)
    decision = Decision(
        outcome=Decision.outcome_of(rules),
        policy=loaded.policy.metadata.name,
        dataset=", ".join(p.name for p in data),
        decided_on=today_utc().isoformat(),
        rules=tuple(rules),
        checks=tuple(checks),
    )
    with exit_on_invalid_input(err):
        telemetry = Telemetry(
            with_deployment_environment(loaded.policy),
            audit_log=audit_log,
            policy_sha256=hashlib.sha256(loaded.path.read_bytes()).hexdigest(),
        )
        telemetry.decision(decision, moment="screen")
        telemetry.close(clean=decision.allowed)
    if as_json:
        report = evidence.report.to_json() if evidence.report else None
        typer.echo(
            json.dumps({"screen": report, "problem": evidence.problem, "decision": decision.to_dict()}, indent=2)
        )
    else:
        out.print(str(evidence.report) if evidence.report else f"not screened: {evidence.problem}", markup=False)
        out.print(str(decision), markup=False)
    raise typer.Exit(exit_codes.OK if decision.allowed else exit_codes.DENIED)


def _read_rows(paths: list[Path], option: str) -> list[dict[str, str]]:
    """Prompt/completion rows of the files given to `option`; a bad file is invalid input naming both."""
    try:
        return read_row_files(paths)
    except DistillGuardError as exc:
        raise DistillGuardError(f"{option} {exc}") from None


def _screen(
    loaded: LoadedPolicy,
    section: ScreeningPolicy,
    student: Path,
    rows: list[dict[str, str]],
    trusted: list[dict[str, str]] | None,
    sources: list[list[dict[str, str]]] | None,
    *,
    quiet: bool,
) -> ScreenEvidence:
    """The screen under a progress bar (on stderr, so --json stays clean)."""
    policy = loaded.policy.model_copy(update={"screening": section})
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err, disable=quiet
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(task: str, done: int, total: int) -> None:
            if task not in tasks:
                tasks[task] = bar.add_task(task, total=total)
            bar.update(tasks[task], completed=done)

        return gather_screen(
            dataclasses.replace(loaded, policy=policy),
            student,
            rows,
            progress=progress,
            trusted=trusted,
            trusted_sources=sources,
        )
