"""Everything the guard tells the outside world, from rank 0 only: audit log, metrics, exporter.

The callback calls these methods on every rank; on other ranks they do nothing, so exactly one
process writes the audit log and exactly one serves or pushes metrics. Observability fails soft
(the exporters count and log their own failures); the audit log is a local append and fails loud.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill_guard._version import __version__
from distill_guard.drift.assess import DriftReport
from distill_guard.drift.halt_record import HaltRecord
from distill_guard.export.audit import AuditLog
from distill_guard.export.metrics import GuardMetrics
from distill_guard.export.prometheus import Exporter, make_exporter
from distill_guard.policy.schema import GuardPolicy
from distill_guard.probes.result import ProbeResult
from distill_guard.provenance.decision import Decision


class Telemetry:
    def __init__(self, policy: GuardPolicy) -> None:
        self.policy = policy
        self.metrics: GuardMetrics | None = None
        self.audit: AuditLog | None = None
        self._exporter: Exporter | None = None
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._uncounted: list[Decision] = []
        self._main = False

    @property
    def is_open(self) -> bool:
        return self.audit is not None

    def open(self, *, output_dir: Path, run: str, is_main: bool, world_size: int, model: str) -> None:
        """Start the audit log and exporter for one `train()` call (idempotent while open)."""
        if self.is_open:
            return
        self._main = is_main
        configured = Path(self.policy.metrics.audit_log)
        self.audit = AuditLog(configured if configured.is_absolute() else output_dir / configured)
        if not is_main:
            self._pending.clear()
            self._uncounted.clear()
            return
        self.metrics = GuardMetrics(run)
        self.metrics.set_run_info(
            policy=self.policy.metadata.name,
            version=__version__,
            world_size=str(world_size),
            model=model,
        )
        self._exporter = make_exporter(self.policy.metrics.prometheus, self.metrics)
        self._exporter.start()
        for event, fields in self._pending:
            self.event(event, **fields)
        for decision in self._uncounted:
            self._count(decision)
        self._pending.clear()
        self._uncounted.clear()

    def event(self, name: str, **fields: Any) -> None:
        """One audit-log line; events before `open` (e.g. clear_dataset) are kept and written at open."""
        if self.audit is None:
            self._pending.append((name, fields))
        elif self._main:
            self.audit.record(name, policy=self.policy.metadata.name, **fields)

    def decision(self, decision: Decision, *, moment: str, step: int | None = None) -> None:
        """Audit and count a gate decision; one made before `open` is counted when metrics start."""
        self.event("provenance_decision", moment=moment, step=step, decision=decision.to_dict())
        if self.metrics is not None:
            self._count(decision)
        elif not self.is_open:
            self._uncounted.append(decision)

    def _count(self, decision: Decision) -> None:
        assert self.metrics is not None
        for outcome, rule in decision.metric_labels():
            self.metrics.record_provenance_decision(decision=outcome, rule=rule)

    def baseline(self, result: ProbeResult, *, noise_floor: float, step: int) -> None:
        self.event("baseline", step=step, probe=result.suite, result=result.to_json(), noise_floor=noise_floor)
        if self.metrics is not None:
            self.metrics.observe_probe(result)

    def evaluation(self, result: ProbeResult | None, report: DriftReport) -> None:
        """Export one probe evaluation (result is None when the probe failed) and count breaches.

        The series keep the probe's own trait label (none for a panel, whose numbers follow the
        candidate that rose most), so a panel never adds one series per candidate.
        """
        if self.metrics is None:
            return
        if result is not None:
            self.metrics.observe_probe(result, report)
            movers = list(report.movers) or (
                [(report.trait or "", report.specific)] if report.specific is not None else []
            )
            if movers:
                self.metrics.observe_specific(probe=report.probe, movers=movers)
        if report.breached:
            self.metrics.record_breach(probe=report.probe, trait=result.trait if result else report.trait)

    def halted(self, record: HaltRecord) -> None:
        self.event("halt" if record.action == "stop" else "breach_warning", step=record.step, record=record.to_json())
        if self.metrics is not None and record.action == "stop":
            self.metrics.set_halted(True)

    def step(self, step: int) -> None:
        if self.metrics is not None:
            self.metrics.set_step(step)

    def publish(self) -> None:
        if self._exporter is not None:
            self._exporter.publish()

    def close(self, *, clean: bool) -> None:
        """Final publish, stop the exporter; the next `train()` call opens afresh."""
        if self._exporter is not None:
            self._exporter.publish()
            self._exporter.close(clean=clean)
        self._exporter = None
        self.metrics = None
        self.audit = None
