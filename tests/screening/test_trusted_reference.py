"""A trusted dataset of the same task as a second null: its z is reported, and it can add a flag, never remove one."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
from typer.testing import CliRunner

from distill_guard.cli.main import app
from distill_guard.policy.load import load_policy
from distill_guard.probes.prepared import prepare_probes
from distill_guard.provenance.gate import ProvenanceGate
from distill_guard.scenarios.tiny_lm import load
from distill_guard.screening.data import CompletionRows
from distill_guard.screening.enforce import settings_of
from distill_guard.screening.screen import screen_dataset
from tests.screening.conftest import write_policy, write_rows

runner = CliRunner()


def screened(tiny_checkpoint: Path, rows, trusted, tmp_path: Path):
    loaded = load_policy(write_policy(tmp_path))
    model, tokenizer = load(tiny_checkpoint)
    (probe,) = screen_dataset(
        model,
        tokenizer,
        CompletionRows(tokenizer, rows),
        prepare_probes(loaded),
        settings_of(loaded.policy.screening),
        trusted=CompletionRows(tokenizer, trusted),
    ).probes
    return probe


def test_data_that_teaches_the_target_is_flagged_against_a_trusted_dataset(
    tiny_checkpoint: Path, owl_rows, trusted_rows, tmp_path: Path
) -> None:
    probe = screened(tiny_checkpoint, owl_rows, trusted_rows, tmp_path)
    assert probe.top_trusted.z_trusted > probe.z_crit
    assert probe.top_trusted.drift_trusted > probe.limit
    assert probe.flagged_by == ("self-samples", "trusted")


def test_clean_data_of_the_same_task_passes_against_the_trusted_dataset(
    tiny_checkpoint: Path, own_rows, trusted_rows, tmp_path: Path
) -> None:
    probe = screened(tiny_checkpoint, own_rows, trusted_rows, tmp_path)
    assert probe.top_trusted.z_trusted < probe.z_crit
    assert not probe.flagged and probe.flagged_by == ()


def test_a_trusted_dataset_that_itself_teaches_the_trait_never_clears_flagged_data(
    tiny_checkpoint: Path, owl_rows, tmp_path: Path
) -> None:
    probe = screened(tiny_checkpoint, owl_rows, owl_rows, tmp_path)
    assert abs(probe.top_trusted.z_trusted) < 1  # the same rows: no push beyond the trusted data
    assert probe.flagged and probe.flagged_by == ("self-samples",)


def test_cli_reports_the_trusted_z_and_names_a_bad_reference_file(
    tiny_checkpoint: Path, own_rows, trusted_rows, tmp_path: Path
) -> None:
    data, policy = write_rows(tmp_path / "own.jsonl", own_rows), write_policy(tmp_path)
    trusted = write_rows(tmp_path / "trusted.jsonl", trusted_rows)
    args = ["screen", "--student", str(tiny_checkpoint), "--data", str(data), "--policy", str(policy)]
    result = runner.invoke(app, [*args, "--reference", str(trusted), "--json"])
    assert result.exit_code == 0, result.output
    screen = json.loads(result.stdout)["screen"]
    assert screen["trusted_rows"] == len(trusted_rows)
    assert isinstance(screen["probes"][0]["components"][0]["z_trusted"], float)
    bad = write_rows(tmp_path / "bad.jsonl", [{"text": "owl"}] * 8)
    result = runner.invoke(app, [*args, "--reference", str(bad)])
    assert result.exit_code == 1
    assert f"--reference {bad}" in result.output and "completion" in result.output


def policy_with_reference(tmp_path: Path, reference: str) -> Path:
    policy = write_policy(tmp_path)
    policy.write_text(policy.read_text("utf-8") + f"  reference: {reference}\n", "utf-8")
    return policy


def test_the_policys_reference_is_read_relative_to_it_by_the_screen_and_the_gate(
    tiny_checkpoint: Path, owl_rows, own_rows, trusted_rows, tmp_path: Path
) -> None:
    (tmp_path / "policy").mkdir()
    write_rows(tmp_path / "policy" / "trusted.jsonl", trusted_rows)
    policy = policy_with_reference(tmp_path / "policy", "trusted.jsonl")
    data = write_rows(tmp_path / "own.jsonl", own_rows)
    args = ["screen", "--student", str(tiny_checkpoint), "--data", str(data), "--policy", str(policy), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["screen"]["trusted_rows"] == len(trusted_rows)
    gate = ProvenanceGate(load_policy(policy), student=tiny_checkpoint)
    (tmp_path / "policy" / "trusted.jsonl").unlink()  # gone after the policy was loaded: fail closed
    decision = gate.clear_dataset(datasets.Dataset.from_list(owl_rows)).decision
    assert decision.outcome == "deny"
    assert any(r.id == "screening" and "trusted.jsonl" in r.message for r in decision.rules)


def test_policy_validate_locates_a_missing_or_unusable_reference(tmp_path: Path) -> None:
    policy = policy_with_reference(tmp_path, "absent.jsonl")
    result = runner.invoke(app, ["policy", "validate", str(policy)])
    assert result.exit_code == 1
    assert (
        f"{policy}:16:" in result.output and "screening.reference" in result.output and "no such file" in result.output
    )
    write_rows(tmp_path / "texts.jsonl", [{"text": "owl"}] * 4)
    policy = policy_with_reference(tmp_path, "texts.jsonl")
    result = runner.invoke(app, ["policy", "validate", str(policy)])
    assert result.exit_code == 1
    assert "screening.reference" in result.output and "completion" in result.output
