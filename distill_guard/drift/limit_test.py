"""Is the drift above its limit? A one-sided t test per look, at a level spent from the run's budget.

The unit of replication is the probe item (a prompt): the items of a suite are taken as a sample
of the phrasings the trait could be asked with, and the question is whether the *mean* drift
over that population exceeds the limit (H0: mean drift <= limit). Scores are exact, so the
spread across items is the only uncertainty the test sees; drift that ordinary fine-tuning
causes is kept out by the limit itself, which calibration places above the benign range.
The level of each look comes from `spend`, which splits the run's false-halt budget over the
planned looks and the tests made at each look (Bonferroni: valid under any dependence between
looks, however autocorrelated). docs/detection.md has the derivation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

# Share of the budget kept for looks beyond the plan (an on_evaluate look, a run extended on
# resume); they spend it geometrically, so no number of extra looks can exceed the budget.
UNPLANNED_SHARE = 0.1


def spend(false_halt_rate: float, look: int, planned_looks: int, tests_per_look: int = 1) -> float:
    """The level of one test at look `look` (1-based), so that all tests of a run sum to the rate.

    Planned looks 1..K share (1 - UNPLANNED_SHARE) of the rate evenly; look K + j gets
    UNPLANNED_SHARE * 2**-j of it. Each look's share is split evenly over its `tests_per_look`.
    """
    if look < 1 or planned_looks < 1 or tests_per_look < 1:
        raise ValueError("look, planned_looks and tests_per_look start at 1")
    if look <= planned_looks:
        share = (1 - UNPLANNED_SHARE) / planned_looks
    else:
        share = UNPLANNED_SHARE * 2.0 ** -(look - planned_looks)
    return false_halt_rate * share / tests_per_look


@dataclass(frozen=True)
class LimitTest:
    """One-sided test of H0: mean(values) <= limit at level `alpha`.

    `lower_bound` is the (1 - alpha) lower confidence bound of the mean; H0 is rejected, and the
    limit counts as exceeded, exactly when that bound lies above the limit.
    """

    mean: float
    stderr: float
    n: int
    limit: float
    alpha: float
    critical: float
    lower_bound: float

    @property
    def exceeded(self) -> bool:
        return self.lower_bound > self.limit

    @property
    def t(self) -> float:
        """(mean - limit) / stderr: how far above the limit, in standard errors."""
        if self.stderr > 0:
            return (self.mean - self.limit) / self.stderr
        gap = self.mean - self.limit
        return 0.0 if gap == 0 else math.copysign(math.inf, gap)


@functools.lru_cache(maxsize=4096)
def critical_t(alpha: float, df: float) -> float:
    """Upper-alpha quantile of Student's t (df = inf: the normal), from scipy."""
    return float(stats.t.isf(alpha, df))


def check_limit(values: Sequence[float], limit: float, alpha: float, *, extra_stderr: float = 0.0) -> LimitTest:
    """Student-t lower bound of the mean of `values`, compared with `limit`.

    `extra_stderr` (a measured numerical noise floor) is added in quadrature. With one item
    there is no spread to estimate: the bound is the value itself (no claim beyond that item).
    Non-finite values give a NaN bound, which the caller reports as a breach.
    """
    n = len(values)
    if n == 0:
        raise ValueError("a limit test needs at least one value")
    if not all(math.isfinite(v) for v in values):
        return LimitTest(math.nan, math.nan, n, limit, alpha, math.nan, math.nan)
    mean = math.fsum(values) / n
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    stderr = math.sqrt(variance / n + extra_stderr**2)
    df = n - 1 if n > 1 else math.inf
    critical = critical_t(alpha, df) if stderr > 0 else 0.0
    return LimitTest(mean, stderr, n, limit, alpha, critical, mean - critical * stderr)
