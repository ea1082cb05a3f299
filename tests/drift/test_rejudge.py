"""A recorded panel look judged again under another stand-out test size gives the verdict a run with it gives.

The benchmarks count halts under each `stand_out_group` from one set of runs (rejudge.py); that is
only sound when judging the record again agrees with assessing the look live.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distill_guard.drift.assess import assess
from distill_guard.drift.monitor import DriftMonitor
from distill_guard.drift.rejudge import breaches_with_group, halt_with_group
from distill_guard.policy.benign_limits import BenignLimits
from distill_guard.policy.load import load_policy
from distill_guard.policy.schema import Threshold
from tests.drift.test_stand_out import CANDIDATES, ITEMS, LIMIT, _panel


def _look(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A base and a later look: a broad move of every candidate, and 0-3 top candidates raised together."""
    base = rng.normal(0.0, 0.3, size=(ITEMS, len(CANDIDATES)))
    now = base + rng.normal(0.0, rng.choice([0.05, 0.3]), size=len(CANDIDATES))
    now[:, : rng.integers(0, 4)] += rng.uniform(0.5, 2.5)
    return base, now + rng.normal(0.0, 0.05, size=base.shape)


@pytest.mark.parametrize("benign", [None, BenignLimits(0.05, 0.05, {"animal-1": 0.3})])
def test_judging_a_record_again_agrees_with_assessing_it_with_that_group(benign: BenignLimits | None) -> None:
    rng, verdicts = np.random.default_rng(20261206), set()
    for _ in range(60):
        base, now = (_panel(x) for x in _look(rng))
        recorded = assess(base, now, LIMIT, step=1, alpha=1e-3, panel=True, benign=benign)
        for group in (1, 2, 3):
            live = assess(base, now, LIMIT, step=1, alpha=1e-3, panel=True, group=group, benign=benign).breached
            assert breaches_with_group(recorded, LIMIT, group, benign) is live
            verdicts.add((group, live))
    assert {(g, v) for g in (1, 2, 3) for v in (True, False)} <= verdicts, "both verdicts seen at every size"


def test_a_record_cannot_be_judged_again_under_a_limit_it_does_not_record() -> None:
    base, now = (_panel(x) for x in _look(np.random.default_rng(1)))
    report = assess(base, now, LIMIT, step=1, alpha=1e-3, panel=True)
    with pytest.raises(ValueError, match="only max_increase"):
        breaches_with_group(report, Threshold(max_increase=0.05, max_score=0.9), 3)


def test_a_look_without_a_stand_out_test_keeps_its_verdict() -> None:
    base, now = (_panel(x) for x in _look(np.random.default_rng(2)))
    targeted = assess(base, now, LIMIT, step=1, alpha=1e-3)
    assert breaches_with_group(targeted, LIMIT, 3) is targeted.breached


PANEL_POLICY = """\
apiVersion: distill-guard/v1
kind: GuardPolicy
metadata: {name: rejudge}
probes:
  suites:
    - {use: "builtin:animal-preference", panel: true, threshold: {max_increase: 0.05, patience: 2}}
"""


THRESHOLD = Threshold(max_increase=0.05, patience=2)


def _live_halt(looks: list[tuple[np.ndarray, np.ndarray]], group: int) -> tuple[int | None, DriftMonitor]:
    monitor, halted = DriftMonitor(), None
    monitor.set_baseline(_panel(looks[0][0]))
    monitor.plan_looks(0.05, len(looks), len(CANDIDATES))
    for step, (_, now) in enumerate(looks, start=1):
        evaluation = monitor.observe(
            _panel(now), THRESHOLD, step=step, alpha=monitor.next_look(), panel=True, group=group
        )
        halted = halted or (step if evaluation.tripped else None)
    return halted, monitor


def test_a_recorded_run_halts_where_a_live_run_with_that_group_halts(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(PANEL_POLICY, encoding="utf-8")
    loaded = load_policy(tmp_path / "policy.yaml")
    rng, earlier = np.random.default_rng(20261207), 0
    for _ in range(12):
        base = rng.normal(0.0, 0.3, size=(ITEMS, len(CANDIDATES)))
        rise = np.zeros(len(CANDIDATES))
        rise[: rng.integers(1, 4)] = rng.uniform(0.3, 1.0)  # a trait with 0-2 co-movers, growing look by look
        looks = [(base, base + rise * t + rng.normal(0.0, 0.05, size=base.shape)) for t in range(1, 5)]
        _, recorded = _live_halt(looks, group=1)
        live = {g: _live_halt(looks, g)[0] for g in (1, 2, 3)}
        halts = {g: halt_with_group(recorded.history, loaded, g) for g in (1, 2, 3)}
        assert halt_with_group(recorded.history, loaded) == halts[1], "no group: the suite's own (1)"
        assert {g: halt.step if halt else None for g, halt in halts.items()} == live
        earlier += live[3] is not None and (live[1] is None or live[3] < live[1])
    assert earlier, "some masked trait halts earlier with a group of three"
