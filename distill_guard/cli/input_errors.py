"""Bad input becomes located messages and exit code 1, never a traceback: shared by the commands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from distill_guard.cli import exit_codes
from distill_guard.errors import DistillGuardError, PolicyError


@contextmanager
def exit_on_invalid_input(err: Console) -> Iterator[None]:
    """Print a PolicyError's FILE:LINE:COL issues, or any other input error, and exit 1."""
    try:
        yield
    except PolicyError as exc:
        for issue in exc.issues:
            err.print(str(issue), markup=False)
        raise typer.Exit(exit_codes.INVALID_INPUT) from None
    except (DistillGuardError, OSError, ValueError) as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(exit_codes.INVALID_INPUT) from None
