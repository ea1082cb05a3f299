"""`distill-guard policy ...`: validate, schema, explain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from distill_guard.cli import exit_codes
from distill_guard.errors import PolicyError
from distill_guard.policy.load import load_policy, validate_policy_file
from distill_guard.policy.schema import GuardPolicy

app = typer.Typer(help="Check and read policy files.", no_args_is_help=True)
# Plain text through typer.echo: rich is loaded only to render Markdown (`explain` without --markdown),
# so the pre-commit hook's `validate` does not pay for it on every commit.


POLICY_SCHEMA_ID = "https://raw.githubusercontent.com/distill-guard/distill-guard/main/policies/schema.json"


def policy_json_schema() -> dict:
    schema = GuardPolicy.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = POLICY_SCHEMA_ID
    schema["title"] = "distill-guard GuardPolicy v1"
    return schema


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="policy files to check")],
    as_json: Annotated[bool, typer.Option("--json", help="print issues as JSON")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="treat warnings as errors")] = False,
) -> None:
    """Check policies: schema, cross-references, hostile YAML; prints every issue as FILE:LINE:COL."""
    results = {str(f): validate_policy_file(f) for f in files}
    failed = [f for f, issues in results.items() if any(i.severity == "error" or strict for i in issues)]
    if as_json:
        payload = {
            "valid": not failed,
            "files": [
                {"file": f, "valid": f not in failed, "issues": [vars(i) for i in issues]}
                for f, issues in results.items()
            ],
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        for f, issues in results.items():
            for issue in issues:
                typer.echo(str(issue), err=issue.severity == "error")
            if f not in failed:
                typer.echo(f"{f}: ok")
    raise typer.Exit(exit_codes.INVALID_INPUT if failed else exit_codes.OK)


@app.command()
def schema() -> None:
    """Print the policy JSON Schema (the same as the shipped schema.json: `distill-guard export schema`)."""
    typer.echo(json.dumps(policy_json_schema(), indent=2))


@app.command("explain")
def explain_cmd(
    file: Annotated[Path, typer.Argument(help="policy file")],
    plain: Annotated[bool, typer.Option("--markdown", help="print raw Markdown (for PR comments)")] = False,
) -> None:
    """Say in plain words what a policy blocks, trusts, watches and halts on."""
    from distill_guard.policy.explain import explain

    try:
        loaded = load_policy(file)
    except PolicyError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(exit_codes.INVALID_INPUT) from None
    text = explain(loaded)
    if plain:
        typer.echo(text)
    else:  # rich, markdown-it and pygments: only this rendering needs them
        from rich.console import Console
        from rich.markdown import Markdown

        Console(soft_wrap=False).print(Markdown(text))  # wrapped at the terminal width, never cut
