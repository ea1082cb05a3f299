"""Entry point: `distill-guard` with one sub-command group per concern."""

from __future__ import annotations

from typing import Annotated

import typer

from distill_guard._version import __version__
from distill_guard.cli import check, demo, manifest, policy, probe

app = typer.Typer(
    name="distill-guard",
    help="Keep hidden traits from leaking into models trained on model-generated data.",
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


app.add_typer(policy.app, name="policy")
app.add_typer(manifest.app, name="manifest")
app.command("check")(check.check)
app.command("probe")(probe.probe)
app.command("demo")(demo.demo)


def main() -> None:
    app()
