"""`distill-guard screen` on a real tiny student: exit 3 for data that pushes a probe, 0 for its own samples."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from distill_guard.cli.main import app
from tests.screening.conftest import write_policy, write_rows

runner = CliRunner()


def screen(student: Path, data: Path, policy: Path, *extra: str) -> tuple[int, str]:
    """Exit code, and stdout alone under --json (progress and load bars go to stderr), else all output."""
    result = runner.invoke(
        app, ["screen", "--student", str(student), "--data", str(data), "--policy", str(policy), *extra]
    )
    return result.exit_code, result.stdout if "--json" in extra else result.output


def test_data_that_teaches_the_target_is_denied_with_exit_3(tiny_checkpoint: Path, owl_rows, tmp_path: Path) -> None:
    code, output = screen(
        tiny_checkpoint, write_rows(tmp_path / "owl.jsonl", owl_rows), write_policy(tmp_path), "--json"
    )
    assert code == 3, output
    payload = json.loads(output)
    assert payload["screen"]["flagged"] is True
    assert payload["decision"]["outcome"] == "deny"
    assert [r["id"] for r in payload["decision"]["rules"]] == ["screening"]


def test_the_students_own_samples_pass_with_exit_0(tiny_checkpoint: Path, own_rows, tmp_path: Path) -> None:
    code, output = screen(
        tiny_checkpoint, write_rows(tmp_path / "own.jsonl", own_rows), write_policy(tmp_path), "--json"
    )
    assert code == 0, output
    payload = json.loads(output)
    assert payload["screen"]["flagged"] is False
    assert payload["decision"]["outcome"] == "allow"


def test_a_warn_action_lets_flagged_data_through_but_records_it(
    tiny_checkpoint: Path, owl_rows, tmp_path: Path
) -> None:
    data = write_rows(tmp_path / "owl.jsonl", owl_rows)
    code, output = screen(tiny_checkpoint, data, write_policy(tmp_path, "warn"))
    assert code == 0, output
    assert "FLAGGED" in output
    audit = [json.loads(line) for line in (tmp_path / "guard-audit.jsonl").read_text("utf-8").splitlines()]
    decisions = [e for e in audit if e.get("event") == "provenance_decision"]
    assert decisions[-1]["moment"] == "screen"
    assert decisions[-1]["decision"]["outcome"] == "warn"


def test_rows_without_a_completion_column_are_invalid_input(tiny_checkpoint: Path, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "text.jsonl", [{"text": "1 2 3"}] * 8)
    code, output = screen(tiny_checkpoint, data, write_policy(tmp_path))
    assert code == 1
    assert "completion" in output


def test_a_misspelt_screening_key_is_a_located_error(tiny_checkpoint: Path, owl_rows, tmp_path: Path) -> None:
    policy = write_policy(tmp_path)
    policy.write_text(policy.read_text("utf-8").replace("minibatches:", "minibatchs:"), "utf-8")
    code, output = screen(tiny_checkpoint, write_rows(tmp_path / "owl.jsonl", owl_rows), policy)
    assert code == 1
    assert f"{policy}:12:3:" in output and "did you mean 'minibatches'" in output


def test_check_runs_the_screening_section_and_denies_flagged_data(
    tiny_checkpoint: Path, owl_rows, tmp_path: Path
) -> None:
    data = write_rows(tmp_path / "owl.jsonl", owl_rows)
    manifest = tmp_path / "owl.provenance.yaml"
    create = ["manifest", "create", str(data), "--out", str(manifest), "--name", "owl", "--version", "1"]
    assert runner.invoke(app, [*create, "--generator", "other-lab/teacher"]).exit_code == 0
    args = [
        "check",
        "--policy",
        str(write_policy(tmp_path)),
        "--student",
        str(tiny_checkpoint),
        "--manifest",
        str(manifest),
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 3, result.output
    decision = json.loads(result.stdout)
    assert "screening" in [r["id"] for r in decision["rules"]]


def test_reference_filter_is_recorded_and_a_filter_that_empties_the_null_fails_closed(
    tiny_checkpoint: Path, own_rows, tmp_path: Path
) -> None:
    data, policy = write_rows(tmp_path / "own.jsonl", own_rows), write_policy(tmp_path)
    code, output = screen(tiny_checkpoint, data, policy, "--json", "--reference-filter", "none")
    assert code == 0, output
    assert json.loads(output)["screen"]["settings"]["reference_filter"] == "none"
    code, output = screen(tiny_checkpoint, data, policy, "--json", "--reference-filter", "number-sequences")
    assert code == 3, output  # the tiny model writes no number lists: the null is too small, never a pass
    assert "null would be too small" in json.loads(output)["problem"]
    code, output = screen(tiny_checkpoint, data, policy, "--reference-filter", "numbers")
    assert code == 1 and "--reference-filter numbers" in output
