"""Does one candidate of a panel stand out from the others? A prediction bound from the others' drifts.

A panel watches many candidates. Fine-tuning on data foreign to the model (another model's
numbers, generic text) moves many of them specifically, and one of them is always the largest;
a trait passing into a student moves one candidate while the others barely move. So a panel
candidate halts only when its drift is over the limit (`limit_test`) *and* outside what the other
candidates' drifts in the same look predict for one more candidate. The unit of replication of
this test is the candidate: the others are the sample of how far a candidate moves in this run.

With the other k candidates' mean m and standard deviation s, a candidate exchangeable with them
(normal) has T = (x - m) / (s * sqrt(1 + 1/k)) ~ Student t with k - 1 degrees of freedom, so it
stands out at level alpha when T > t_{1-alpha, k-1}. A halt needs both tests to reject (an
intersection-union test), which keeps each look's level: docs/detection.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from distill_guard.drift.limit_test import critical_t

MIN_OTHERS = 4
"""Fewer other candidates give no usable spread: the limit test alone decides (fail closed)."""


@dataclass(frozen=True)
class StandOut:
    """One candidate's drift against the prediction bound of the other candidates' drifts."""

    value: float
    centre: float
    spread: float
    others: int
    alpha: float
    t: float
    critical: float

    @property
    def stands_out(self) -> bool:
        return self.others < MIN_OTHERS or not math.isfinite(self.t) or self.t > self.critical

    def __str__(self) -> str:
        if self.others < MIN_OTHERS:
            return f"only {self.others} other candidates, no stand-out test"
        return (
            f"stands out from the other {self.others} candidates (mean {self.centre:+.4f}, sd {self.spread:.4f}): "
            f"t {self.t:.2f} {'>' if self.stands_out else '<='} {self.critical:.2f}"
        )


def stand_out(values: np.ndarray, alpha: float) -> list[StandOut]:
    """For every candidate (entries of `values`, each a candidate's mean drift): the leave-one-out test."""
    values = np.asarray(values, dtype=np.float64)
    out = []
    for c, value in enumerate(values):
        others = np.delete(values, c)
        k = len(others)
        if k < MIN_OTHERS:
            out.append(StandOut(float(value), math.nan, math.nan, k, alpha, math.nan, math.nan))
            continue
        centre, spread = float(others.mean()), float(others.std(ddof=1))
        gap = float(value) - centre
        scale = spread * math.sqrt(1 + 1 / k)
        t = gap / scale if scale > 0 else (math.copysign(math.inf, gap) if gap else 0.0)
        out.append(StandOut(float(value), centre, spread, k, alpha, t, critical_t(alpha, k - 1)))
    return out
