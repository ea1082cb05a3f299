"""Paired per-item differences: each prompt is its own control, which removes between-prompt variance."""

from __future__ import annotations

import math
from dataclasses import dataclass

from distill_guard.probes.result import ProbeResult


@dataclass(frozen=True)
class PairedDrift:
    mean: float
    stderr: float
    z: float
    n: int


def paired_drift(baseline: ProbeResult, current: ProbeResult, *, noise_floor: float = 0.0) -> PairedDrift:
    """Mean, standard error and z of `current - baseline` over the same items.

    `noise_floor` (a standard error measured at baseline, e.g. across batch layouts) is added in
    quadrature, so numerical jitter of the forward pass alone can never look significant.
    Non-finite inputs give a NaN mean and z; callers treat that as a breach, never a pass.
    """
    if baseline.item_ids != current.item_ids:
        raise ValueError(
            f"probe '{current.suite}': items differ from the baseline's; drift needs the same items in the same order"
        )
    diffs = [c - b for b, c in zip(baseline.item_scores, current.item_scores, strict=True)]
    n = len(diffs)
    if not all(math.isfinite(d) for d in diffs):
        return PairedDrift(math.nan, math.nan, math.nan, n)
    mean = math.fsum(diffs) / n
    variance = math.fsum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    stderr = math.sqrt(variance / n + noise_floor**2)
    return PairedDrift(mean, stderr, _z(mean, stderr), n)


def _z(mean: float, stderr: float) -> float:
    """Standard errors from zero; an exact (zero-variance) non-zero shift is infinitely significant."""
    if stderr > 0:
        return mean / stderr
    return 0.0 if mean == 0 else math.copysign(math.inf, mean)
