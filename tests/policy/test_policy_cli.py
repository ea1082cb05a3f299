"""The policy commands as CI and reviewers use them: exit codes, JSON, schema, explain."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml
from typer.testing import CliRunner

from distill_guard.cli.main import app
from distill_guard.cli.policy import policy_json_schema

REPO = Path(__file__).resolve().parents[2]
POLICIES = sorted((REPO / "policies").glob("*.yaml"))
runner = CliRunner()


def test_validate_shipped_policies_exits_0() -> None:
    result = runner.invoke(app, ["policy", "validate", *map(str, POLICIES)])
    assert result.exit_code == 0, result.output


def test_validate_reports_every_invalid_file_not_just_the_first(tmp_path: Path) -> None:
    bad_a, bad_b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    bad_a.write_text("- not a mapping\n")
    bad_b.write_text("apiVersion: distill-guard/v2\nkind: GuardPolicy\nmetadata: {name: b}\n")
    result = runner.invoke(app, ["policy", "validate", str(bad_a), str(POLICIES[0]), str(bad_b)])
    assert result.exit_code == 1
    assert f"{bad_a}:1:1:" in result.output and f"{bad_b}:1:1:" in result.output
    assert f"{POLICIES[0]}: ok" in result.output


def test_validate_json_output_is_machine_readable(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: distill-guard/v1\nkind: GuardPolicy\nmetadata: {name: x}\nhalt: {action: pause}\n")
    result = runner.invoke(app, ["policy", "validate", "--json", str(bad)])
    payload = json.loads(result.stdout)
    assert result.exit_code == 1 and payload["valid"] is False
    issue = payload["files"][0]["issues"][0]
    assert (issue["line"], issue["severity"]) == (4, "error")


def test_usage_error_exits_2() -> None:
    assert runner.invoke(app, ["policy", "validate"]).exit_code == 2
    assert runner.invoke(app, ["policy", "no-such-command"]).exit_code == 2


def test_schema_command_prints_a_valid_json_schema() -> None:
    result = runner.invoke(app, ["policy", "schema"])
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)


def test_committed_schema_is_in_sync() -> None:
    committed = json.loads((REPO / "policies/schema.json").read_text())
    assert committed == policy_json_schema(), "run: distill-guard policy schema > policies/schema.json"


def test_shipped_policies_pass_the_editor_schema_and_carry_the_modeline() -> None:
    schema = policy_json_schema()
    for path in POLICIES:
        text = path.read_text()
        assert text.startswith("# yaml-language-server: $schema=./schema.json"), path
        data = json.loads(json.dumps(yaml.safe_load(text), default=str))
        jsonschema.validate(data, schema)


def test_explain_says_what_is_blocked_trusted_watched_and_halts() -> None:
    result = runner.invoke(app, ["policy", "explain", "--markdown", str(REPO / "policies/strict.yaml")])
    assert result.exit_code == 0
    text = result.output
    assert "REFUSED (fail closed)" in text
    assert "Rule `same-base-untrusted`" in text and "REFUSE the dataset" in text
    assert "every 50 optimizer steps" in text
    assert "rises more than 0.05 above its baseline" in text and "false-halt rate of 0.01" in text
    assert "STOPS training on every rank" in text


def test_explain_of_audit_policy_says_it_never_stops() -> None:
    text = runner.invoke(app, ["policy", "explain", "--markdown", str(REPO / "policies/audit.yaml")]).output
    assert "allowed with a WARNING" in text and "training never stops" in text


def test_explain_wraps_at_the_terminal_width_instead_of_cutting() -> None:
    result = runner.invoke(app, ["policy", "explain", str(REPO / "policies/strict.yaml")], env={"COLUMNS": "60"})
    assert result.exit_code == 0
    assert max(len(line) for line in result.output.splitlines()) <= 60
    assert "shared initialisation cannot be ruled out" in " ".join(result.output.split())  # the long reason, whole


def test_explain_puts_ids_and_globs_in_code_spans_so_markdown_keeps_the_stars() -> None:
    text = runner.invoke(app, ["policy", "explain", "--markdown", str(REPO / "policies/strict.yaml")]).output
    assert "- family `qwen2.5`: `Qwen/Qwen2.5-*`, `unsloth/Qwen2.5-*`" in text
    assert "at the last step" in text and "No checkpoint of the halted model is saved" in text


def test_explain_of_invalid_policy_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: GuardPolicy\n")
    result = runner.invoke(app, ["policy", "explain", str(bad)])
    assert result.exit_code == 1 and f"{bad}:" in result.output


def test_explain_says_how_many_top_candidates_may_stand_out_together(tmp_path: Path) -> None:
    policy = tmp_path / "group.yaml"
    policy.write_text(
        "apiVersion: distill-guard/v1\nkind: GuardPolicy\nmetadata: {name: group}\nprobes:\n  suites:\n"
        '    - {use: "builtin:animal-preference", panel: true, stand_out_group: 3, threshold: {max_increase: 0.05}}\n'
    )
    text = " ".join(runner.invoke(app, ["policy", "explain", "--markdown", str(policy)]).output.split())
    assert "stands out from the others, alone or with up to 2 others of the top candidates" in text
