"""Operator comfort: INFO lines a person can follow, deployment settings from the environment, --version."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill_guard import DistillGuard, DistillGuardError, TrainingHalted, __version__
from distill_guard.cli.main import app
from distill_guard.export.audit import AuditLog
from tests.guard.conftest import make_trainer
from tests.support.controlled import planned_scores
from tests.support.policies import write_guard_policy

BASE = [0.10, 0.12, 0.11, 0.09]
HIGH = [0.40, 0.45, 0.42, 0.41]


def _policy(tmp_path: Path) -> Path:
    return write_guard_policy(tmp_path / "policy.yaml", every=2)


def test_a_guarded_run_logs_metrics_url_audit_log_baseline_each_evaluation_and_the_halt(
    tiny_checkpoint, tmp_path, monkeypatch, caplog
):
    audit = tmp_path / "elsewhere" / "audit.jsonl"
    monkeypatch.setenv("DISTILL_GUARD_METRICS_MODE", "http")  # the policy says mode none
    monkeypatch.setenv("DISTILL_GUARD_METRICS_PORT", "0")
    monkeypatch.setenv("DISTILL_GUARD_AUDIT_LOG", str(audit))
    monkeypatch.setenv("DISTILL_GUARD_RUN_NAME", "laptop-run")
    guard = DistillGuard.from_policy(_policy(tmp_path))
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=6, log_level="info")
    logged = caplog.at_level(logging.INFO, logger="distill_guard")
    with planned_scores([BASE, BASE, HIGH]), logged, pytest.raises(TrainingHalted):
        trainer.train()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("distill_guard")]
    [where] = [line for line in lines if "audit log" in line]
    port = int(re.search(r"metrics http://127\.0\.0\.1:(\d+)/metrics", where).group(1))
    assert port > 0 and str(audit) in where
    assert any(line.startswith("distill-guard: baseline of probe 'controlled'") for line in lines)
    evaluations = [line for line in lines if re.match(r"distill-guard: step \d+: controlled ", line)]
    assert len(evaluations) == 2 and evaluations[-1].endswith("BREACH")
    assert any("training halted at step 4" in line for line in lines)
    assert [e["event"] for e in AuditLog(audit).read()][:1] == ["train_begin"]  # the overridden audit log


def test_safety_settings_never_come_from_the_environment(tiny_checkpoint, tmp_path, monkeypatch, caplog):
    for name, value in {
        "DISTILL_GUARD_HALT_ACTION": "warn",
        "DISTILL_GUARD_PROBES_EVERY_N_STEPS": "1000",
        "DISTILL_GUARD_PROVENANCE_UNKNOWN": "allow",
    }.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.WARNING, logger="distill_guard"):
        guard = DistillGuard.from_policy(_policy(tmp_path))
    ignored = " ".join(r.getMessage() for r in caplog.records)
    assert all(
        f"{name} is ignored" in ignored for name in ("DISTILL_GUARD_HALT_ACTION", "DISTILL_GUARD_PROVENANCE_UNKNOWN")
    )
    assert guard.policy.halt.action.value == "stop" and guard.policy.probes.every_n_steps == 2
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=6)
    with planned_scores([BASE, BASE, HIGH]), pytest.raises(TrainingHalted) as info:  # halts as the policy says
        trainer.train()
    assert info.value.record.step == 4


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"DISTILL_GUARD_METRICS_PORT": "nine"}, "DISTILL_GUARD_METRICS_PORT"),
        ({"DISTILL_GUARD_METRICS_MODE": "pushgateway"}, "DISTILL_GUARD_METRICS_MODE"),  # no URL anywhere
        ({"DISTILL_GUARD_PUSHGATEWAY_URL": "gateway:9091", "DISTILL_GUARD_METRICS_MODE": "pushgateway"}, "url"),
        ({"DISTILL_GUARD_RUN_NAME": "Has Spaces"}, "run_name"),
    ],
)
def test_an_invalid_deployment_setting_is_refused_naming_it(tmp_path, monkeypatch, variables, named):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(DistillGuardError, match=named):
        DistillGuard.from_policy(_policy(tmp_path))


def test_pushgateway_url_and_mode_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_GUARD_METRICS_MODE", "pushgateway")
    monkeypatch.setenv("DISTILL_GUARD_PUSHGATEWAY_URL", "http://gateway.cluster:9091")
    exporter = DistillGuard.from_policy(_policy(tmp_path)).policy.metrics.prometheus
    assert (exporter.mode, exporter.url) == ("pushgateway", "http://gateway.cluster:9091")


def test_version_option_prints_the_installed_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"distill-guard {__version__}"
