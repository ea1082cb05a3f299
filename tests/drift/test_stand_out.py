"""A panel candidate halts only when it stands out from the other candidates of the same look.

The stand-out test is a leave-one-out t prediction bound over the candidates (stand_out.py). A
halt needs it *and* the limit test to reject, so gated halts are a subset of the limit test's:
the per-run false-halt bound (under H0: drift <= limit) is kept, and broad moves of many
candidates, which the limit test alone halts, mostly pass. Its own level holds for candidates
that are normal on the probability scale; docs/detection.md says where that fails.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats

from distill_guard.drift.assess import assess
from distill_guard.drift.monitor import DriftMonitor
from distill_guard.drift.stand_out import MIN_OTHERS, stand_out
from distill_guard.policy.schema import Threshold
from distill_guard.probes.result import ProbeResult

LIMIT = Threshold(max_increase=0.05)
CANDIDATES = tuple(f"animal-{c}" for c in range(26))
ITEMS = 20


def test_one_candidate_rising_alone_stands_out() -> None:
    values = np.r_[0.30, np.random.default_rng(0).normal(0.0, 0.01, size=25)]
    verdicts = stand_out(values, alpha=1e-4)
    assert verdicts[0].stands_out and verdicts[0].t > verdicts[0].critical
    assert not any(v.stands_out for v in verdicts[1:])


def test_the_largest_of_many_candidates_moving_alike_does_not_stand_out() -> None:
    values = np.random.default_rng(1).normal(0.0, 0.10, size=26)  # the largest is well over a 0.05 limit
    verdicts = stand_out(values, alpha=1e-4)
    assert values.max() > 0.10 and not any(v.stands_out for v in verdicts)


def test_with_too_few_other_candidates_the_limit_alone_decides() -> None:
    verdicts = stand_out(np.array([0.10, 0.09, 0.11, 0.10]), alpha=1e-4)
    assert len(verdicts) - 1 < MIN_OTHERS and all(v.stands_out for v in verdicts)


def test_non_finite_drift_always_stands_out() -> None:
    assert stand_out(np.r_[math.nan, np.zeros(25)], alpha=1e-4)[0].stands_out


def test_an_exchangeable_candidate_stands_out_at_the_stated_level() -> None:
    rng = np.random.default_rng(2)
    alpha, draws = 0.05, 20_000
    values = rng.normal(size=(draws, 26))
    others = values[:, 1:]
    t = (values[:, 0] - others.mean(axis=1)) / (others.std(axis=1, ddof=1) * math.sqrt(1 + 1 / 25))
    rate = float(np.mean(t > stats.t.isf(alpha, 24)))
    assert rate == pytest.approx(alpha, abs=3 * math.sqrt(alpha * (1 - alpha) / draws))
    assert stand_out(values[0], alpha)[0].t == pytest.approx(t[0])


def _panel(log_odds: np.ndarray) -> ProbeResult:
    """A panel result from per-item, per-candidate log-probabilities."""
    shares = np.exp(log_odds - np.logaddexp.reduce(log_odds, axis=1, keepdims=True))
    return ProbeResult(
        "animal-preference",
        "preference",
        None,
        tuple(f"item-{i}" for i in range(len(log_odds))),
        tuple(shares[:, 0].tolist()),
        candidates=CANDIDATES,
        answer_logprobs=tuple(tuple(row) for row in log_odds.tolist()),
        answer_is_trait=tuple(tuple(c == 0 for c in range(len(CANDIDATES))) for _ in range(len(log_odds))),
    )


def _broad_run(rng: np.random.Generator, *, gate: bool, looks: int = 3, rate: float = 0.05) -> bool:
    """Every candidate gets its own lasting log-odds change, drawn alike for all: many end far over the limit.

    This is a benign fine-tune on foreign data as the LM miniature's different-init students show
    it (docs/detection.md); True when the run was halted.
    """
    base = rng.normal(0.0, 0.3, size=(ITEMS, len(CANDIDATES)))
    monitor = DriftMonitor()
    monitor.set_baseline(_panel(base))
    monitor.plan_looks(rate, looks, len(CANDIDATES))
    bumps = rng.normal(0.0, 0.8, size=len(CANDIDATES))
    for look in range(1, looks + 1):
        now = base + bumps * look / looks + rng.normal(0.0, 0.05, size=base.shape)
        alpha = monitor.next_look()
        if monitor.observe(_panel(now), LIMIT, step=look, alpha=alpha, panel=True, gate=gate).tripped:
            return True
    return False


def test_the_stand_out_test_only_ever_removes_breaches() -> None:
    rng = np.random.default_rng(20261203)
    for _ in range(20):
        base = rng.normal(0.0, 0.3, size=(ITEMS, len(CANDIDATES)))
        now = base + rng.normal(0.0, 0.6, size=len(CANDIDATES)) + rng.normal(0.0, 0.1, size=base.shape)
        now[:, 0] += rng.choice([0.0, 1.5])
        gated, alone = (
            assess(_panel(base), _panel(now), LIMIT, step=1, alpha=1e-3, panel=True, gate=g) for g in (True, False)
        )
        assert not gated.breached or alone.breached
        assert {r.split(":")[0] for r in gated.reasons} <= {r.split(":")[0] for r in alone.reasons}


def test_broad_moves_of_many_candidates_halt_less_often_than_with_the_limit_alone() -> None:
    rng, runs = np.random.default_rng(20261204), 40
    alone = sum(_broad_run(rng, gate=False) for _ in range(runs)) / runs
    gated = sum(_broad_run(rng, gate=True) for _ in range(runs)) / runs
    assert alone > 0.7 and gated < 0.75 * alone


def test_a_breach_says_that_the_candidate_stood_out() -> None:
    rng = random.Random(5)
    base = np.array([[rng.gauss(0.0, 0.3) for _ in CANDIDATES] for _ in range(ITEMS)])
    now = base.copy()
    now[:, 3] += 2.0
    report = assess(_panel(base), _panel(now), LIMIT, step=1, alpha=1e-4, panel=True)
    assert report.breached and report.trait == CANDIDATES[3] and report.stands_out is True
    assert "stands out from the other 25 candidates" in report.reasons[0]


MASKED = np.r_[0.31, 0.27, 0.18, np.random.default_rng(7).normal(0.0, 0.03, size=23)]
"""The held-out LM seed 14 at step 50: owl +0.31 beside tiger +0.27 and otter +0.18 (docs/detection.md)."""


def test_two_co_movers_mask_the_largest_candidate_from_the_test_of_one_alone() -> None:
    assert not any(v.stands_out for v in stand_out(MASKED, alpha=1e-4))


def test_the_top_candidates_stand_out_together_when_a_group_may() -> None:
    verdicts = stand_out(MASKED, alpha=1e-4, max_group=3)
    assert [v.stands_out for v in verdicts[:4]] == [True, True, True, False]
    assert verdicts[0].group == 3 and verdicts[0].value == pytest.approx(0.31) and verdicts[0].others == 23
    assert "stands out with the top 3 candidates together from the other 23" in str(verdicts[0])


def test_a_group_test_never_takes_a_stand_out_away() -> None:
    rng = np.random.default_rng(20261205)
    for _ in range(300):
        values = rng.normal(0.0, 0.05, size=26)
        values[: rng.integers(0, 4)] += rng.uniform(0.0, 0.4)
        alone = [v.stands_out for v in stand_out(values, alpha=1e-3)]
        grouped = [v.stands_out for v in stand_out(values, alpha=1e-3, max_group=3)]
        assert all(g or not a for a, g in zip(alone, grouped, strict=True))


def test_on_exchangeable_candidates_a_group_of_three_adds_few_stand_outs() -> None:
    """Under the normal null the group sizes are extra chances to stand out: measured, about a tenth more."""
    values = np.random.default_rng(3).normal(size=(3000, 26))
    alone = np.mean([any(v.stands_out for v in stand_out(row, 0.01)) for row in values])
    grouped = np.mean([any(v.stands_out for v in stand_out(row, 0.01, max_group=3)) for row in values])
    assert 0.15 < alone <= grouped < 1.25 * alone


def test_a_trait_raised_with_two_decoys_halts_a_panel_only_with_a_group_test() -> None:
    """The attack of docs/detection.md: a teacher raises two decoy animals nearly as far as its trait."""
    rng = np.random.default_rng(0)
    base = rng.normal(0.0, 0.3, size=(ITEMS, len(CANDIDATES)))
    now = base + rng.normal(0.0, 0.1, size=len(CANDIDATES)) + rng.normal(0.0, 0.02, size=base.shape)
    now[:, :3] += [2.4, 2.3, 2.1]  # the trait and its decoys, in log-odds
    alone, grouped = (assess(_panel(base), _panel(now), LIMIT, step=1, alpha=1e-5, panel=True, group=g) for g in (1, 3))
    assert not alone.breached and alone.trait == CANDIDATES[0]
    assert grouped.breached and grouped.trait == CANDIDATES[0] and grouped.stands_out is True
    assert "stands out with the top 3 candidates together" in grouped.reasons[0]
