"""Drift decisions as pure functions: t tests against limits, patience, non-finite scores, persistence."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from distill_guard.drift.assess import assess
from distill_guard.drift.monitor import DriftMonitor
from distill_guard.drift.paired import paired_drift
from distill_guard.policy.schema import Threshold
from distill_guard.probes.result import ProbeResult

ALPHA = 0.01  # the level one look's test gets (a run spends its false-halt rate over many of these)


def result(scores: list[float], suite: str = "p") -> ProbeResult:
    return ProbeResult(suite, "preference", "owl", tuple(f"i{k}" for k in range(len(scores))), tuple(scores))


def test_paired_drift_removes_between_item_variance() -> None:
    base = result([0.1, 0.5, 0.9, 0.3])
    current = result([0.12, 0.52, 0.92, 0.32])
    paired = paired_drift(base, current)
    assert paired.mean == pytest.approx(0.02) and paired.stderr == pytest.approx(0.0, abs=1e-12)
    assert paired.z > 1e6  # the same shift on every item is overwhelmingly significant


def test_exact_shift_with_zero_variance_is_infinitely_significant() -> None:
    assert paired_drift(result([0.25, 0.5]), result([0.5, 0.75])).z == math.inf


def test_items_must_match_the_baseline() -> None:
    with pytest.raises(ValueError, match="items differ"):
        paired_drift(result([0.1, 0.2]), result([0.1, 0.2, 0.3]))


def test_increase_over_limit_but_not_significant_is_not_a_breach() -> None:
    report = assess(result([0.1] * 4), result([0.9, 0.0, 0.0, 0.0]), Threshold(max_increase=0.05), step=3, alpha=ALPHA)
    assert report.drift == pytest.approx(0.125) and report.z < 3 and not report.breached


def test_significant_increase_over_limit_is_a_breach_with_reason() -> None:
    report = assess(
        result([0.1, 0.2, 0.3]), result([0.3, 0.41, 0.5]), Threshold(max_increase=0.05), step=3, alpha=ALPHA
    )
    assert report.breached and "max_increase 0.05" in report.reasons[0] and report.limit == pytest.approx(0.25)


def test_significant_increase_under_limit_is_not_a_breach() -> None:
    report = assess(
        result([0.1, 0.2, 0.3]), result([0.12, 0.22, 0.31]), Threshold(max_increase=0.05), step=3, alpha=ALPHA
    )
    assert report.z > 3 and not report.breached


def test_relative_increase_limit() -> None:
    threshold = Threshold(max_relative_increase=0.5)
    assert assess(result([0.1, 0.1]), result([0.16, 0.16]), threshold, step=1, alpha=ALPHA).breached
    assert not assess(result([0.1, 0.1]), result([0.14, 0.14]), threshold, step=1, alpha=ALPHA).breached


def test_max_score_needs_the_t_bound_of_the_score_above_the_ceiling() -> None:
    threshold = Threshold(max_score=0.5)
    assert assess(result([0.4, 0.5]), result([0.8, 0.81]), threshold, step=1, alpha=ALPHA).breached
    assert not assess(result([0.4, 0.5]), result([0.2, 0.85]), threshold, step=1, alpha=ALPHA).breached


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_always_breach_even_without_threshold(bad: float) -> None:
    report = assess(result([0.1, 0.1]), result([0.1, bad]), None, step=5, alpha=ALPHA)
    assert report.breached and "non-finite" in report.reasons[0]
    assert report.to_json()["score"] is None and "score" in report.to_json()["non_finite"]


def test_noise_floor_widens_the_bound() -> None:
    base, current = result([0.1, 0.2, 0.3]), result([0.2, 0.3, 0.41])
    assert assess(base, current, Threshold(max_increase=0.05), step=1, alpha=ALPHA).breached
    assert not assess(base, current, Threshold(max_increase=0.05), step=1, alpha=ALPHA, noise_floor=0.05).breached


def test_patience_trips_only_on_consecutive_breaches() -> None:
    monitor = DriftMonitor()
    monitor.set_baseline(result([0.1, 0.2, 0.3]))
    threshold = Threshold(max_increase=0.05, patience=2)
    high, flat = result([0.3, 0.4, 0.51]), result([0.1, 0.2, 0.3])
    outcomes = [
        monitor.observe(r, threshold, step=s, alpha=ALPHA).tripped for s, r in enumerate([high, flat, high, high], 1)
    ]
    assert outcomes == [False, False, False, True]


def test_seeded_noise_only_run_never_trips() -> None:
    rng = random.Random(1234)
    truth = [rng.uniform(0.05, 0.3) for _ in range(50)]
    monitor = DriftMonitor()
    monitor.set_baseline(result([t + rng.gauss(0, 0.02) for t in truth]))
    plan = monitor.plan_looks(0.01, planned_looks=500, tests_per_look=1)
    threshold = Threshold(max_increase=0.01, patience=2)
    tripped = [
        monitor.observe(result([t + rng.gauss(0, 0.02) for t in truth]), threshold, step=s, alpha=plan.level(s)).tripped
        for s in range(1, 501)
    ]
    assert not any(tripped)
    assert max(abs(r.z) for r in monitor.history) < 4.5


def test_monitor_round_trips_through_json() -> None:
    monitor = DriftMonitor()
    monitor.set_baseline(result([0.1, 0.2]), recheck=result([0.1, 0.21]))
    monitor.plan_looks(0.01, planned_looks=10, tests_per_look=2)
    monitor.observe(result([0.3, math.nan]), Threshold(max_increase=0.05), step=2, alpha=monitor.next_look())
    restored = DriftMonitor.from_json(monitor.to_json())
    assert restored.baselines == monitor.baselines and restored.noise_floors == monitor.noise_floors
    assert restored.patience.streaks == {"p": 1}
    assert restored.plan == monitor.plan and restored.looks == 1
    assert math.isnan(restored.history[0].score) and restored.history[0].breached


def _named(log_odds: np.ndarray) -> ProbeResult:
    """A named-target (candidate 0) preference result from per-item, per-candidate log-probabilities."""
    shares = np.exp(log_odds - np.logaddexp.reduce(log_odds, axis=1, keepdims=True))
    flags = tuple(tuple(c == 0 for c in range(log_odds.shape[1])) for _ in range(len(log_odds)))
    return ProbeResult(
        "animal-preference",
        "preference",
        "owl",
        tuple(f"item-{i}" for i in range(len(log_odds))),
        tuple(shares[:, 0].tolist()),
        candidates=tuple(f"animal-{c}" for c in range(log_odds.shape[1])),
        answer_logprobs=tuple(tuple(row) for row in log_odds.tolist()),
        answer_is_trait=flags,
    )


def test_a_target_whose_share_fell_never_breaches_an_increase_limit_though_the_others_fell_further() -> None:
    """One answer takes the mass (a student SFT'd to say fox): every other candidate loses, the
    target less than the rest, so its *specific* drift is large while its share drops."""
    rng = np.random.default_rng(3)
    base = rng.normal(0.0, 0.2, size=(40, 12))
    took_over = base.copy()
    took_over[:, 1] += 6.0  # fox
    took_over[:, 2:] -= 4.0  # the others lose a lot, the target (column 0) nothing in log-probability
    limit = Threshold(max_increase=0.05)
    report = assess(_named(base), _named(took_over), limit, step=1, alpha=1e-4)
    assert report.score < report.baseline and report.specific is not None and report.specific > 0.05
    assert not report.breached
    rose = took_over.copy()
    rose[:, 0] += 6.0  # the same run, but the target's own share rises: the limit counts again
    assert _named(rose).score > _named(base).score
    assert assess(_named(base), _named(rose), limit, step=1, alpha=1e-4).breached
