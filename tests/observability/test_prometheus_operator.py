"""The Kubernetes forms of the monitoring stack, held to the Prometheus Operator's own CRD schemas:
`distill-guard export prometheusrule` and the PodMonitor example validate, a typo in either is refused,
and the example training pod binds its exporter where the PodMonitor looks for it."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from distill_guard.cli.main import app
from distill_guard.export.deployment import with_deployment_environment
from distill_guard.policy.load import load_policy
from tests.conftest import REPO
from tests.support.prometheus_operator import problems

KUBERNETES = REPO / "integrations" / "kubernetes"
runner = CliRunner()


def exported_rule(tmp_path: Path, *args: str) -> dict:
    target = tmp_path / "rule.yaml"
    result = runner.invoke(app, ["export", "prometheusrule", "--out", str(target), *args])
    assert result.exit_code == 0, result.output
    return yaml.safe_load(target.read_text("utf-8"))


def test_the_exported_prometheusrule_validates_against_the_operators_schema(tmp_path: Path) -> None:
    rule = exported_rule(tmp_path, "--namespace", "monitoring", "--label", "release=prometheus")
    assert problems("prometheusrules", rule) == []
    assert problems("prometheusrules", exported_rule(tmp_path / "plain")) == []


def test_the_schema_refuses_what_the_operator_would_refuse_or_drop(tmp_path: Path) -> None:
    rule = exported_rule(tmp_path)
    first = rule["spec"]["groups"][0]["rules"][0]
    first["for"] = "5 minutes"  # not a Prometheus duration
    first["sevrity"] = "page"  # a typo the API server would prune
    del rule["spec"]["groups"][0]["name"]
    found = problems("prometheusrules", rule)
    assert any("spec/groups/0/rules/0/for" in p for p in found)
    assert any("'sevrity' was unexpected" in p for p in found)
    assert any("'name' is a required property" in p for p in found)


def load_example(name: str) -> dict:
    return yaml.safe_load((KUBERNETES / name).read_text("utf-8"))


def test_the_podmonitor_example_validates_and_names_the_job_the_alerts_watch() -> None:
    monitor = load_example("podmonitor.yaml")
    assert problems("podmonitors", monitor) == []
    pod = load_example("training-job.yaml")["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert labels[monitor["spec"]["jobLabel"]] == "distill-guard"  # DistillGuardTargetDown: up{job="distill-guard"}
    alerts = (REPO / "integrations" / "prometheus" / "alerts.yaml").read_text("utf-8")
    assert 'up{job="distill-guard"}' in alerts


def test_the_example_pod_opens_the_exporter_on_the_port_the_podmonitor_scrapes() -> None:
    (container,) = load_example("training-job.yaml")["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    policy = load_policy(REPO / "policies" / "strict.yaml").policy
    assert policy.metrics.prometheus.host == "127.0.0.1", "the reviewed policy keeps the loopback default"
    exporter = with_deployment_environment(policy, env).metrics.prometheus
    (port,) = [
        p
        for p in container["ports"]
        if p["name"] == load_example("podmonitor.yaml")["spec"]["podMetricsEndpoints"][0]["port"]
    ]
    assert (exporter.mode, exporter.host, exporter.port) == ("http", "0.0.0.0", port["containerPort"])
