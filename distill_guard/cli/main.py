"""Entry point: `distill-guard` with one sub-command group per concern.

Each sub-command's module is imported when that command runs (or `--help` lists it), so a command
pays only for its own imports: `policy validate` in a pre-commit hook never loads the manifest
models, the gate's Arrow code or the training stack.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import Annotated

import typer
from typer.core import TyperGroup

from distill_guard._version import __version__

# command name -> (module, attribute): a Typer group or a command function
COMMANDS: dict[str, tuple[str, str]] = {
    "policy": ("distill_guard.cli.policy", "app"),
    "manifest": ("distill_guard.cli.manifest", "app"),
    "export": ("distill_guard.cli.export", "app"),
    "check": ("distill_guard.cli.check", "check"),
    "screen": ("distill_guard.cli.screen", "screen"),
    "probe": ("distill_guard.cli.probe", "probe"),
    "demo": ("distill_guard.cli.demo", "demo"),
    "calibrate": ("distill_guard.cli.calibrate", "calibrate"),
    "report": ("distill_guard.cli.report", "report"),
}


@cache
def load_command(name: str) -> typer.core.click.Command:
    """Built the way `add_typer` / `command` on the top-level app would build it (no completion options)."""
    module, attribute = COMMANDS[name]
    target = getattr(import_module(module), attribute)
    holder = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    built = typer.main.get_command(holder)
    return built.commands[name] if isinstance(built, TyperGroup) else built


class LazyCommands(TyperGroup):
    """The sub-commands of COMMANDS, each built from its module on first use."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: typer.Context, cmd_name: str) -> typer.core.click.Command | None:
        return load_command(cmd_name) if cmd_name in COMMANDS else None


app = typer.Typer(
    name="distill-guard",
    cls=LazyCommands,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    if asked:
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
    app()
