"""Entry point: `distill-guard` with one sub-command group per concern."""

from __future__ import annotations

import typer

from distill_guard.cli import calibrate, check, demo, manifest, policy, probe

app = typer.Typer(
    name="distill-guard",
    help="Keep hidden traits from leaking into models trained on model-generated data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(policy.app, name="policy")
app.add_typer(manifest.app, name="manifest")
app.command("check")(check.check)
app.command("probe")(probe.probe)
app.command("demo")(demo.demo)
app.command("calibrate")(calibrate.calibrate)


def main() -> None:
    app()
