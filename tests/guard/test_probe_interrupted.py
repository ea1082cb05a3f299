"""A probe stopped by SystemExit or KeyboardInterrupt mid-run still leaves its line in the audit log."""

from __future__ import annotations

import pytest

from distill_guard import DistillGuard
from distill_guard.export.audit import AuditLog
from distill_guard.probes.prepared import PreparedProbe
from tests.guard.conftest import make_trainer


@pytest.mark.parametrize("interruption", [KeyboardInterrupt("ctrl-c"), SystemExit(7)], ids=["ctrl-c", "exit"])
def test_interrupted_probe_is_recorded_and_the_interruption_goes_on(
    interruption, tiny_checkpoint, tmp_path, write_policy, controlled_scores, monkeypatch
):
    controlled_scores([[0.10, 0.12, 0.11, 0.09]])
    real_run = PreparedProbe.run
    calls = []

    def run_then_interrupt(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 1:  # the baseline runs; the first evaluation is interrupted
            raise interruption
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(PreparedProbe, "run", run_then_interrupt)
    guard = DistillGuard.from_policy(write_policy(every=2))
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=6)
    with pytest.raises(type(interruption)):
        trainer.train()
    events = AuditLog(tmp_path / "out" / "guard-audit.jsonl").read()
    stopped = [e for e in events if e["event"] == "probe_interrupted"]
    assert len(stopped) == 1
    assert stopped[0]["step"] == 2 and stopped[0]["probe"] == "controlled"
    assert stopped[0]["error"].startswith(type(interruption).__name__)
