"""The guard's numbers as Trainer logs, so every `report_to` tracker (TensorBoard, MLflow, W&B, ...) shows them.

Trainer hands logs to the reporting callbacks before user callbacks, so a callback cannot add to
the Trainer's own logs; it calls `trainer.log` itself, as TRL's callbacks do. The guard calls the
base `transformers.Trainer.log`: a TRL trainer's `log` override would flush (and reset) its own
averaged training metrics, and print completion tables, at every probe step.

Keys are `distill_guard/...` (TensorBoard and W&B show them under `train/distill_guard/...`,
as transformers prefixes every training log). Values are plain floats; a failed probe's NaN
stays NaN, so a broken probe never shows a plausible number.
"""

from __future__ import annotations

import re
from typing import Any

from distill_guard.drift.assess import DriftReport
from distill_guard.probes.result import ProbeResult
from distill_guard.provenance.decision import Decision

PREFIX = "distill_guard"
PROVENANCE_OUTCOMES = ("allow", "warn", "deny")
_UNSAFE_KEY_CHARACTERS = re.compile(r"[^0-9A-Za-z_.\-]")


def _probe_key(probe: str, name: str) -> str:
    # One path segment per probe: a label with `/` or spaces would split or break a tracker's key.
    return f"{PREFIX}/{_UNSAFE_KEY_CHARACTERS.sub('_', probe)}/{name}"


def baseline_scalars(result: ProbeResult) -> dict[str, float]:
    """A probe's step-0 numbers: its score is its baseline, with no drift yet."""
    return {
        _probe_key(result.suite, "score"): result.score,
        _probe_key(result.suite, "baseline"): result.score,
        _probe_key(result.suite, "drift"): 0.0,
        _probe_key(result.suite, "breach"): 0.0,
    }


def evaluation_scalars(report: DriftReport) -> dict[str, float]:
    """One evaluation of one probe: score, baseline, drift, the decision statistic and the breach flag.

    The decision statistic is `lower_bound`, the one-sided lower bound of the tested statistic (the
    drift, the specific drift of candidate probes) that the guard compares with the limit; `threshold` is the score at
    which the tightest limit is crossed, the same number as the Prometheus threshold gauge.
    """
    values: dict[str, float | None] = {
        "score": report.score,
        "baseline": report.baseline,
        "drift": report.drift,
        "specific_drift": report.specific,
        "lower_bound": report.lower_bound,
        "threshold": report.limit,
        "breach": 1.0 if report.breached else 0.0,
    }
    return {_probe_key(report.probe, name): float(value) for name, value in values.items() if value is not None}


def halted_scalars(halted: bool) -> dict[str, float]:
    return {f"{PREFIX}/halted": 1.0 if halted else 0.0}


def provenance_scalars(decision: Decision) -> dict[str, float]:
    """The gate's outcome as one-hot flags (trackers take numbers) and the count of dropped records."""
    flags = {f"{PREFIX}/provenance/{outcome}": float(decision.outcome == outcome) for outcome in PROVENANCE_OUTCOMES}
    return flags | {f"{PREFIX}/provenance/dropped_records": float(sum(d.count for d in decision.dropped))}


def send(trainer: Any, scalars: dict[str, float]) -> None:
    """Log `scalars` through `trainer`'s callbacks at its current step (call on the main process only).

    Dispatching `on_log` clears `control.should_log`; it is put back, so a probe step that is also
    a logging step still logs the Trainer's loss.
    """
    from transformers import Trainer

    should_log = trainer.control.should_log
    try:
        Trainer.log(trainer, dict(scalars))
    finally:
        trainer.control.should_log = should_log
