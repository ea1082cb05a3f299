"""`distill-guard demo`: the first minute with the project, on a laptop CPU, with no downloads.

Exit 0 when every step ends as described (the gate denies; on the LM miniature and on digits the
trait student is halted and the controls complete), 1 when any step ended otherwise; the JSON
summary is in OUT/summary.json either way.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from distill_guard.cli import exit_codes
from distill_guard.scenarios.vocabulary import ANIMALS

out = Console(soft_wrap=True, highlight=False, width=None if sys.stdout.isatty() else 120)


def quiet_library_progress_bars() -> None:
    """The demo draws its own progress; saving, loading and dataset bars from the libraries would interleave."""
    import datasets
    from transformers.utils import logging as transformers_logging

    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()


def table_of(title: str, rows: list[dict[str, str]]) -> Table:
    table = Table(title=title)
    for column in rows[0] if rows else ():
        table.add_column(column)
    for row in rows:
        table.add_row(*row.values())
    return table


def demo(
    trait: Annotated[str, typer.Option(help=f"target animal of the trait teacher: {', '.join(ANIMALS)}")] = "owl",
    seed: Annotated[int, typer.Option(help="seed of every model, dataset and run")] = 0,
    output: Annotated[Path, typer.Option("--out", help="folder for models, data, audit logs and the report")] = Path(
        "distill-guard-demo"
    ),
    fast: Annotated[bool, typer.Option("--fast", help="the smallest version (CI, tests); same steps")] = False,
) -> None:
    """Show the danger and the guard: a refused dataset, an LM halted as it inherits a trait, controls that complete."""
    if trait not in ANIMALS:
        out.print(f"--trait {trait!r}: choose one of {', '.join(ANIMALS)}", markup=False)
        raise typer.Exit(exit_codes.USAGE)
    import torch  # the training stack loads only for the command that trains

    from distill_guard.scenarios.demo import LM_CURVES_TITLE, DemoConfig, run_demo

    torch.set_num_threads(1)  # tiny models: one thread is fastest, and leaves the other cores free
    quiet_library_progress_bars()
    summary = run_demo(DemoConfig(out=output, trait=trait, seed=seed, fast=fast), out)
    out.print(table_of("distill-guard demo", summary.rows()))
    out.print(table_of(LM_CURVES_TITLE, summary.curve_table))
    out.print(f"summary: {output / 'summary.json'}   report: {summary.report_html}   plot: {summary.report_png}")
    if not summary.as_expected:
        wrong = [f"{s.name} ended {s.outcome}, expected {s.expected}" for s in summary.steps if not s.as_expected]
        out.print("the demo did not end as described: " + "; ".join(wrong), markup=False)
        raise typer.Exit(exit_codes.INVALID_INPUT)
