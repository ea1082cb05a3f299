"""Entry point: `distill-guard` with one sub-command group per concern.

Each sub-command's module is imported when that command runs (or `--help` lists it), so a command
pays only for its own imports: `policy validate` in a pre-commit hook never loads the manifest
models, the gate's Arrow code or the training stack.
"""

from __future__ import annotations

import os
from functools import cache
from importlib import import_module
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from distill_guard.cli import exit_codes
from distill_guard.extras import missing_extra_message

# command name -> (module, attribute, the one-line help `distill-guard --help` lists): a Typer group or a
# command function. The line is kept here so the listing imports no command module (`check` and `demo`
# would load scipy and more); tests/packaging/test_light_start.py keeps it equal to the command's own help.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "policy": ("distill_guard.cli.policy", "app", "Check and read policy files."),
    "manifest": ("distill_guard.cli.manifest", "app", "Write, sign and verify dataset provenance manifests."),
    "export": (
        "distill_guard.cli.export",
        "app",
        "Write the shipped schema, dashboard, alert rules and policies to files.",
    ),
    "check": (
        "distill_guard.cli.check",
        "check",
        "Decide whether the manifests' data may train the student: hashes, signatures, lineage, rules.",
    ),
    "screen": (
        "distill_guard.cli.screen",
        "screen",
        "Predict, before any training step, how far training on the data moves each probe of the policy.",
    ),
    "probe": (
        "distill_guard.cli.probe",
        "probe",
        "Score a checkpoint on trait probes, exactly, by log-probability; prints scores with standard errors.",
    ),
    "demo": (
        "distill_guard.cli.demo",
        "demo",
        "Show the danger and the guard: a refused dataset, an LM halted as it inherits a trait, "
        "controls that complete.",
    ),
    "calibrate": (
        "distill_guard.cli.calibrate",
        "calibrate",
        "Train the student briefly on trusted data (one run per seed) and record each probe's largest drift.",
    ),
    "report": (
        "distill_guard.cli.report",
        "report",
        "Report a guarded run from its audit log: curves per probe with limit and halt, the gate's decisions.",
    ),
}


@cache
def load_command(name: str) -> typer.core.click.Command:
    """Built the way `add_typer` / `command` on the top-level app would build it (no completion options)."""
    module, attribute, _ = COMMANDS[name]
    target = getattr(import_module(module), attribute)
    holder = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    built = typer.main.get_command(holder)
    return built.commands[name] if isinstance(built, TyperGroup) else built


class LazyCommands(TyperGroup):
    """The sub-commands of COMMANDS, each built from its module on first use; the help listing builds none."""

    listing = False

    def format_help(self, ctx: typer.Context, formatter: typer.core.click.HelpFormatter) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: typer.Context, cmd_name: str) -> typer.core.click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        if self.listing:
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name][2])
        try:
            return load_command(cmd_name)
        except ModuleNotFoundError as exc:  # e.g. `check` on a core install, without the training stack
            message = missing_extra_message(exc, f"distill-guard {cmd_name}")
            if message is None:
                raise
            typer.echo(message, err=True)
            raise typer.Exit(exit_codes.INVALID_INPUT) from None


app = typer.Typer(
    name="distill-guard",
    cls=LazyCommands,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        from distill_guard._version import __version__  # importlib.metadata: only --version reads it

        typer.echo(f"distill-guard {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Keep hidden traits from leaking into models trained on model-generated data."""


def main() -> None:
    # Pydantic looks for plugins among every installed distribution's entry points when it builds a
    # validator (tens of ms in a big environment). A plugin would only observe this command's own file
    # parsing, so the command skips the search, as Typer does for its parameters; set
    # PYDANTIC_DISABLE_PLUGINS yourself (e.g. to "") to decide otherwise. The library never sets it.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "1")
    app()
