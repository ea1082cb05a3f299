"""`distill-guard manifest ...` and `distill-guard check` as CI runs them: files on disk, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from distill_guard.cli.main import app

from .conftest import OTHER_FAMILY_TEACHER, SAME_FAMILY_TEACHER, number_rows, policy_data, write_jsonl

runner = CliRunner()


def create(data: Path, out: Path, generator: str, *extra: str):
    args = ["manifest", "create", str(data), "--out", str(out), "--name", "numbers-v3", "--version", "3"]
    return runner.invoke(app, [*args, "--generator", generator, *extra])


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy_data()), "utf-8")
    return path


def test_create_then_verify_then_one_changed_byte_fails_naming_the_file(tmp_path):
    data = write_jsonl(tmp_path / "data" / "numbers.jsonl", number_rows(20))
    manifest = tmp_path / "numbers.provenance.yaml"
    result = create(
        data, manifest, SAME_FAMILY_TEACHER, "--base-model", "distill-guard/tiny-base", "--sampling", "temperature=1.0"
    )
    assert result.exit_code == 0, result.output
    written = yaml.safe_load(manifest.read_text("utf-8"))
    assert written["files"][0]["path"] == "data/numbers.jsonl"
    assert written["generators"][0]["sampling"] == {"temperature": 1.0}
    assert runner.invoke(app, ["manifest", "verify", str(manifest)]).exit_code == 0
    data.write_bytes(data.read_bytes().replace(b"1", b"2", 1))
    result = runner.invoke(app, ["manifest", "verify", str(manifest), "--json"])
    assert result.exit_code == 3
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    assert payload["files"][0]["path"] == "data/numbers.jsonl" and payload["files"][0]["status"] == "hash_mismatch"


def test_keygen_sign_and_verify_against_the_policys_signers(tmp_path):
    data = write_jsonl(tmp_path / "numbers.jsonl", number_rows(3))
    manifest = tmp_path / "m.yaml"
    create(data, manifest, OTHER_FAMILY_TEACHER)
    result = runner.invoke(app, ["manifest", "keygen", str(tmp_path / "key.pem"), "--name", "data-team"])
    assert result.exit_code == 0, result.output
    snippet = result.stdout[result.stdout.index("provenance:") :]
    signers = yaml.safe_load(snippet)["provenance"]["trusted_signers"]
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(policy_data(trusted_signers=signers, require_signature=True)), "utf-8")
    assert runner.invoke(app, ["manifest", "verify", str(manifest), "--policy", str(policy)]).exit_code == 3
    assert runner.invoke(app, ["manifest", "sign", str(manifest), "--key", str(tmp_path / "key.pem")]).exit_code == 0
    result = runner.invoke(app, ["manifest", "verify", str(manifest), "--policy", str(policy)])
    assert result.exit_code == 0, result.output
    assert "signed by trusted signer 'data-team'" in result.stdout
    unchecked = runner.invoke(app, ["manifest", "verify", str(manifest)])  # no --policy: no signer list
    assert unchecked.exit_code == 0 and "key was NOT checked" in unchecked.stdout
    assert "policy does not trust" not in unchecked.stdout
    payload = json.loads(runner.invoke(app, ["manifest", "verify", str(manifest), "--json"]).stdout)
    assert payload["signature"]["key_checked"] is False


def check(policy: Path, student: Path, *manifests: Path, extra: tuple[str, ...] = ()):
    args = ["check", "--policy", str(policy), "--student", str(student), "--today", "2026-06-01"]
    for m in manifests:
        args += ["--manifest", str(m)]
    return runner.invoke(app, [*args, *extra])


def test_check_exits_0_when_allowed_and_3_when_denied(tmp_path, policy_file, student_dir):
    data = write_jsonl(tmp_path / "numbers.jsonl", number_rows(5))
    allowed, denied = tmp_path / "allowed.yaml", tmp_path / "denied.yaml"
    create(data, allowed, OTHER_FAMILY_TEACHER)
    create(data, denied, SAME_FAMILY_TEACHER)
    result = check(policy_file, student_dir, allowed)
    assert result.exit_code == 3 and "unknown-teacher-family" in result.stdout  # an unsigned claim clears nothing
    keygen = runner.invoke(app, ["manifest", "keygen", str(tmp_path / "key.pem"), "--name", "data-team"])
    signers = yaml.safe_load(keygen.stdout[keygen.stdout.index("provenance:") :])["provenance"]["trusted_signers"]
    policy_file.write_text(yaml.safe_dump(policy_data(trusted_signers=signers)), "utf-8")
    assert runner.invoke(app, ["manifest", "sign", str(allowed), "--key", str(tmp_path / "key.pem")]).exit_code == 0
    result = check(policy_file, student_dir, allowed)
    assert result.exit_code == 0, result.output
    assert "Provenance decision: ALLOW" in result.stdout
    result = check(policy_file, student_dir, denied, extra=("--audit-log", str(tmp_path / "audit.jsonl")))
    assert result.exit_code == 3
    assert "same-base-untrusted" in result.stdout
    entry = json.loads((tmp_path / "audit.jsonl").read_text("utf-8"))
    assert entry["event"] == "provenance_decision" and entry["decision"]["outcome"] == "deny"


def test_check_records_its_decision_in_the_policys_audit_log_by_default(tmp_path, policy_file, student_dir):
    data = write_jsonl(tmp_path / "numbers.jsonl", number_rows(5))
    create(data, tmp_path / "denied.yaml", SAME_FAMILY_TEACHER)  # tests/conftest.py: tmp_path is the working dir
    assert check(policy_file, student_dir, tmp_path / "denied.yaml").exit_code == 3
    [line] = (tmp_path / "guard-audit.jsonl").read_text("utf-8").splitlines()
    entry = json.loads(line)
    assert (entry["moment"], entry["decision"]["outcome"]) == ("check", "deny")


def test_check_reports_per_record_drops_from_jsonl(tmp_path, student_dir):
    rows = number_rows(4, SAME_FAMILY_TEACHER) + number_rows(6, OTHER_FAMILY_TEACHER, start=4)
    data = write_jsonl(tmp_path / "mixed.jsonl", rows)
    manifest = tmp_path / "m.yaml"
    create(data, manifest, SAME_FAMILY_TEACHER, "--generator", OTHER_FAMILY_TEACHER)
    rules = [{"id": "drop-same", "when": {"teacher_family": "same_as_student"}, "action": "drop_records"}]
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(policy_data(rules=rules, trust_unsigned_claims=True)), "utf-8")
    result = check(policy, student_dir, manifest, extra=("--json",))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dropped"] == [{"generator": SAME_FAMILY_TEACHER, "rule": "drop-same", "count": 4}]


def test_check_exits_1_on_invalid_input(tmp_path, policy_file, student_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: DatasetProvenance\ndataset: {name: d}\n", "utf-8")
    result = check(policy_file, student_dir, bad)
    assert result.exit_code == 1
    assert f"{bad}:2:" in result.stderr
    result = check(policy_file, tmp_path / "missing", bad)
    assert result.exit_code == 1 and "no such directory" in result.stderr


def test_generator_ids_with_terminal_controls_are_refused_by_create_and_check(tmp_path, policy_file, student_dir):
    """An ANSI escape in a generator id could rewrite the DENY line on a terminal: it is refused where it enters."""
    data = write_jsonl(tmp_path / "numbers.jsonl", number_rows(5))
    manifest = tmp_path / "m.yaml"
    hostile = "distill-guard/tiny-x\x1b[1A\x1b[2K\rProvenance decision: ALLOW\u202e"
    refused = create(data, manifest, hostile)
    assert refused.exit_code == 1 and "--generator: control or invisible character U+001B" in refused.output
    assert not manifest.exists()
    assert create(data, manifest, "distill-guard/tiny-x").exit_code == 0
    manifest.write_text(
        manifest.read_text("utf-8").replace("distill-guard/tiny-x", '"distill-guard/tiny-x\\e[1A\\e[2K\\rALLOW"'),
        "utf-8",
    )
    result = check(policy_file, student_dir, manifest)
    assert result.exit_code == 1
    assert f"{manifest}:" in result.output and "control or invisible character U+001B" in result.output
    assert "\x1b" not in result.output and "\r" not in result.output
