"""The per-look limit test and the run's false-halt budget, checked against simulation and scipy."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats

from distill_guard.drift.limit_test import UNPLANNED_SHARE, check_limit, spend


def test_the_levels_of_all_looks_and_tests_sum_to_at_most_the_rate() -> None:
    planned, tests = 40, 27
    total = sum(spend(0.01, look, planned, tests) * tests for look in range(1, 400))
    assert total <= 0.01 * (1 + 1e-12)
    assert sum(spend(0.01, look, planned) for look in range(1, planned + 1)) == pytest.approx(0.01 * 0.9)
    assert spend(0.01, planned + 1, planned) == pytest.approx(0.01 * UNPLANNED_SHARE / 2)


def test_the_lower_bound_uses_student_t_with_items_minus_one_degrees_of_freedom() -> None:
    values = [0.1, 0.3, 0.2]
    result = check_limit(values, limit=0.0, alpha=0.01)
    se = stats.sem(values)
    assert result.lower_bound == pytest.approx(0.2 - stats.t.ppf(0.99, 2) * se)
    assert not result.exceeded  # a normal cutoff (2.33) would have called this exceeded
    assert 0.2 - 2.33 * se > 0


def test_a_uniform_shift_is_judged_by_its_size_not_its_consistency() -> None:
    """Zero spread makes the bound the mean itself: below the limit passes, above it does not."""
    assert not check_limit([0.04] * 52, limit=0.05, alpha=1e-6).exceeded
    assert check_limit([0.06] * 52, limit=0.05, alpha=1e-6).exceeded


def test_non_finite_values_give_no_bound() -> None:
    assert math.isnan(check_limit([0.1, math.nan], limit=0.0, alpha=0.01).lower_bound)


def _run_halts(rng: random.Random, *, items: int, looks: int, limit: float, alpha_of) -> bool:
    """One simulated benign run at the worst case of H0: the population mean drift sits at the limit.

    Each item's deviation follows an AR(1) walk across looks (consecutive looks strongly
    correlated, as in training), so the looks are far from independent.
    """
    state = [rng.gauss(0, 1) for _ in range(items)]
    for look in range(1, looks + 1):
        state = [0.95 * s + math.sqrt(1 - 0.95**2) * rng.gauss(0, 1) for s in state]
        if check_limit([limit + 0.1 * s for s in state], limit, alpha_of(look)).exceeded:
            return True
    return False


def test_the_per_run_false_halt_rate_holds_over_many_correlated_looks() -> None:
    rng = random.Random(12)
    rate, looks, runs = 0.05, 40, 1500
    spent = sum(
        _run_halts(rng, items=8, looks=looks, limit=0.2, alpha_of=lambda k: spend(rate, k, looks)) for _ in range(runs)
    )
    naive = sum(_run_halts(rng, items=8, looks=looks, limit=0.2, alpha_of=lambda k: rate) for _ in range(runs))
    slack = 3 * math.sqrt(rate * (1 - rate) / runs)
    assert spent / runs <= rate + slack
    assert naive / runs > rate + slack  # testing every look at the full rate breaks the bound
