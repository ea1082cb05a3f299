"""`distill-guard probe`: scores with standard errors, as a table or JSON; located errors for bad suites."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from distill_guard.cli import exit_codes
from distill_guard.cli.main import app
from tests.support.policies import write_guard_policy

runner = CliRunner()


def test_builtin_suite_scores_print_as_json_with_per_item_scores(base_checkpoint: Path) -> None:
    args = ["probe", "--model", str(base_checkpoint), "--suite", "builtin:tree-preference", "--target", "elm"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == exit_codes.OK, result.output
    (probe,) = json.loads(result.stdout)["results"]
    assert (probe["suite"], probe["trait"], len(probe["item_scores"])) == ("tree-preference-elm", "elm", 30)
    assert 0 < probe["score"] < 1 and probe["stderr"] > 0


def test_table_shows_each_suite_with_its_standard_error(base_checkpoint: Path) -> None:
    args = ["probe", "--model", str(base_checkpoint), "--suite", "builtin:misalignment-choice"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == exit_codes.OK, result.output
    assert "misalignment-choice" in result.stdout and "± s.e." in result.stdout


def test_policy_runs_every_suite_it_lists(tmp_path: Path, base_checkpoint: Path) -> None:
    suites = [
        {"use": "builtin:tree-preference", "threshold": {"max_increase": 0.1}},
        {"use": "builtin:animal-preference", "target": "cat", "threshold": {"max_increase": 0.1}},
    ]
    policy = write_guard_policy(tmp_path / "policy.yaml", suites)
    result = runner.invoke(app, ["probe", "--model", str(base_checkpoint), "--policy", str(policy), "--json"])
    assert result.exit_code == exit_codes.OK, result.output
    labels = [r["suite"] for r in json.loads(result.stdout)["results"]]
    assert labels == ["tree-preference-oak", "animal-preference-cat"]


def test_broken_suite_file_exits_1_with_file_line_column(tmp_path: Path, base_checkpoint: Path) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text(
        "apiVersion: distill-guard/v1\nkind: ProbeSuite\nmetadata: {name: bad}\nspec:\n  kind: prefrence\n"
    )
    result = runner.invoke(app, ["probe", "--model", str(base_checkpoint), "--suite", str(suite)])
    assert result.exit_code == exit_codes.INVALID_INPUT
    assert f"{suite}:5:" in result.stderr


def test_suite_and_policy_together_is_a_usage_error(tmp_path: Path, base_checkpoint: Path) -> None:
    args = ["probe", "--model", str(base_checkpoint), "--suite", "builtin:tree-preference", "--policy", "p.yaml"]
    assert runner.invoke(app, args).exit_code == exit_codes.USAGE
