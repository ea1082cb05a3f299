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

One or two candidates rising with the trait inflate s and mask it (the LM miniature's held-out
seeds: owl +0.31 beside tiger +0.27 and otter +0.18). With `max_group` g > 1 the top j <= g
candidates are also tested together, the generalised-ESD way: the j-th largest against the
candidates below it, and all j stand out when it does (the largest such j counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from distill_guard.drift.limit_test import critical_t

MIN_OTHERS = 4
"""Fewer other candidates give no usable spread: the limit test alone decides (fail closed)."""


@dataclass(frozen=True)
class StandOut:
    """One candidate's drift against the prediction bound of the other candidates' drifts.

    `group` is how many of the top candidates stood out together (1: alone, the leave-one-out
    test); for a group, `t` is that of its smallest member against the candidates below it.
    """

    value: float
    centre: float
    spread: float
    others: int
    alpha: float
    t: float
    critical: float
    group: int = 1

    @property
    def stands_out(self) -> bool:
        return self.others < MIN_OTHERS or not math.isfinite(self.t) or self.t > self.critical

    def __str__(self) -> str:
        if self.others < MIN_OTHERS:
            return f"only {self.others} other candidates, no stand-out test"
        who = "stands out" if self.group == 1 else f"stands out with the top {self.group} candidates together"
        return (
            f"{who} from the other {self.others} candidates (mean {self.centre:+.4f}, sd {self.spread:.4f}): "
            f"t {self.t:.2f} {'>' if self.stands_out else '<='} {self.critical:.2f}"
        )


def _against(value: float, others: np.ndarray, alpha: float, group: int = 1) -> StandOut:
    """`value` against the prediction bound of `others` (the t statistic of the module docstring)."""
    k = len(others)
    if k < MIN_OTHERS:
        return StandOut(value, math.nan, math.nan, k, alpha, math.nan, math.nan, group)
    centre, spread = float(others.mean()), float(others.std(ddof=1))
    gap = value - centre
    scale = spread * math.sqrt(1 + 1 / k)
    t = gap / scale if scale > 0 else (math.copysign(math.inf, gap) if gap else 0.0)
    return StandOut(value, centre, spread, k, alpha, t, critical_t(alpha, k - 1), group)


def _top_group(values: np.ndarray, alpha: float, max_group: int) -> tuple[list[int], StandOut | None]:
    """The largest j in 2..max_group whose top j finite candidates stand out together, and that test."""
    finite = np.flatnonzero(np.isfinite(values))
    order = finite[np.argsort(-values[finite], kind="stable")]
    found: tuple[list[int], StandOut | None] = ([], None)
    for j in range(2, max_group + 1):
        rest = values[order[j:]]
        if len(rest) < MIN_OTHERS:
            break
        test = _against(float(values[order[j - 1]]), rest, alpha, group=j)
        if test.stands_out:
            found = ([int(c) for c in order[:j]], test)
    return found


def stand_out(values: np.ndarray, alpha: float, max_group: int = 1) -> list[StandOut]:
    """For every candidate (entries of `values`, each a candidate's mean drift): does it stand out?

    Each candidate gets the leave-one-out test; with `max_group` > 1, a candidate that does not
    stand out alone but is in the largest top group that stands out gets that group's test.
    """
    values = np.asarray(values, dtype=np.float64)
    alone = [_against(float(v), np.delete(values, c), alpha) for c, v in enumerate(values)]
    members, group = _top_group(values, alpha, max_group) if max_group > 1 else ([], None)
    if group is None:
        return alone
    return [replace(group, value=s.value) if c in members and not s.stands_out else s for c, s in enumerate(alone)]
