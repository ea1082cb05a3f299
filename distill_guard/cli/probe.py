"""`distill-guard probe`: trait scores of a checkpoint, with standard errors (exit 1 on invalid input)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from distill_guard.checkpoint_loading import load_checkpoint
from distill_guard.cli import exit_codes
from distill_guard.cli.input_errors import exit_on_invalid_input
from distill_guard.policy.load import load_policy
from distill_guard.policy.schema import SuiteRef
from distill_guard.probes.result import ProbeResult
from distill_guard.provenance.checkpoint_folder import validate_checkpoint_folder

if TYPE_CHECKING:  # probes import torch; only `probe` itself, which loads a model, needs them
    from distill_guard.probes.prepared import PreparedProbe

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)
DEFAULT_MAX_TOKENS_PER_BATCH = 4096


def _probes(suites: list[str], policy: Path | None, target: str | None) -> tuple[list[PreparedProbe], int]:
    from distill_guard.probes.prepared import prepare_probe, prepare_probes

    if policy is not None:
        loaded = load_policy(policy)
        return prepare_probes(loaded), loaded.policy.probes.max_tokens_per_batch
    refs = [SuiteRef(use=s) if s.startswith("builtin:") else SuiteRef(path=s) for s in suites]
    probes = [prepare_probe(ref.model_copy(update={"target": target})) for ref in refs]
    return probes, DEFAULT_MAX_TOKENS_PER_BATCH


def _table(results: list[ProbeResult]) -> Table:
    table = Table(title="trait probes")
    for column in ("probe", "kind", "trait", "score", "± s.e.", "items", "seconds"):
        table.add_column(column, justify="right" if column in {"score", "± s.e.", "items", "seconds"} else "left")
    for r in results:
        table.add_row(
            r.suite,
            r.kind,
            r.trait or "-",
            f"{r.score:.4f}",
            f"{r.stderr:.4f}",
            str(len(r.item_ids)),
            f"{r.duration_seconds:.2f}",
        )
    return table


def probe(
    model: Annotated[Path, typer.Option(help="checkpoint directory (save_pretrained output, or a PEFT adapter)")],
    suite: Annotated[list[str] | None, typer.Option(help="builtin:NAME or a suite file; repeatable")] = None,
    policy: Annotated[Path | None, typer.Option(help="run every suite of this policy instead")] = None,
    target: Annotated[str | None, typer.Option(help="trait target for --suite, e.g. owl (or 'lion,tiger')")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print results (with per-item scores) as JSON")] = False,
    max_tokens_per_batch: Annotated[
        int | None, typer.Option(help="token budget of one forward (default: the policy's, else 4096)")
    ] = None,
) -> None:
    """Score a checkpoint on trait probes, exactly, by log-probability; prints scores with standard errors."""
    if (policy is None) == (not suite):
        err.print("give either --policy or at least one --suite", markup=False)
        raise typer.Exit(exit_codes.USAGE)
    if policy is not None and target is not None:
        err.print("--target applies to --suite; a policy sets targets per suite", markup=False)
        raise typer.Exit(exit_codes.USAGE)
    if not model.is_dir():
        err.print(f"--model {model}: no such directory", markup=False)
        raise typer.Exit(exit_codes.INVALID_INPUT)
    with exit_on_invalid_input(err):
        probes, budget = _probes(suite or [], policy, target)
        validate_checkpoint_folder(model)
        loaded_model, tokenizer = load_checkpoint(model)
        results = [p.run(loaded_model, tokenizer, max_tokens_per_batch=max_tokens_per_batch or budget) for p in probes]
    if as_json:
        typer.echo(json.dumps({"model": str(model), "results": [r.to_json() for r in results]}, indent=2))
    else:
        out.print(_table(results))
