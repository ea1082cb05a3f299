"""`distill-guard export ...`: write the shipped schema, dashboard, alert rules and policies to files.

Everything comes from the package data (`distill_guard/data/`), so an installed wheel can set up a
cluster or a repository without a source checkout. Files are written atomically and never replace
an existing file unless `--force` is given; `--out -` prints to standard output instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console

from distill_guard.atomic_files import OutputFileError, refuse_unwritable, write_atomically
from distill_guard.bundled import POLICY_NAMES, data_path, policy_path
from distill_guard.cli import exit_codes

app = typer.Typer(help="Write the shipped schema, dashboard, alert rules and policies to files.", no_args_is_help=True)
out = Console(stderr=True, soft_wrap=True, highlight=False)

# Every alert's runbook_url is this page plus the alert's #anchor; --runbook-base swaps the page.
SHIPPED_RUNBOOK = "https://github.com/distill-guard/distill-guard/blob/main/docs/observability.md"
RunbookOption = Annotated[
    str | None, typer.Option(help="URL of your copy of docs/observability.md for the alerts' runbook_url")
]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="file to write; '-' prints to standard output")]
ForceOption = Annotated[bool, typer.Option("--force", help="replace the file if it exists")]


def _fail(message: str, code: int = exit_codes.INVALID_INPUT) -> typer.Exit:
    out.print(message, markup=False)
    return typer.Exit(code)


def write_out(files: list[tuple[Path, str]], *, force: bool) -> None:
    """Each file whole or not at all; without --force, nothing is written when any target exists."""
    if [str(target) for target, _ in files] == ["-"]:
        typer.echo(files[0][1], nl=False)
        return
    try:
        for target, _ in files:
            refuse_unwritable(target)
    except OutputFileError as exc:
        raise _fail(f"{exc} (nothing was written)") from None
    taken = [str(target) for target, _ in files if target.exists() and not force]
    if taken:
        raise _fail(f"{', '.join(taken)}: exists; pass --force to replace it (nothing was written)")
    for target, text in files:
        try:
            write_atomically(target, text, overwrite=force)
        except FileExistsError:
            raise _fail(f"{target}: created by someone else meanwhile; pass --force to replace it") from None
        except OutputFileError as exc:
            raise _fail(str(exc)) from None
        out.print(f"wrote {target}", markup=False)


def shipped_text(*parts: str) -> str:
    return data_path(*parts).read_text("utf-8")


@app.command()
def schema(out_path: OutOption = Path("schema.json"), force: ForceOption = False) -> None:
    """The policy JSON Schema (`$id` included), for editors and CI validators."""
    write_out([(out_path, shipped_text("policies", "schema.json"))], force=force)


@app.command()
def dashboard(out_path: OutOption = Path("distill-guard-dashboard.json"), force: ForceOption = False) -> None:
    """The Grafana dashboard (import it, or provision it: see `export provisioning`)."""
    write_out([(out_path, shipped_text("grafana", "dashboard.json"))], force=force)


@app.command()
def provisioning(
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="folder to write datasources/ and dashboards/ into")
    ] = Path("grafana-provisioning"),
    force: ForceOption = False,
) -> None:
    """Grafana provisioning files: a Prometheus datasource and a dashboard provider (set their paths and URL)."""
    files = (("datasources", "prometheus.yaml"), ("dashboards", "distill-guard.yaml"))
    write_out([(out_dir / k / n, shipped_text("grafana", "provisioning", k, n)) for k, n in files], force=force)


def alert_rules_text(runbook_base: str | None) -> str:
    """The shipped rule file, comments kept, with the runbook links pointing at `runbook_base`."""
    text = shipped_text("prometheus", "alerts.yaml")
    if runbook_base is None:
        return text
    if not runbook_base.startswith(("https://", "http://")):
        raise _fail(f"--runbook-base {runbook_base!r}: expected an absolute http(s) URL", exit_codes.USAGE)
    return text.replace(f'"{SHIPPED_RUNBOOK}#', f'"{runbook_base.rstrip("/#")}#')


@app.command()
def alerts(
    out_path: OutOption = Path("distill-guard-alerts.yaml"),
    runbook_base: RunbookOption = None,
    force: ForceOption = False,
) -> None:
    """The Prometheus alert rules, as a plain rule file (`rule_files:` in prometheus.yml)."""
    write_out([(out_path, alert_rules_text(runbook_base))], force=force)


def prometheus_rule(name: str, namespace: str | None, labels: dict[str, str], runbook_base: str | None) -> dict:
    """The alert rules as a Prometheus Operator `PrometheusRule` (the operator's ruleSelector matches `labels`)."""
    metadata: dict = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = labels
    groups = yaml.safe_load(alert_rules_text(runbook_base))["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata,
        "spec": {"groups": groups},
    }


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _fail(f"--label {pair!r}: expected KEY=VALUE, e.g. release=prometheus", exit_codes.USAGE)
        labels[key] = value
    return labels


@app.command("prometheusrule")
def prometheusrule(
    out_path: OutOption = Path("distill-guard-prometheusrule.yaml"),
    name: Annotated[str, typer.Option(help="metadata.name of the PrometheusRule")] = "distill-guard",
    namespace: Annotated[str | None, typer.Option(help="metadata.namespace (default: kubectl's)")] = None,
    label: Annotated[list[str] | None, typer.Option(help="metadata label KEY=VALUE; repeatable")] = None,
    runbook_base: RunbookOption = None,
    force: ForceOption = False,
) -> None:
    """The alert rules as a Kubernetes PrometheusRule, for clusters run by the Prometheus Operator."""
    manifest = prometheus_rule(name, namespace, _labels(label or []), runbook_base)
    write_out([(out_path, yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True))], force=force)


@app.command()
def policy(
    name: Annotated[str, typer.Argument(help=f"shipped policy: {', '.join(POLICY_NAMES)}")],
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="folder for NAME.yaml and the suite files it names")
    ] = Path("."),
    force: ForceOption = False,
) -> None:
    """A shipped policy, with the suite files it names (kept at the same relative paths, so it validates)."""
    if name not in POLICY_NAMES:
        raise _fail(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}", exit_codes.USAGE)
    from distill_guard.policy.load import load_policy  # pydantic models: only this export needs them

    source = policy_path(name)
    suites = [ref.path for ref in load_policy(source).policy.probes.suites if ref.path is not None]
    files = [(out_dir / r, (source.parent / r).read_text("utf-8")) for r in (f"{name}.yaml", *suites)]
    write_out(files, force=force)
