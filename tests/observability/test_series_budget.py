"""The series one guarded run costs Prometheus, counted from a real scrape and held to the budget that
docs/observability.md states, so a fleet of runs can be sized: series per run grow only with the policy
(probes, provenance rules), never with steps or time."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from prometheus_stack import Prometheus, Pushgateway

from distill_guard import DistillGuard
from distill_guard.drift.assess import TOP_MOVERS
from distill_guard.export.telemetry import Telemetry
from distill_guard.policy.schema import GuardPolicy
from tests.guard.conftest import make_trainer

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

# The budget of docs/observability.md ("Series budget"): fixed series of a run (training step, halted,
# run info, and the Pushgateway's push_time/push_failure_time of its group), series per probe (six gauges,
# its probe_info, the duration histogram's 14 buckets, sum, count and created, the breach counter and its
# created, and up to TOP_MOVERS specific-drift series of a panel probe's top movers), per (decision, rule)
# pair of provenance decisions (total, created), and per failing export backend.
FIXED, PER_PROBE, PER_DECISION_RULE, PER_EXPORT_BACKEND = 5, 26 + TOP_MOVERS, 2, 2
SUITES = [
    {"use": "builtin:animal-preference", "target": "owl", "threshold": {"max_increase": 0.5}},
    {"use": "builtin:misalignment-choice", "threshold": {"max_increase": 0.5}},
]
STEPS = 4


def series_budget(probes: int, decision_rules: int, failing_backends: int = 0) -> int:
    return FIXED + PER_PROBE * probes + PER_DECISION_RULE * decision_rules + PER_EXPORT_BACKEND * failing_backends


def test_one_guarded_run_stays_within_its_series_budget(
    tiny_checkpoint: Path, tmp_path: Path, pushgateway: Pushgateway, prometheus: Prometheus
) -> None:
    run = f"budget-{uuid.uuid4().hex[:8]}"
    policy = {
        "apiVersion": "distill-guard/v1",
        "kind": "GuardPolicy",
        "metadata": {"name": "series-budget"},
        "provenance": {"unknown": "warn"},
        "probes": {"every_n_steps": 2, "suites": SUITES},
        "halt": {"action": "warn"},
        "metrics": {"run_name": run, "prometheus": {"mode": "pushgateway", "url": pushgateway.url}},
    }
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", DistillGuard.from_policy(path), max_steps=STEPS)
    trainer.train()

    prometheus.wait_for(f'distill_guard_training_step{{run="{run}"}} == {STEPS}')
    series = prometheus.api("series", **{"match[]": f'{{run="{run}"}}'})
    decision_rules = len([s for s in series if s["__name__"] == "distill_guard_provenance_decisions_total"])
    budget = series_budget(probes=len(SUITES), decision_rules=decision_rules)
    print(
        f"\nseries of one guarded run ({len(SUITES)} probes, {decision_rules} decision/rule pairs): "
        f"{len(series)} (budget {budget})"
    )
    assert decision_rules >= 1
    assert len(series) <= budget, sorted(s["__name__"] for s in series)


def test_runs_sharing_a_name_push_to_groups_of_their_own_and_a_clean_finish_deletes_only_its_own(
    pushgateway: Pushgateway, tmp_path: Path
) -> None:
    run = f"shared-{uuid.uuid4().hex[:8]}"
    policy = GuardPolicy.model_validate(
        {
            "apiVersion": "distill-guard/v1",
            "kind": "GuardPolicy",
            "metadata": {"name": "fleet"},
            "metrics": {"prometheus": {"mode": "pushgateway", "url": pushgateway.url, "delete_on_finish": True}},
        }
    )
    first, second = Telemetry(policy), Telemetry(policy)
    for index, telemetry in enumerate((first, second)):
        telemetry.open(output_dir=tmp_path / str(index), run=run, is_main=True, world_size=1, model="m")
        telemetry.publish()

    def groups() -> list[dict[str, str]]:
        return [g for g in pushgateway.groups() if g.get("run") == run]

    assert len({g["run_id"] for g in groups()}) == 2
    first.close(clean=True)
    assert len(groups()) == 1
    second.close(clean=False)  # a halted or failed run keeps its final state
    assert len(groups()) == 1
