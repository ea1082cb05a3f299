"""The stated false-halt rate holds per run through the guard's halt path, over correlated looks.

A seeded simulation through `DriftMonitor` (its look plan, `assess`, patience): several probes
per look, every probe of every null run sitting exactly at its limit (the least favourable point
of H0: drift <= limit), each item's drift an AR(1) walk across looks, so consecutive looks are
almost the same look, and looks beyond the plan spending the reserve. (tests/drift/test_limit_test.py
checks the single test; this checks the plan as the monitor applies it.)
"""

from __future__ import annotations

import math
import random

from distill_guard.drift.monitor import DriftMonitor, LookPlan
from distill_guard.policy.schema import Threshold
from distill_guard.probes.result import ProbeResult

RUNS = 2000
PLANNED_LOOKS = 10
EXTRA_LOOKS = 2  # looks beyond the plan (on_evaluate, a resumed run) spend the reserve
PROBES = 3
ITEMS = 12
RHO = 0.9  # correlation of an item's drift between consecutive looks
LIMIT = 0.05
RATE = 0.05
IDS = tuple(f"item-{i}" for i in range(ITEMS))
BASELINE = tuple(0.2 for _ in IDS)


def _result(probe: int, scores: list[float]) -> ProbeResult:
    return ProbeResult(f"probe-{probe}", "python", None, IDS, tuple(scores), is_probability=False)


def _null_run(rng: random.Random, *, spend_budget: bool) -> bool:
    """One benign run watched by a fresh monitor; True when it was halted."""
    monitor = DriftMonitor()
    for probe in range(PROBES):
        monitor.set_baseline(_result(probe, list(BASELINE)))
    monitor.plan_looks(RATE, PLANNED_LOOKS, PROBES)
    threshold = Threshold(max_increase=LIMIT)
    noise = [[rng.gauss(0, 1) for _ in IDS] for _ in range(PROBES)]
    for look in range(1, PLANNED_LOOKS + EXTRA_LOOKS + 1):
        if look > 1:
            noise = [[RHO * e + math.sqrt(1 - RHO**2) * rng.gauss(0, 1) for e in row] for row in noise]
        alpha = monitor.next_look() if spend_budget else RATE
        for probe, row in enumerate(noise):
            scores = [b + LIMIT + 0.02 * e for b, e in zip(BASELINE, row, strict=True)]
            if monitor.observe(_result(probe, scores), threshold, step=look, alpha=alpha).tripped:
                return True
    return False


def test_per_run_false_halt_rate_holds_over_correlated_looks_and_probes() -> None:
    rng = random.Random(20261201)
    halted = sum(_null_run(rng, spend_budget=True) for _ in range(RUNS))
    slack = 3 * math.sqrt(RATE * (1 - RATE) / RUNS)  # three binomial standard errors
    assert halted / RUNS <= RATE + slack


def test_testing_every_look_at_the_whole_rate_would_break_the_bound() -> None:
    rng = random.Random(20261202)
    runs = RUNS // 10
    assert sum(_null_run(rng, spend_budget=False) for _ in range(runs)) / runs > 3 * RATE


def test_the_plan_spends_no_more_than_the_rate_however_many_looks_come() -> None:
    plan = LookPlan(RATE, PLANNED_LOOKS, PROBES)
    spent = sum(plan.level(look) * PROBES for look in range(1, 10_000))
    assert spent <= RATE and spent > 0.99 * RATE
