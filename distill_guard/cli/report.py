"""`distill-guard report RUN_DIR`: what the guard recorded about a run, as HTML, PNG, Markdown and JSON.

Read from the run's audit log only (no model, no torch). Exit 0 when the report is written (a halted
run included: the report is the point), 1 when the folder or its audit log cannot be read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from distill_guard.cli.input_errors import exit_on_invalid_input
from distill_guard.errors import DistillGuardError

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)
DEFAULT_AUDIT_LOG = "guard-audit.jsonl"
REPORT_FOLDER = "distill-guard-report"


def audit_log_of(run_dir: Path, audit_log: Path | None) -> Path:
    """The run's audit log: `--audit-log` (relative to RUN_DIR unless absolute), else the default name."""
    if not run_dir.is_dir():
        raise DistillGuardError(f"{run_dir}: not a run folder (no such directory)")
    path = run_dir / (audit_log or DEFAULT_AUDIT_LOG)
    if not path.exists():
        raise DistillGuardError(
            f"{run_dir}: no audit log {path.name} (the policy's metrics.audit_log; give --audit-log PATH "
            "if the run wrote it elsewhere)"
        )
    return path


def report(
    run_dir: Annotated[Path, typer.Argument(help="the run's output folder (where guard-audit.jsonl is)")],
    audit_log: Annotated[
        Path | None, typer.Option(help=f"the audit log, relative to RUN_DIR (default: {DEFAULT_AUDIT_LOG})")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--out", help=f"folder for the report files (default: RUN_DIR/{REPORT_FOLDER})")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report's JSON on stdout")] = False,
) -> None:
    """Report a guarded run from its audit log: curves per probe with limit and halt, the gate's decisions."""
    from distill_guard.report.history import read_history
    from distill_guard.report.run_report import write_run_report

    with exit_on_invalid_input(err):
        history = read_history(audit_log_of(run_dir, audit_log))
        files = write_run_report(history, output or run_dir / REPORT_FOLDER)
    if as_json:
        out.print_json(json.dumps(history.to_json() | {"files": files.to_json()}))
        return
    out.print(history.status(), markup=False)
    if files.png is None and history.traces:
        err.print("no PNG written: install matplotlib (pip install 'distill-guard[report]') for the drift plot")
    for kind, path in files.to_json().items():
        if path:
            out.print(f"{kind}: {path}", markup=False)
