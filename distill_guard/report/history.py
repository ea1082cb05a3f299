"""A run as its audit log recorded it: probe curves with their limits, provenance decisions, the halt.

Reports are drawn from this and nothing else, so they show exactly what the guard recorded, never
a second computation of it. A line that is not what the guard writes stops the reading with the
file and line named: a report built around a damaged log would silently leave something out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from distill_guard.errors import DistillGuardError
from distill_guard.input_files import read_bounded

MAX_AUDIT_LOG_BYTES = 1 << 30


class AuditLogError(DistillGuardError):
    """The audit log cannot be read as the guard writes it; the message names the file and line."""


@dataclass(frozen=True)
class ProbeTrace:
    """One probe's evaluations in one run: drift per step (the baseline first, at drift 0), the drift
    its limit allows at each step (None where the threshold sets no ceiling), and the halt step when
    this probe halted the run."""

    label: str
    probe: str
    steps: tuple[int, ...]
    drifts: tuple[float | None, ...]
    drift_limits: tuple[float | None, ...]
    breached: tuple[bool, ...]
    halted_at: int | None = None

    def relabelled(self, label: str) -> ProbeTrace:
        return replace(self, label=label)

    @property
    def last_limit(self) -> float | None:
        return next((limit for limit in reversed(self.drift_limits) if limit is not None), None)

    @property
    def first_breach(self) -> int | None:
        return next((step for step, hit in zip(self.steps, self.breached, strict=True) if hit), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "probe": self.probe,
            "steps": list(self.steps),
            "drifts": list(self.drifts),
            "drift_limits": list(self.drift_limits),
            "breached": list(self.breached),
            "halted_at": self.halted_at,
        }


@dataclass(frozen=True)
class GateDecision:
    """One `provenance_decision` line: when it was made, its outcome and the rules that fired."""

    moment: str
    outcome: str
    dataset: str
    rules: tuple[dict[str, Any], ...]

    def fired(self) -> list[str]:
        return [str(rule.get("id")) for rule in self.rules if rule.get("waived_by") is None]

    def __str__(self) -> str:
        fired = ", ".join(self.fired()) or "none"
        return f"{self.outcome.upper()} at {self.moment} (dataset '{self.dataset}'; rules fired: {fired})"


@dataclass(frozen=True)
class RunHistory:
    source: Path
    run_ids: tuple[str, ...]
    policy: str | None
    policy_sha256: str | None
    decisions: tuple[GateDecision, ...]
    traces: tuple[ProbeTrace, ...]
    halt: dict[str, Any] | None  # the halt record as written (HaltRecord.to_json)
    last_step: int | None
    quarantined: tuple[str, ...] = field(default=())

    @property
    def halted(self) -> bool:
        return self.halt is not None

    @property
    def provenance(self) -> str:
        """The run's provenance outcome: the last decision's, or 'none recorded'."""
        return self.decisions[-1].outcome if self.decisions else "none recorded"

    def trace(self, probe: str) -> ProbeTrace:
        found = next((t for t in self.traces if t.probe == probe), None)
        if found is None:
            raise AuditLogError(f"{self.source}: no evaluation of probe '{probe}'")
        return found

    def status(self) -> str:
        if self.halt is not None:
            return f"HALTED at step {self.halt['step']} by probe '{self.halt['probe']}'"
        if self.decisions and self.decisions[-1].outcome == "deny":
            return f"DENIED by the provenance gate at {self.decisions[-1].moment}"
        return "completed without a halt" if self.last_step is not None else "no training recorded"

    def to_json(self) -> dict[str, Any]:
        return {
            "audit_log": str(self.source),
            "run_ids": list(self.run_ids),
            "policy": self.policy,
            "policy_sha256": self.policy_sha256,
            "status": self.status(),
            "halted": self.halted,
            "halt_step": self.halt["step"] if self.halt else None,
            "halt": self.halt,
            "last_step": self.last_step,
            "provenance": self.provenance,
            "decisions": [
                {"moment": d.moment, "outcome": d.outcome, "dataset": d.dataset, "rules_fired": d.fired()}
                for d in self.decisions
            ],
            "probes": [t.to_json() for t in self.traces],
            "quarantined": list(self.quarantined),
        }


class _Collector:
    """Folds the audit lines, in order, into the pieces of a RunHistory."""

    def __init__(self) -> None:
        self.run_ids: dict[str, None] = {}
        self.policy: str | None = None
        self.policy_sha256: str | None = None
        self.decisions: list[GateDecision] = []
        self.baselines: dict[str, int] = {}
        self.points: dict[str, list[tuple[int, float | None, float | None, bool]]] = {}
        self.halt: dict[str, Any] | None = None
        self.last_step: int | None = None
        self.quarantined: list[str] = []

    def add(self, entry: dict[str, Any], where: str) -> None:
        event = _get(entry, "event", str, where)
        self.run_ids[_get(entry, "run_id", str, where)] = None
        self.policy = _optional_str(entry, "policy", where) or self.policy
        self.policy_sha256 = _optional_str(entry, "policy_sha256", where) or self.policy_sha256
        if isinstance(entry.get("step"), int) and event in ("probes", "train_end", "halt"):
            self.last_step = max(self.last_step or 0, entry["step"])
        if event == "provenance_decision":
            decision = _get(entry, "decision", dict, where)
            self.decisions.append(
                GateDecision(
                    moment=_get(entry, "moment", str, where),
                    outcome=_get(decision, "outcome", str, where),
                    dataset=str(decision.get("dataset", "")),
                    rules=tuple(r for r in decision.get("rules", []) if isinstance(r, dict)),
                )
            )
        elif event == "baseline":
            self.baselines.setdefault(_get(entry, "probe", str, where), _get(entry, "step", int, where))
        elif event == "probes":
            for report in _get(entry, "reports", list, where):
                self._add_report(report, where)
        elif event == "halt":
            record = _get(entry, "record", dict, where)
            for key, kind in (("step", int), ("probe", str)):
                _get(record, key, kind, where)
            self.halt = record
        elif event == "resume_after_halt":
            self.halt = None  # acknowledged: the run went on past it
        elif event == "quarantine":
            self.quarantined.append(str(_get(entry, "checkpoint", str, where)))

    def _add_report(self, report: Any, where: str) -> None:
        if not isinstance(report, dict):
            raise AuditLogError(f"{where}: a probe report is not a JSON object")
        probe, step = _get(report, "probe", str, where), _get(report, "step", int, where)
        drift, baseline, limit = (_number(report, key, where) for key in ("drift", "baseline", "limit"))
        drift_limit = limit - baseline if limit is not None and baseline is not None else None
        self.points.setdefault(probe, []).append((step, drift, drift_limit, report.get("breached") is True))

    def traces(self) -> tuple[ProbeTrace, ...]:
        halt_probe, halt_step = (self.halt["probe"], self.halt["step"]) if self.halt else (None, None)
        traces = []
        for probe, points in self.points.items():
            first_limit = next((p[2] for p in points if p[2] is not None), None)
            start = (self.baselines.get(probe, 0), 0.0, first_limit, False)
            steps, drifts, limits, breached = zip(start, *points, strict=True)
            traces.append(
                ProbeTrace(probe, probe, steps, drifts, limits, breached, halt_step if probe == halt_probe else None)
            )
        return tuple(traces)


def _get(entry: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = entry.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        found = "missing" if key not in entry else f"a {type(value).__name__}"
        raise AuditLogError(f"{where}: '{key}' must be a {kind.__name__}, found {found}")
    return value


def _optional_str(entry: dict[str, Any], key: str, where: str) -> str | None:
    return _get(entry, key, str, where) if key in entry else None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON (the guard writes a non-finite number as null)")


def _json_line(line: str, where: str) -> Any:
    """One line as strict JSON: NaN/Infinity, numbers past Python's digit limit and nesting too deep
    to decode are refused with the line named (each would otherwise crash or poison report.json)."""
    try:
        return json.loads(line, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise AuditLogError(f"{where}:{exc.colno}: not a JSON line: {exc.msg}") from None
    except RecursionError:
        raise AuditLogError(f"{where}: not a JSON line: nested too deeply") from None
    except ValueError as exc:
        raise AuditLogError(f"{where}: not a JSON line: {exc}") from None


def _number(entry: dict[str, Any], key: str, where: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None  # a failed probe, or a non-finite number the guard wrote as null
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuditLogError(f"{where}: '{key}' must be a number or null, found a {type(value).__name__}")
    return float(value)


def read_history(audit_log: Path) -> RunHistory:
    """Read a guard's JSONL audit log; AuditLogError names the file and line of a damaged line."""
    raw = read_bounded(audit_log, MAX_AUDIT_LOG_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise AuditLogError(f"{audit_log}:{line}: not UTF-8 text") from None
    collector = _Collector()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{audit_log}:{number}"
        entry = _json_line(line, where)
        if not isinstance(entry, dict):
            raise AuditLogError(f"{where}: not a JSON object")
        collector.add(entry, where)
    if not collector.run_ids:
        raise AuditLogError(f"{audit_log}: the audit log holds no events")
    return RunHistory(
        source=audit_log,
        run_ids=tuple(collector.run_ids),
        policy=collector.policy,
        policy_sha256=collector.policy_sha256,
        decisions=tuple(collector.decisions),
        traces=collector.traces(),
        halt=collector.halt,
        last_step=collector.last_step,
        quarantined=tuple(collector.quarantined),
    )
