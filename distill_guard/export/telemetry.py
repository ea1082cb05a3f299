"""Everything the guard tells the outside world, from rank 0 only: audit log, metrics, exporter.

The callback calls these methods on every rank; on other ranks they do nothing, so exactly one
process writes the audit log and exactly one serves or pushes metrics. Observability fails soft
(the exporters count and log their own failures); the audit log is a local append and fails loud.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

import distill_guard.dist as dist
from distill_guard._version import __version__
from distill_guard.drift.assess import DriftReport
from distill_guard.drift.halt_record import HaltRecord
from distill_guard.export import trackers
from distill_guard.export.audit import AuditLog
from distill_guard.export.audit_lines import LineContext, new_run_id
from distill_guard.export.metrics import GuardMetrics
from distill_guard.export.model_card import card_section, write_card_section
from distill_guard.export.prometheus import Exporter, make_exporter
from distill_guard.policy.schema import GuardPolicy
from distill_guard.probes.result import ProbeResult
from distill_guard.provenance.decision import Decision

logger = logging.getLogger(__name__)


class Telemetry:
    """The audit log and metrics of one guard, open from its first decision or `train()` call.

    A decision made before any Trainer exists (`clear_dataset`, the `check` command) opens them
    *before the trainer*: the policy's audit log resolved against the guard's `output_dir` (else
    the working directory), metrics under the run label known then. At train begin `open` moves
    the audit log to the Trainer's output dir (copying the earlier lines when that is another
    file) and keeps the metrics when the run label is the same; otherwise the early series keeps
    its counts under its own label and a new one starts, so each decision is counted once.
    """

    def __init__(
        self,
        policy: GuardPolicy,
        *,
        output_dir: Path | None = None,
        run: str | None = None,
        audit_log: Path | None = None,
        policy_sha256: str = "",
    ) -> None:
        """`output_dir` and `run` are what is known without a Trainer; `audit_log` overrides the policy's;
        `policy_sha256` (of the policy file) is stamped on every audit line."""
        self.policy = policy
        self._policy_sha256 = policy_sha256
        self._context: LineContext | None = None
        self.metrics: GuardMetrics | None = None
        self.audit: AuditLog | None = None
        self._closed_audit: AuditLog | None = None  # where events after a run (a refused push) still go
        self._exporter: Exporter | None = None
        self._early_dir = output_dir
        self._early_run = run or policy.metrics.run_name
        self._audit_override = audit_log
        self._before_trainer = False
        self._early_lines: list[tuple[str, dict[str, Any]]] = []
        self._main = False
        self._trainer: Any = None  # the Trainer whose `log` reaches the report_to trackers (guard.attach)
        self._tracked: dict[str, float] = {}  # scalars for the trackers, sent at the next publish
        self._halted = False
        self._last_decision: Decision | None = None  # what a model card written at a save reports
        self._last_reports: list[dict[str, Any]] = []

    @property
    def is_open(self) -> bool:
        return self.audit is not None

    def audit_path(self, output_dir: Path | None) -> Path:
        """The policy's audit log: absolute as written, else under `output_dir` (or the working dir)."""
        configured = self._audit_override or Path(self.policy.metrics.audit_log)
        return configured if configured.is_absolute() else (output_dir or Path.cwd()) / configured

    def open_before_trainer(self) -> None:
        """Open for decisions made where no Trainer exists yet (idempotent while open)."""
        if self.is_open:
            return
        self.open(
            output_dir=self._early_dir or Path.cwd(),
            run=self._early_run,
            is_main=dist.is_main_launch_rank(),
            world_size=dist.world_size(),
            model="",
        )
        self._before_trainer = True

    def open(
        self,
        *,
        output_dir: Path,
        run: str | None,
        is_main: bool,
        world_size: int,
        model: str,
        trainer: Any = None,
    ) -> None:
        """Start the audit log and exporter for one `train()` call (idempotent while open for it).

        `run` is the metrics' `run` label; without one it is the run id, unique per run like the
        audit log's (an output folder's name, `out` or `trainer_output`, is shared by many runs).
        With `trainer`, the guard's numbers also go through its `log` to every `report_to` tracker.
        """
        if self.is_open and not self._before_trainer:
            return
        self._trainer, self._halted = (trainer if is_main else None), False
        early, self._before_trainer = self.audit, False
        self._main = is_main
        if early is None or self._context is None:  # a run continuing from its early decisions keeps its id
            self._context = LineContext(
                run_id=new_run_id(),
                rank=dist.launch_rank(),
                policy=self.policy.metadata.name,
                policy_sha256=self._policy_sha256,
            )
        run = run or self._context.run_id
        self.audit = AuditLog(self.audit_path(output_dir))
        if not is_main:
            self._early_lines.clear()
            return
        if self.metrics is not None and self.metrics.run != run:
            self._stop_exporter(clean=False)  # the early series keeps what it counted, under its label
        if self.metrics is None:
            self.metrics = GuardMetrics(run)
            # A Pushgateway group per run id (the audit log's): runs that share a run name (one set in the
            # policy, say) never overwrite, or on a clean finish delete, each other's group.
            grouping = {"run_id": self._context.run_id}
            self._exporter = make_exporter(self.policy.metrics.prometheus, self.metrics, grouping=grouping)
            self._exporter.start()
        self.metrics.set_run_info(
            run_id=self._context.run_id,  # joins any series to its audit log, whatever the run is called
            policy=self.policy.metadata.name,
            version=__version__,
            world_size=str(world_size),
            model=model,
        )
        assert self._exporter is not None
        logger.info("distill-guard: audit log %s; metrics %s", self.audit.path, self._exporter.location())
        if early is not None and early.path.resolve() != self.audit.path.resolve():
            for name, fields in self._early_lines:
                self.audit.record(name, **self._context.fields(), **fields)
        self._early_lines.clear()

    @property
    def run_id(self) -> str | None:
        return self._context.run_id if self._context else None

    def event(self, name: str, **fields: Any) -> None:
        """One audit-log line, written at once; the first one before any `open` opens before the trainer."""
        if self.audit is None and self._closed_audit is None:
            self.open_before_trainer()
        audit = self.audit or self._closed_audit
        if audit is not None and self._main:
            assert self._context is not None
            audit.record(name, **self._context.fields(), **fields)
            if self._before_trainer:
                self._early_lines.append((name, fields))

    def decision(self, decision: Decision, *, moment: str, step: int | None = None) -> None:
        """Audit, count and publish a gate decision the moment it is made, Trainer or not."""
        if not self.is_open:
            self.open_before_trainer()
        self._last_decision = decision
        self.event("provenance_decision", moment=moment, step=step, decision=decision.to_dict())
        if self.metrics is not None:
            self._count(decision)
        self._track(trackers.provenance_scalars(decision))
        self.publish()

    def _count(self, decision: Decision) -> None:
        assert self.metrics is not None
        for outcome, rule in decision.metric_labels():
            self.metrics.record_provenance_decision(decision=outcome, rule=rule)

    def baseline(self, result: ProbeResult, *, noise_floor: float, step: int) -> None:
        self.event("baseline", step=step, probe=result.suite, result=result.to_json(), noise_floor=noise_floor)
        logger.info(
            "distill-guard: baseline of probe '%s'%s: %.4f over %d items (noise floor %.2g)",
            result.suite,
            f" (trait {result.trait})" if result.trait else "",
            result.score,
            len(result.item_scores),
            noise_floor,
        )
        self._track(trackers.baseline_scalars(result) | trackers.halted_scalars(self._halted))
        if self.metrics is not None:
            self.metrics.observe_probe(result)

    def evaluation(self, result: ProbeResult | None, report: DriftReport) -> None:
        """Export one probe evaluation (result is None when the probe failed) and count breaches.

        The series keep the probe's own trait label (none for a panel, whose numbers follow the
        candidate that rose most), so a panel never adds one series per candidate.
        """
        self._track(trackers.evaluation_scalars(report))
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

    def evaluated(self, step: int, reports: list[dict[str, Any]], *, look: int, alpha: float) -> None:
        """One audit line and one log line per evaluation: every probe's score against its limit, with
        the look's number and the false-halt budget it spent (`alpha`)."""
        self._last_reports = reports
        self.event("probes", step=step, look=look, alpha=alpha, reports=reports)
        self._track(trackers.halted_scalars(self._halted))
        if self._main:
            logger.info("distill-guard: step %d: %s", step, "; ".join(map(_describe_report, reports)))

    def halted(self, record: HaltRecord) -> None:
        self.event("halt" if record.action == "stop" else "breach_warning", step=record.step, record=record.to_json())
        if record.action != "stop":
            return
        self._halted = True
        self._track(trackers.halted_scalars(True))
        if self.metrics is not None:
            self.metrics.set_halted(True)

    def model_card(self, checkpoint: Path, *, step: int, halt: HaltRecord | None) -> None:
        """Write the guard's section into a saved checkpoint's model card (main process only).

        Observability: a card that cannot be read or written is logged and audited, never a stop;
        the quarantine marker, not the card, is what keeps a halted checkpoint in.
        """
        if not self._main or not checkpoint.is_dir():
            return
        section = card_section(
            policy=self.policy.metadata.name,
            policy_sha256=self._policy_sha256,
            run_id=self._context.run_id if self._context else None,
            step=step,
            decision=self._last_decision,
            reports=self._last_reports,
            halt=halt,
        )
        try:
            card = write_card_section(checkpoint, section)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            logger.warning("distill-guard: model card of %s not updated: %s", checkpoint, exc)
            self.event("model_card_failed", step=step, checkpoint=str(checkpoint), error=str(exc))
            return
        self.event("model_card", step=step, checkpoint=str(checkpoint), card=str(card), halted=halt is not None)

    def step(self, step: int) -> None:
        if self.metrics is not None:
            self.metrics.set_step(step)

    def stop_tracking(self) -> None:
        """Send nothing more to the trackers: logging after their `on_train_end` (which closes
        TensorBoard's writer and ends the MLflow run) would open a new event file or run."""
        self._send_to_trackers()
        self._trainer = None

    def _track(self, scalars: dict[str, float]) -> None:
        if self._trainer is not None:
            self._tracked |= scalars

    def _send_to_trackers(self) -> None:
        """Fails soft like the exporters: a tracker that cannot take the numbers never stops training."""
        scalars, self._tracked = self._tracked, {}
        if not scalars or self._trainer is None:
            return
        try:
            trackers.send(self._trainer, scalars)
        except Exception as exc:
            logger.warning("distill-guard: could not log to the trainer's report_to trackers: %s", exc)
            if self.metrics is not None:
                self.metrics.record_export_error("trackers")

    def publish(self) -> None:
        self._send_to_trackers()
        if self._exporter is not None:
            self._exporter.publish()

    def close(self, *, clean: bool) -> None:
        """Final publish, stop the exporter; the next decision or `train()` call opens afresh."""
        self._send_to_trackers()
        self._trainer = None
        self._stop_exporter(clean=clean)
        self._before_trainer = False
        self._early_lines.clear()
        self._closed_audit, self.audit = self.audit, None

    def _stop_exporter(self, *, clean: bool) -> None:
        if self._exporter is not None:
            self._exporter.publish()
            self._exporter.close(clean=clean)
        self._exporter = None
        self.metrics = None


def _describe_report(report: dict[str, Any]) -> str:
    def num(key: str, fmt: str) -> str:
        value = report.get(key)
        return "n/a" if value is None else format(value, fmt)

    verdict = "BREACH" if report.get("breached") else "ok"
    candidate = f" [{report['trait']}]" if report.get("trait") else ""
    specific = f", specific {num('specific', '+.4f')}" if report.get("specific") is not None else ""
    return (
        f"{report['probe']}{candidate} {num('score', '.4f')} (baseline {num('baseline', '.4f')}, "
        f"drift {num('drift', '+.4f')}{specific}, lower bound {num('lower_bound', '+.4f')}, "
        f"limit {num('limit', '.4f')}) {verdict}"
    )
