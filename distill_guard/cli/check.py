"""`distill-guard check`: the provenance decision for CI (exit 0 allowed, 3 denied, 1 invalid input)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from distill_guard.cli import exit_codes
from distill_guard.errors import DistillGuardError, PolicyError
from distill_guard.export.deployment import with_deployment_environment
from distill_guard.export.telemetry import Telemetry
from distill_guard.input_files import regular_file_problem
from distill_guard.policy.dataset_manifest import load_manifest
from distill_guard.policy.load import load_policy
from distill_guard.provenance.checkpoint_folder import validate_checkpoint_folder
from distill_guard.provenance.gate import ProvenanceGate
from distill_guard.provenance.record_column import RECORD_FILE_SUFFIXES, read_record_column
from distill_guard.row_files import ROW_FILE_SUFFIXES, concat_rows, parse_rows

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def check(
    policy: Annotated[Path, typer.Option(help="policy file")],
    student: Annotated[Path, typer.Option(help="student checkpoint directory")],
    manifest: Annotated[list[Path], typer.Option(help="dataset provenance manifest; repeatable")],
    teacher: Annotated[Path | None, typer.Option(help="teacher checkpoint directory, for the weight test")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the decision as JSON")] = False,
    today: Annotated[str | None, typer.Option(help="judge expiry dates as of YYYY-MM-DD (default: today, UTC)")] = None,
    audit_log: Annotated[
        Path | None,
        typer.Option(help="append the decision to this JSONL audit log (default: the policy's, under the working dir)"),
    ] = None,
) -> None:
    """Decide whether the manifests' data may train the student: hashes, signatures, lineage, rules.

    The decision is recorded like the guard's: a line in the audit log, and a count in
    `distill_guard_provenance_decisions_total` through the policy's exporter (Pushgateway, textfile).
    """
    try:
        as_of = dt.date.fromisoformat(today) if today else None
    except ValueError:
        err.print(f"--today {today!r}: expected YYYY-MM-DD", markup=False)
        raise typer.Exit(exit_codes.USAGE) from None
    for label, folder in (("--student", student), ("--teacher", teacher)):
        if folder is not None and not folder.is_dir():
            err.print(f"{label} {folder}: no such directory", markup=False)
            raise typer.Exit(exit_codes.INVALID_INPUT)
    try:
        for folder in (student, teacher):
            if folder is not None:
                validate_checkpoint_folder(folder)
        loaded = load_policy(policy)
        deployed = with_deployment_environment(loaded.policy)
        gate = ProvenanceGate(loaded, student=student, today=as_of)
        manifests = [load_manifest(m) for m in manifest]
        # Files outside their manifest's folder, and FIFOs or devices, are never read (the gate
        # denies them by name); the gate re-hashes the rest and binds these rows to them.
        data_files = [p for m in manifests for f in m.manifest.files if m.inside_folder(p := m.data_path(f))]
        readable = [p for p in data_files if p.suffix in ROW_FILE_SUFFIXES and regular_file_problem(p) is None]
        for path in readable:  # generator ids that are not plain text are refused naming the file
            if path.suffix in RECORD_FILE_SUFFIXES:
                read_record_column(path, loaded.policy.provenance.record_column)
        records = concat_rows([parse_rows(p, p.suffix, p) for p in readable])
        decision = gate.clear_dataset(records, manifest=manifest, teacher=teacher).decision
    except (PolicyError, DistillGuardError) as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(exit_codes.INVALID_INPUT) from None
    try:
        policy_sha256 = hashlib.sha256(loaded.path.read_bytes()).hexdigest()
        telemetry = Telemetry(deployed, audit_log=audit_log, policy_sha256=policy_sha256)
        telemetry.decision(decision, moment="check")
        telemetry.close(clean=decision.allowed)
    except DistillGuardError as exc:
        err.print(f"audit log: {exc}", markup=False)
        raise typer.Exit(exit_codes.INVALID_INPUT) from None
    if as_json:
        typer.echo(decision.to_json())
    else:
        out.print(str(decision), markup=False)
        if decision.dropped:
            out.print("(check leaves files as they are: these rows are dropped when the data is cleared for training)")
    raise typer.Exit(exit_codes.OK if decision.allowed else exit_codes.DENIED)
