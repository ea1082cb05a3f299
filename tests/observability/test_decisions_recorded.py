"""Every provenance decision is recorded the moment it is made, whether or not a Trainer ever exists."""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets import Dataset
from prometheus_stack import Prometheus, Pushgateway
from test_trainer_run import new_run, value, write_policy

from distill_guard import DistillGuard, ProvenanceDenied
from distill_guard.export.audit import AuditLog


def _unlabelled_rows() -> Dataset:
    return Dataset.from_dict({"text": ["7, 12, 33", "4, 18, 91"]})


def test_a_denial_before_any_trainer_reaches_the_audit_log_and_prometheus(
    tmp_path: Path, pushgateway: Pushgateway, prometheus: Prometheus
) -> None:
    run = new_run()
    policy = write_policy(
        tmp_path / "policy.yaml", run=run, prometheus={"mode": "pushgateway", "url": pushgateway.url}, unknown="deny"
    )
    guard = DistillGuard.from_policy(policy, output_dir=tmp_path / "gate")
    with pytest.raises(ProvenanceDenied):
        guard.clear_dataset(_unlabelled_rows())  # no manifest: unknown provenance, denied; no Trainer anywhere

    [line] = AuditLog(tmp_path / "gate" / "guard-audit.jsonl").read()
    assert (line["event"], line["moment"], line["decision"]["outcome"]) == (
        "provenance_decision",
        "clear_dataset",
        "deny",
    )
    series = prometheus.wait_for(f'distill_guard_provenance_decisions_total{{run="{run}", decision="deny"}}')
    assert value(series) == 1


def test_without_an_output_dir_the_audit_log_is_under_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    policy = write_policy(tmp_path / "policy.yaml", run=new_run(), prometheus={"mode": "none"}, unknown="warn")
    cleared = DistillGuard.from_policy(policy).clear_dataset(_unlabelled_rows())  # a warning, recorded
    assert cleared.decision.allowed
    [line] = AuditLog(tmp_path / "guard-audit.jsonl").read()
    assert line["decision"]["outcome"] == "warn"


def test_a_decision_made_before_the_trainer_is_copied_into_the_runs_audit_log(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoTokenizer

    from tests.guard.conftest import make_trainer

    policy = write_policy(tmp_path / "policy.yaml", run=new_run(), prometheus={"mode": "none"}, unknown="warn")
    guard = DistillGuard.from_policy(policy)
    monkeypatch.chdir(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    cleared = guard.clear_dataset(_unlabelled_rows().map(lambda row: tokenizer(row["text"]))).dataset
    make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=1, dataset=cleared).train()

    def moments(log: Path) -> list[str]:
        return [e["moment"] for e in AuditLog(log).read() if e["event"] == "provenance_decision"]

    assert moments(tmp_path / "guard-audit.jsonl") == ["clear_dataset"]  # written where and when it was made
    assert moments(tmp_path / "out" / "guard-audit.jsonl") == ["clear_dataset", "train_begin"]
