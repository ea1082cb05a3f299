"""`distill-guard export ...`: the shipped files, written whole, never over a file without --force."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from distill_guard.bundled import data_path
from distill_guard.cli.export import SHIPPED_RUNBOOK
from distill_guard.cli.main import app
from distill_guard.cli.policy import POLICY_SCHEMA_ID, policy_json_schema
from distill_guard.policy.load import load_policy
from tests.conftest import REPO

runner = CliRunner()


def test_schema_is_the_generated_one_with_an_id_and_is_not_overwritten_without_force(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    assert runner.invoke(app, ["export", "schema", "--out", str(target)]).exit_code == 0
    written = json.loads(target.read_text("utf-8"))
    assert written == policy_json_schema() and written["$id"] == POLICY_SCHEMA_ID
    target.write_text("mine", "utf-8")
    refused = runner.invoke(app, ["export", "schema", "--out", str(target)])
    assert refused.exit_code == 1 and "--force" in refused.output
    assert target.read_text("utf-8") == "mine"
    assert runner.invoke(app, ["export", "schema", "--out", str(target), "--force"]).exit_code == 0
    assert json.loads(target.read_text("utf-8")) == written
    assert [p.name for p in tmp_path.iterdir()] == ["schema.json"], "no temp file left behind"


def test_an_exported_policy_brings_its_suite_files_and_validates_where_it_lands(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "policy", "demo-digits", "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    loaded = load_policy(tmp_path / "p" / "demo-digits.yaml")
    assert [ref.path for ref in loaded.policy.probes.suites] == ["suites/digit-accuracy.yaml"]
    assert runner.invoke(app, ["export", "policy", "lenient"]).exit_code == 2


def test_a_multi_file_export_writes_nothing_when_one_target_exists(tmp_path: Path) -> None:
    taken = tmp_path / "dashboards" / "distill-guard.yaml"
    taken.parent.mkdir()
    taken.write_text("mine", "utf-8")
    result = runner.invoke(app, ["export", "provisioning", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "nothing was written" in result.output
    assert not (tmp_path / "datasources").exists() and taken.read_text("utf-8") == "mine"


def test_prometheusrule_wraps_exactly_the_shipped_alert_rules(tmp_path: Path) -> None:
    target = tmp_path / "rule.yaml"
    args = ["export", "prometheusrule", "--out", str(target), "--namespace", "monitoring", "--label", "release=prom"]
    assert runner.invoke(app, args).exit_code == 0
    rule = yaml.safe_load(target.read_text("utf-8"))
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["metadata"] == {"name": "distill-guard", "namespace": "monitoring", "labels": {"release": "prom"}}
    assert rule["spec"]["groups"] == yaml.safe_load(data_path("prometheus", "alerts.yaml").read_text())["groups"]
    assert runner.invoke(app, ["export", "prometheusrule", "--label", "release"]).exit_code == 2


def test_the_repository_folders_are_links_to_the_package_data_not_copies() -> None:
    for folder, shipped in (
        ("policies", "policies"),
        ("integrations/grafana", "grafana"),
        ("integrations/prometheus", "prometheus"),
    ):
        assert (REPO / folder).is_symlink(), f"{folder} must link to distill_guard/data/{shipped} (one copy)"
        assert (REPO / folder).resolve() == data_path(shipped).resolve()


def runbook_urls(rules_text: str) -> list[str]:
    groups = yaml.safe_load(rules_text)["groups"]
    return [rule["annotations"]["runbook_url"] for group in groups for rule in group["rules"]]


def test_every_runbook_url_is_absolute_and_lands_on_its_alerts_section_unless_overridden(tmp_path: Path) -> None:
    shipped = runbook_urls(data_path("prometheus", "alerts.yaml").read_text("utf-8"))
    headings = {line[4:].strip().lower() for line in (REPO / "docs/observability.md").read_text().splitlines()}
    assert shipped and all(url.startswith(f"{SHIPPED_RUNBOOK}#") for url in shipped)
    assert [url for url in shipped if url.partition("#")[2] not in headings] == []
    target = tmp_path / "alerts.yaml"
    args = ["export", "alerts", "--out", str(target), "--runbook-base", "https://wiki.example/guard/"]
    assert runner.invoke(app, args).exit_code == 0
    moved = runbook_urls(target.read_text("utf-8"))
    assert moved == [url.replace(SHIPPED_RUNBOOK, "https://wiki.example/guard") for url in shipped]
    assert runner.invoke(app, ["export", "alerts", "-o", "-", "--runbook-base", "wiki/page"]).exit_code == 2
