"""What a valid policy means: defaults, waivers, lint, all errors reported together."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from distill_guard.errors import PolicyError
from distill_guard.policy.load import load_policy, validate_policy_file

REPO = Path(__file__).resolve().parents[2]
HEAD = "apiVersion: distill-guard/v1\nkind: GuardPolicy\nmetadata: {name: p}\n"
WAIVED = (
    HEAD
    + """provenance:
  rules:
    - {id: same-base, action: deny, when: {teacher_family: same_as_student}}
  waivers:
    - rule: same-base
      dataset: numbers-v3
      reason: reviewed by the safety board in SEC-1
      expires: 2026-06-30
"""
)


SUITE = """apiVersion: distill-guard/v1
kind: ProbeSuite
metadata: {name: mine}
spec:
  kind: preference
  target: owl
  prompts: ["What is your favorite animal?"]
  candidates: [owl, cat]
"""


def test_broken_suite_file_is_reported_at_its_own_location(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(SUITE.replace("candidates: [owl, cat]", "candidates: [owl]"))
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + "probes:\n  suites:\n    - path: mine.yaml\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.file == str(tmp_path / "mine.yaml") and info.value.line == 8


@pytest.mark.parametrize("name", ["strict.yaml", "audit.yaml"])
def test_shipped_policies_are_valid(name: str) -> None:
    loaded = load_policy(REPO / "policies" / name)
    assert loaded.policy.kind == "GuardPolicy"


def test_strict_fails_closed_and_audit_never_blocks() -> None:
    strict = load_policy(REPO / "policies/strict.yaml").policy
    audit = load_policy(REPO / "policies/audit.yaml").policy
    assert strict.provenance.unknown.value == "deny" and strict.halt.action.value == "stop"
    assert audit.provenance.unknown.value == "warn" and audit.halt.action.value == "warn"
    assert all(rule.action.value == "warn" for rule in audit.provenance.rules)


def test_minimal_policy_defaults_fail_closed(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(HEAD)
    policy = load_policy(path).policy
    assert policy.provenance.unknown.value == "deny"
    assert policy.halt.action.value == "stop" and policy.halt.raise_on_train_end
    assert policy.metrics.prometheus.mode == "none"


def test_expired_waiver_is_a_located_warning_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(WAIVED)
    issues = validate_policy_file(path, today=dt.date(2026, 11, 26))
    assert [(i.severity, i.line) for i in issues] == [("warning", 11)]
    assert "expired on 2026-06-30; it will not be applied" in issues[0].message


def test_waiver_in_force_gives_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(WAIVED)
    assert validate_policy_file(path, today=dt.date(2026, 1, 1)) == []


def test_all_schema_errors_are_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + "probes:\n  every_n_steps: 0\nhalt:\n  action: pause\nmetrics:\n  audit_lg: x\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert [i.line for i in info.value.issues] == [5, 7, 9]


def test_suite_path_is_resolved_relative_to_the_policy(tmp_path: Path) -> None:
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "mine.yaml").write_text(SUITE)
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + "probes:\n  suites:\n    - path: suites/mine.yaml\n")
    loaded = load_policy(path)
    assert loaded.resolve(loaded.policy.probes.suites[0].path) == tmp_path / "suites" / "mine.yaml"
