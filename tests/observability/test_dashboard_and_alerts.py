"""The shipped dashboard and alert rules, checked by promtool and evaluated on a real Prometheus.

A simulated guarded run (baseline, probe evaluations, a breach, a halt, provenance decisions, a
failed export and a probe that went stale) is served over HTTP and scraped; then every PromQL
expression in integrations/ must parse and return data for that run.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from prometheus_stack import REPO, Prometheus, require_binary, wait_until

from distill_guard import __version__
from distill_guard.export.metrics import GuardMetrics
from distill_guard.export.prometheus import make_exporter
from distill_guard.policy.schema import HttpExport, PushgatewayExport
from distill_guard.scenarios.demo import free_local_port
from tests.support.evaluations import evaluation

INTEGRATIONS = REPO / "integrations"
ALERTS_FILE = INTEGRATIONS / "prometheus" / "alerts.yaml"
ALERT_TESTS_FILE = INTEGRATIONS / "prometheus" / "alerts.test.yaml"
FLEET_RULES_FILE = INTEGRATIONS / "prometheus" / "fleet.rules.yaml"
FLEET_TESTS_FILE = INTEGRATIONS / "prometheus" / "fleet.rules.test.yaml"
DASHBOARD_FILE = INTEGRATIONS / "grafana" / "dashboard.json"
DATASOURCES_FILE = INTEGRATIONS / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
GUIDE = REPO / "docs" / "observability.md"
STALE_PROBE_AGE_SECONDS = 7200.0


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def load_alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS_FILE.read_text())["groups"] for rule in group["rules"]]


def dashboard_targets() -> list[tuple[str, str]]:
    """(panel title / refId or annotation name, PromQL) of every query on the dashboard."""
    dashboard = load_dashboard()
    panels = [(f"{p['title']} / {t['refId']}", t["expr"]) for p in dashboard["panels"] for t in p["targets"]]
    return panels + [(f"annotation {a['name']}", a["expr"]) for a in dashboard["annotations"]["list"]]


def alert_expressions() -> list[tuple[str, str]]:
    return [(rule["alert"], rule["expr"]) for rule in load_alert_rules()]


def for_run(expr: str, run: str) -> str:
    """Grafana's variables resolved as for a dashboard showing one run (test run names are plain)."""
    resolved = expr.replace("$run", run)
    assert "$" not in resolved, f"unresolved Grafana variable in {expr!r}"
    return resolved


def exported_sample_names() -> set[str]:
    metrics = GuardMetrics("names")
    metrics.observe_probe(
        *evaluation("p", None, score=0.1, baseline=0.1, drift=0.0, zscore=0.0, threshold=0.1, duration_seconds=1.0)
    )
    metrics.record_provenance_decision(decision="deny", rule="r")
    metrics.record_export_error("http")
    metrics.set_run_info(policy="p")
    return {s.name for family in metrics.registry.collect() for s in family.samples}


# -- files: structure and promtool ------------------------------------------------------------------


@pytest.mark.prometheus
@pytest.mark.parametrize("rules", [ALERTS_FILE, FLEET_RULES_FILE], ids=lambda p: p.name)
def test_promtool_check_rules_accepts_the_rules(rules) -> None:
    result = subprocess.run([require_binary("promtool"), "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
@pytest.mark.parametrize("tests", [ALERT_TESTS_FILE, FLEET_TESTS_FILE], ids=lambda p: p.name)
def test_promtool_rule_unit_tests_pass(tests) -> None:
    result = subprocess.run([require_binary("promtool"), "test", "rules", str(tests)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_and_alerts_use_only_exported_metric_names() -> None:
    expressions = [expr for _, expr in dashboard_targets() + alert_expressions()]
    used = {name for expr in expressions for name in re.findall(r"\bdistill_guard_[a-z_]+", expr)}
    assert used
    assert used - exported_sample_names() == set()


def test_every_panel_and_annotation_queries_the_selected_datasource_and_runs() -> None:
    dashboard = load_dashboard()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert 'run=~"$run"' in target["expr"], (panel["title"], target["expr"])
    for annotation in dashboard["annotations"]["list"]:
        assert annotation["datasource"]["uid"] == "${datasource}", annotation["name"]
        assert 'run=~"$run"' in annotation["expr"], annotation["name"]


def test_provisioned_datasource_is_the_dashboard_default() -> None:
    [datasource] = yaml.safe_load(DATASOURCES_FILE.read_text())["datasources"]
    [variable] = [v for v in load_dashboard()["templating"]["list"] if v["name"] == "datasource"]
    assert (datasource["type"], datasource["uid"]) == (variable["query"], variable["current"]["value"])


def test_guide_describes_every_panel_and_alert() -> None:
    guide = GUIDE.read_text()
    dashboard = load_dashboard()
    names = [p["title"] for p in dashboard["panels"]] + [a["name"] for a in dashboard["annotations"]["list"]]
    names += [r["alert"] for r in load_alert_rules()]
    assert [name for name in names if name not in guide] == []


# -- a simulated run on a real Prometheus ----------------------------------------------------------


class LaggingClock:
    """Wall time minus `lag` seconds: makes a probe look as if it last ran long ago."""

    def __init__(self) -> None:
        self.lag = 0.0

    def __call__(self) -> float:
        return time.time() - self.lag


@dataclass(frozen=True)
class SimulatedRun:
    run: str
    metrics: GuardMetrics


@pytest.fixture(scope="module")
def simulated_run(prometheus: Prometheus, unused_port_for_module: int) -> Iterator[SimulatedRun]:
    run = f"sim-{uuid.uuid4().hex[:8]}"
    clock = LaggingClock()
    metrics = GuardMetrics(run, clock=clock)
    metrics.set_run_info(policy="strict-distillation", version=__version__, world_size="1", model="tiny-llama")
    exporter = make_exporter(HttpExport(mode="http", port=0), metrics)
    exporter.start()
    assert exporter.port, "the HTTP exporter did not start"
    down = PushgatewayExport(mode="pushgateway", url=f"http://127.0.0.1:{unused_port_for_module}")
    make_exporter(down, metrics).publish()

    metrics.record_provenance_decision(decision="allow", rule="trusted-teacher")
    metrics.record_provenance_decision(decision="deny", rule="same-base-untrusted")
    clock.lag = STALE_PROBE_AGE_SECONDS
    # an activation probe (scale "score": baseline-contrast units, above 1 here) beside two probabilities
    probe(metrics, "persona-shift", "owl", score=1.40, baseline=1.40, zscore=0.0, threshold=1.90, kind="activation")
    clock.lag = 0.0
    probe(metrics, "animal-preference", "owl", score=0.12, baseline=0.12, zscore=0.0, threshold=0.17)
    probe(metrics, "misalignment-choice", None, score=0.02, baseline=0.02, zscore=0.0, threshold=0.04)

    with prometheus.scraping(f"127.0.0.1:{exporter.port}"):
        prometheus.wait_for(f'distill_guard_training_step{{run="{run}"}} == 0')
        metrics.set_step(50)
        probe(metrics, "animal-preference", "owl", score=0.31, baseline=0.12, zscore=6.2, threshold=0.17)
        probe(metrics, "misalignment-choice", None, score=0.02, baseline=0.02, zscore=0.1, threshold=0.04)
        metrics.record_breach(probe="animal-preference", trait="owl")
        metrics.set_halted(True)
        prometheus.wait_for(f'changes(distill_guard_training_step{{run="{run}"}}[15m]) > 0')
        yield SimulatedRun(run, metrics)
        exporter.close(clean=False)


@pytest.fixture(scope="module")
def unused_port_for_module() -> int:
    return free_local_port()


def probe(
    metrics: GuardMetrics,
    name: str,
    trait: str | None,
    *,
    score: float,
    baseline: float,
    zscore: float,
    threshold: float,
    kind: str = "preference",
) -> None:
    drift = score - baseline
    metrics.observe_probe(
        *evaluation(
            name, trait, score=score, baseline=baseline, drift=drift, zscore=zscore, threshold=threshold, kind=kind
        )
    )


def test_every_exported_series_arrives(prometheus: Prometheus, simulated_run: SimulatedRun) -> None:
    exported = {s.name for family in simulated_run.metrics.registry.collect() for s in family.samples}
    arrived = prometheus.query(f'count by (__name__) ({{__name__=~"distill_guard_.+", run="{simulated_run.run}"}})')
    assert {series["metric"]["__name__"] for series in arrived} == exported


@pytest.mark.parametrize(("panel", "expr"), dashboard_targets(), ids=[name for name, _ in dashboard_targets()])
def test_dashboard_query_returns_data(
    prometheus: Prometheus, simulated_run: SimulatedRun, panel: str, expr: str
) -> None:
    assert prometheus.query(for_run(expr, simulated_run.run)), f"{panel}: no data for {expr}"


def test_dashboard_run_variable_lists_the_run(prometheus: Prometheus, simulated_run: SimulatedRun) -> None:
    [variable] = [v for v in load_dashboard()["templating"]["list"] if v["name"] == "run"]
    metric = re.fullmatch(r"label_values\((\w+), run\)", variable["query"]["query"]).group(1)
    assert simulated_run.run in prometheus.api("label/run/values", **{"match[]": metric})


EXPECTED_ALERT_SUBJECTS = {
    "DistillGuardDriftOverThreshold": {"probe": "animal-preference"},
    "DistillGuardRunHalted": {},
    "DistillGuardProbesStale": {"probe": "persona-shift"},
    "DistillGuardProvenanceDenied": {"rule": "same-base-untrusted"},
    "DistillGuardExportFailing": {"backend": "pushgateway"},
}
# About scrape targets, not runs: they carry no `run` label; promtool's unit tests cover them.
TARGET_ALERTS = {"DistillGuardTargetDown"}


def run_alert_expressions() -> list[tuple[str, str]]:
    return [(name, expr) for name, expr in alert_expressions() if name not in TARGET_ALERTS]


@pytest.mark.parametrize(("alert", "expr"), run_alert_expressions(), ids=[name for name, _ in run_alert_expressions()])
def test_alert_expression_finds_the_simulated_problem(
    prometheus: Prometheus, simulated_run: SimulatedRun, alert: str, expr: str
) -> None:
    run_only = f"({expr}) and on (run) distill_guard_run_info{{run={json.dumps(simulated_run.run)}}}"
    found = [series["metric"] for series in prometheus.query(run_only)]
    expected = EXPECTED_ALERT_SUBJECTS[alert]
    assert [{k: m.get(k) for k in expected} for m in found] == [expected]


def test_prometheus_loads_the_rules_and_raises_every_alert(prometheus: Prometheus, simulated_run: SimulatedRun) -> None:
    rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
    assert {rule["name"] for rule in rules} == set(EXPECTED_ALERT_SUBJECTS) | TARGET_ALERTS

    def raised() -> set[str]:
        alerts = prometheus.api("alerts")["alerts"]
        return {a["labels"]["alertname"] for a in alerts if a["labels"].get("run") == simulated_run.run}

    assert wait_until(lambda: raised() == set(EXPECTED_ALERT_SUBJECTS), "every alert pending or firing")
    rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
    assert [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"] == []
