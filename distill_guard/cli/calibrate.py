"""`distill-guard calibrate`: measure how far benign fine-tuning moves a policy's probes (exit 1 on bad input)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from distill_guard.atomic_files import refuse_unwritable
from distill_guard.cli import exit_codes
from distill_guard.cli.input_errors import exit_on_invalid_input
from distill_guard.input_files import InputFileError, read_bounded
from distill_guard.policy.load import load_policy

MAX_DATA_BYTES = 512 * 1024 * 1024

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def calibrate(
    policy: Annotated[Path, typer.Option(help="the policy whose probes to measure")],
    model: Annotated[Path, typer.Option(help="the student checkpoint directory (save_pretrained output)")],
    data: Annotated[Path, typer.Option(help="trusted training text, one example per line")],
    out_file: Annotated[Path, typer.Option("--out", help="benign-drift JSON to write (probes.benign_drift)")],
    seeds: Annotated[str, typer.Option(help="comma-separated seeds, one benign run each")] = "0,1,2",
    steps: Annotated[int, typer.Option(help="optimizer steps per run")] = 100,
    learning_rate: Annotated[float, typer.Option(help="constant learning rate")] = 1e-4,
    batch_size: Annotated[int, typer.Option(help="per-device batch size")] = 8,
) -> None:
    """Train the student briefly on trusted data (one run per seed) and record each probe's largest drift."""
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        err.print(f"--seeds {seeds!r}: give comma-separated integers", markup=False)
        raise typer.Exit(exit_codes.USAGE) from None
    if not model.is_dir():
        err.print(f"--model {model}: no such directory", markup=False)
        raise typer.Exit(exit_codes.INVALID_INPUT)
    with exit_on_invalid_input(err):
        loaded = load_policy(policy)
        refuse_unwritable(out_file)
        try:
            text = read_bounded(data, MAX_DATA_BYTES).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputFileError(data, f"not UTF-8 text (byte {exc.start})") from None
        lines = [line for line in text.splitlines() if line.strip()]
        from distill_guard.calibration import calibrate as run_calibration  # the training stack, only now

        with tempfile.TemporaryDirectory() as work:
            result = run_calibration(
                loaded,
                model,
                lines,
                seeds=seed_list,
                steps=steps,
                learning_rate=learning_rate,
                batch_size=batch_size,
                work_dir=Path(work),
                out_file=out_file,
            )
    for probe, values in sorted(result.per_probe.items()):
        out.print(f"{probe}: largest benign drift {max(values):+.4f} over {len(values)} runs", markup=False)
    out.print(f"wrote {out_file}; reference it as probes.benign_drift in the policy", markup=False)
