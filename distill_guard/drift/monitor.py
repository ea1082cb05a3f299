"""Per-run drift bookkeeping: baselines, the look plan, patience streaks, history and the tripped flag.

Holds no model and does no I/O, so it can be saved to trainer_state.json as plain JSON and a
resumed run continues against the *original* step-0 baseline, never a fresh one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from distill_guard.drift.assess import CandidateDrift, DriftReport, assess
from distill_guard.drift.limit_test import spend
from distill_guard.drift.paired import paired_drift
from distill_guard.drift.patience import PatienceTracker
from distill_guard.policy.benign_limits import BenignLimits
from distill_guard.policy.schema import Threshold
from distill_guard.probes.result import ProbeResult

HISTORY_LIMIT = 2000


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of one probe: the report, and whether its patience ran out."""

    report: DriftReport
    tripped: bool
    failed: bool = False


@dataclass(frozen=True)
class LookPlan:
    """How the run's false-halt budget is spent: over `planned_looks` looks of `tests_per_look` tests."""

    false_halt_rate: float
    planned_looks: int
    tests_per_look: int

    def level(self, look: int) -> float:
        return spend(self.false_halt_rate, look, self.planned_looks, self.tests_per_look)


@dataclass
class DriftMonitor:
    baselines: dict[str, ProbeResult] = field(default_factory=dict)
    noise_floors: dict[str, float] = field(default_factory=dict)
    patience: PatienceTracker = field(default_factory=PatienceTracker)
    history: list[DriftReport] = field(default_factory=list)
    plan: LookPlan | None = None
    looks: int = 0

    def plan_looks(self, false_halt_rate: float, planned_looks: int, tests_per_look: int) -> LookPlan:
        """Fix the spending plan at the first train begin; a resumed run keeps its original plan."""
        if self.plan is None:
            self.plan = LookPlan(false_halt_rate, max(1, planned_looks), max(1, tests_per_look))
        return self.plan

    def next_look(self) -> float:
        """Count one look and return the level each of its tests gets."""
        if self.plan is None:
            raise RuntimeError("plan_looks must be called before the first look")
        self.looks += 1
        return self.plan.level(self.looks)

    def has_baseline(self, label: str) -> bool:
        return label in self.baselines

    def set_baseline(self, result: ProbeResult, *, recheck: ProbeResult | None = None) -> float:
        """Store the step-0 result; with a second run under another batch layout, the noise floor too."""
        self.baselines[result.suite] = result
        floor = 0.0
        if recheck is not None:
            jitter = paired_drift(result, recheck)
            floor = math.sqrt(jitter.mean**2 + jitter.stderr**2) if math.isfinite(jitter.mean) else 0.0
        self.noise_floors[result.suite] = floor
        return floor

    def observe(
        self,
        result: ProbeResult,
        threshold: Threshold | None,
        *,
        step: int,
        alpha: float,
        panel: bool = False,
        gate: bool = True,
        group: int = 1,
        benign: BenignLimits | None = None,
    ) -> Evaluation:
        baseline = self.baselines[result.suite]
        floor = self.noise_floors.get(result.suite, 0.0)
        report = assess(
            baseline,
            result,
            threshold,
            step=step,
            alpha=alpha,
            noise_floor=floor,
            panel=panel,
            gate=gate,
            group=group,
            benign=benign,
        )
        patience = 1 if not math.isfinite(report.score) else (threshold.patience if threshold else 1)
        return self._remember(report, patience)

    def observe_failure(self, label: str, trait: str | None, error: str, *, step: int) -> Evaluation:
        """A probe that raised is a breach with no score: it must never read as a pass."""
        baseline = self.baselines.get(label)
        report = DriftReport(
            probe=label,
            trait=trait,
            step=step,
            baseline=baseline.score if baseline else math.nan,
            score=math.nan,
            drift=math.nan,
            stderr=math.nan,
            z=math.nan,
            breached=True,
            reasons=(f"probe failed: {error}",),
            limit=None,
        )
        evaluation = self._remember(report, 1)
        return Evaluation(evaluation.report, evaluation.tripped, failed=True)

    def _remember(self, report: DriftReport, patience: int) -> Evaluation:
        tripped = self.patience.update(report.probe, report.breached, patience)
        self.history.append(report)
        del self.history[:-HISTORY_LIMIT]
        return Evaluation(report, tripped)

    # -- persistence ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "baselines": {k: v.to_json() for k, v in self.baselines.items()},
            "noise_floors": dict(self.noise_floors),
            "streaks": dict(self.patience.streaks),
            "history": [r.to_json() for r in self.history],
            "plan": asdict(self.plan) if self.plan else None,
            "looks": self.looks,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DriftMonitor:
        return cls(
            baselines={k: ProbeResult.from_json(v) for k, v in data.get("baselines", {}).items()},
            noise_floors={k: float(v) for k, v in data.get("noise_floors", {}).items()},
            patience=PatienceTracker(dict(data.get("streaks", {}))),
            history=[_report_from_json(r) for r in data.get("history", [])],
            plan=LookPlan(**data["plan"]) if data.get("plan") else None,
            looks=int(data.get("looks", 0)),
        )


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _report_from_json(data: dict[str, Any]) -> DriftReport:
    fields = {k: v for k, v in data.items() if k != "non_finite"}
    for name in data.get("non_finite", []):
        fields[name] = math.nan
    for name in ("baseline", "score", "drift", "stderr", "z"):
        if fields.get(name) is None:
            fields[name] = math.nan
    fields["reasons"] = tuple(fields["reasons"])
    fields["movers"] = tuple((str(name), float(value)) for name, value in fields.get("movers", ()))
    fields["candidates"] = tuple(  # a record from before share_change has four fields
        CandidateDrift(str(c[0]), _number(c[1]), _number(c[2]), c[3], *(_number(v) for v in c[4:5]))
        for c in fields.get("candidates", ())
    )
    return DriftReport(**fields)
