"""The command line every example shares: pick a policy and a model, or build a tiny model to try it on CPU."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from distill_guard.scenarios.tiny_lm import make_tiny_checkpoint

REPO = Path(__file__).resolve().parents[2]


def run_example(build_trainer: Callable[..., Any], description: str) -> None:
    """Parse the flags, build the example's trainer and train; TrainingHalted propagates with its record."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--policy", type=Path, default=REPO / "policies" / "audit.yaml")
    parser.add_argument("--model", type=Path, help="student checkpoint folder (default: a fresh tiny model)")
    parser.add_argument("--output-dir", type=Path, default=Path("guarded-run"))
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--teacher", type=Path, help="teacher checkpoint (distillation only; default: the student)")
    parser.add_argument(
        "--report-to", nargs="*", default=[], help="trackers for the trainer and the guard, e.g. tensorboard"
    )
    options = parser.parse_args()
    model = options.model or make_tiny_checkpoint(Path(tempfile.mkdtemp()) / "student")
    extra = {"teacher_dir": options.teacher} if options.teacher else {}
    if not torch.cuda.is_available():  # TRL configs default to bf16, which needs an accelerator
        extra.update(use_cpu=True, bf16=False)
    trainer = build_trainer(
        model, options.policy, options.output_dir, max_steps=options.max_steps, report_to=options.report_to, **extra
    )
    trainer.train()
