"""A real tiny Trainer run with DistillGuard, its metrics read back from a real Prometheus.

Covers the path users take: the policy's `metrics.prometheus` block, the callback creating the
exporter on rank 0, a real probe suite on a real tiny model, and Prometheus ingesting the result.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_stack import REPO, Prometheus, Pushgateway
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from distill_guard import DistillGuard, ProvenanceDenied
from distill_guard.scenarios.demo import free_local_port
from tests.guard.conftest import make_trainer
from tests.support.policies import write_guard_policy

MAX_STEPS = 2
OWL_SUITE = {"use": "builtin:animal-preference", "target": "owl", "threshold": {"max_increase": 0.5}}


def write_policy(
    path: Path, *, run: str, prometheus: dict[str, Any], unknown: str = "warn", probe_owls: bool = False
) -> Path:
    """A policy for this test; probes are slow on a shared CPU, so only the test that needs one asks."""
    return write_guard_policy(
        path,
        [OWL_SUITE] if probe_owls else [],
        name="observability-e2e",
        every=MAX_STEPS,
        unknown=unknown,
        halt="warn",
        sections={"metrics": {"run_name": run, "prometheus": prometheus}},
    )


def new_run() -> str:
    return f"trainer-{uuid.uuid4().hex[:8]}"


def value(series: list[dict[str, Any]]) -> float:
    [only] = series
    return float(only["value"][1])


@pytest.mark.slow
def test_pushgateway_run_leaves_its_final_state_in_prometheus(
    tiny_checkpoint: Path, tmp_path: Path, pushgateway: Pushgateway, prometheus: Prometheus
) -> None:
    run = new_run()
    policy = write_policy(
        tmp_path / "policy.yaml", run=run, prometheus={"mode": "pushgateway", "url": pushgateway.url}, probe_owls=True
    )
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", DistillGuard.from_policy(policy), max_steps=MAX_STEPS)
    trainer.train()

    selector = f'{{job="distill-guard", run="{run}"}}'
    assert value(prometheus.wait_for(f"distill_guard_training_step{selector} == {MAX_STEPS}")) == MAX_STEPS
    assert value(prometheus.wait_for(f"distill_guard_halted{selector}")) == 0
    probe = f'{{job="distill-guard", run="{run}", trait="owl"}}'
    evaluations = 2  # the step-0 baseline and the one at MAX_STEPS
    assert value(prometheus.wait_for(f"distill_guard_probe_duration_seconds_count{probe}")) == evaluations
    assert 0 <= value(prometheus.wait_for(f"distill_guard_probe_score{probe}")) <= 1
    allowed = prometheus.wait_for(f"distill_guard_probe_threshold{probe} - distill_guard_probe_baseline{probe}")
    assert value(allowed) == pytest.approx(OWL_SUITE["threshold"]["max_increase"])
    [info] = prometheus.wait_for(f"distill_guard_run_info{selector}")
    assert info["metric"]["policy"] == "observability-e2e"
    assert prometheus.wait_for(f"distill_guard_provenance_decisions_total{selector}")


class WaitForScrape(TrainerCallback):
    """Holds training at one step until Prometheus has scraped what each expression asks for.

    The HTTP endpoint lives only as long as training, so the series must be read meanwhile.
    """

    def __init__(self, prometheus: Prometheus, exprs: list[str], at_step: int) -> None:
        self.prometheus = prometheus
        self.exprs = exprs
        self.at_step = at_step
        self.seen: dict[str, list[dict[str, Any]]] = {}

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if state.global_step == self.at_step:
            self.seen = {expr: self.prometheus.wait_for(expr) for expr in self.exprs}


def test_http_endpoint_is_scraped_while_training(tiny_checkpoint: Path, tmp_path: Path, prometheus: Prometheus) -> None:
    run, port = new_run(), free_local_port()
    policy = write_policy(
        tmp_path / "policy.yaml", run=run, prometheus={"mode": "http", "host": "127.0.0.1", "port": port}
    )
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", DistillGuard.from_policy(policy), max_steps=MAX_STEPS)
    step, info = f'distill_guard_training_step{{run="{run}"}} == 1', f'distill_guard_run_info{{run="{run}"}}'
    waiter = WaitForScrape(prometheus, [step, info], at_step=1)
    trainer.add_callback(waiter)
    with prometheus.scraping(f"127.0.0.1:{port}"):
        trainer.train()
    assert value(waiter.seen[step]) == 1
    [run_info] = waiter.seen[info]
    assert (run_info["metric"]["job"], run_info["metric"]["policy"]) == ("distill-guard-test", "observability-e2e")


def test_denied_run_raises_the_provenance_alert(
    tiny_checkpoint: Path, tmp_path: Path, pushgateway: Pushgateway, prometheus: Prometheus
) -> None:
    run = new_run()
    policy = write_policy(
        tmp_path / "policy.yaml", run=run, prometheus={"mode": "pushgateway", "url": pushgateway.url}, unknown="deny"
    )
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", DistillGuard.from_policy(policy), max_steps=MAX_STEPS)
    with pytest.raises(ProvenanceDenied):
        trainer.train()

    prometheus.wait_for(f'distill_guard_provenance_decisions_total{{run="{run}", decision="deny"}}')
    rules = yaml.safe_load((REPO / "integrations" / "prometheus" / "alerts.yaml").read_text())["groups"][0]["rules"]
    [denied] = [rule["expr"] for rule in rules if rule["alert"] == "DistillGuardProvenanceDenied"]
    assert {s["metric"]["run"] for s in prometheus.query(denied)} >= {run}
