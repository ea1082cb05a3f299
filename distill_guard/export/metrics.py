"""The guard's Prometheus metric families: names and labels here are a public API.

Dashboards and alert rules (integrations/) depend on these names, so they live in one module and
change only together with the README and tests. Every series carries a `run` label; a
`GuardMetrics` owns its own `CollectorRegistry`, so several guards in one process never collide.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from distill_guard.drift.assess import DriftReport
from distill_guard.probes.result import ProbeResult

PROBE_LABELS = ("run", "probe", "trait")
PROBE_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class GuardMetrics:
    """All metric families of one guarded run, on a private registry.

    Example:
        metrics = GuardMetrics("owl-distill-3")
        metrics.observe_probe(baseline_result)                  # the baseline: drift 0, no threshold
        metrics.observe_probe(result, assess(baseline_result, result, threshold, step=50))
    """

    def __init__(self, run: str, *, clock: Callable[[], float] = time.time) -> None:
        """`clock` gives the wall time stamped on probe runs (injectable so staleness can be tested)."""
        self.run = run
        self.registry = CollectorRegistry()
        self._clock = clock

        def probe_gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, PROBE_LABELS, registry=self.registry)

        self._score = probe_gauge(
            "distill_guard_probe_score", "Latest probe score, on the scale distill_guard_probe_info names."
        )
        # kind (preference, choice, activation, or a registered one) and scale: `probability` (a share in
        # 0-1) or `score` (unbounded, e.g. activation in baseline-contrast units), so a dashboard gives each
        # probe its unit instead of showing every score as a percentage.
        self._probe_info = Info(
            "distill_guard_probe",
            "The kind of each probe and the scale of its score.",
            ("run", "probe"),
            registry=self.registry,
        )
        self._baseline = probe_gauge("distill_guard_probe_baseline", "Probe score measured before training.")
        self._drift = probe_gauge("distill_guard_probe_drift", "Latest score minus baseline.")
        self._zscore = probe_gauge(
            "distill_guard_probe_drift_zscore", "Latest drift in standard errors of the probe's noise."
        )
        self._threshold = probe_gauge(
            "distill_guard_probe_threshold", "Score at which the probe's tightest limit is crossed (score units)."
        )
        self._specific = Gauge(
            "distill_guard_probe_specific_drift",
            "Specific drift (score units) of the top movers of a candidate probe; a panel shows its top few only.",
            ("run", "probe", "candidate"),
            registry=self.registry,
        )
        self._specific_shown: dict[str, set[str]] = {}
        self._last_run = probe_gauge(
            "distill_guard_probe_last_run_timestamp_seconds", "Unix time of the probe's latest evaluation."
        )
        self._duration = Histogram(
            "distill_guard_probe_duration_seconds",
            "Wall time of one probe evaluation.",
            PROBE_LABELS,
            buckets=PROBE_DURATION_BUCKETS,
            registry=self.registry,
        )
        self._breaches = Counter(
            "distill_guard_threshold_breaches",
            "Probe evaluations over their threshold.",
            PROBE_LABELS,
            registry=self.registry,
        )
        self._provenance = Counter(
            "distill_guard_provenance_decisions",
            "Provenance decisions by outcome and deciding rule.",
            ("run", "decision", "rule"),
            registry=self.registry,
        )
        self._export_errors = Counter(
            "distill_guard_export_errors",
            "Failed metric exports; training goes on regardless.",
            ("run", "backend"),
            registry=self.registry,
        )
        self._halted = Gauge(
            "distill_guard_halted",
            "1 once the guard has halted the run, else 0.",
            ("run",),
            registry=self.registry,
        ).labels(run=run)
        self._step = Gauge(
            "distill_guard_training_step",
            "Trainer global step last seen by the guard.",
            ("run",),
            registry=self.registry,
        ).labels(run=run)
        self._run_info = Info("distill_guard_run", "Static facts about the run.", ("run",), registry=self.registry)
        self._halted.set(0)
        self._step.set(0)

    def set_run_info(self, **labels: str) -> None:
        """Publish static facts (policy, version, world_size, model) as `distill_guard_run_info` labels."""
        for name in labels:
            if name == "run" or not _LABEL_NAME.match(name) or name.startswith("__"):
                raise ValueError(f"{name!r} cannot be a run_info label")
        self._run_info.labels(run=self.run).info({name: str(value) for name, value in labels.items()})

    def observe_probe(self, result: ProbeResult, report: DriftReport | None = None) -> None:
        """Record one probe evaluation: `result` as measured, `report` its comparison with the baseline.

        Without a report, `result` is the baseline itself (drift 0, no threshold series yet).
        NaN and inf pass through unchanged: a broken probe must show. The threshold is in score
        units (the score at which the tightest limit is crossed), so dashboards and alerts compare
        it with the score; a report without a limit removes the probe's threshold series.
        """
        labels = self._probe_labels(result.suite, result.trait)
        scale = "probability" if result.is_probability else "score"
        self._probe_info.labels(run=self.run, probe=result.suite).info({"kind": result.kind, "scale": scale})
        if report is None:
            baseline, drift, zscore, threshold = result.score, 0.0, 0.0, None
        else:
            baseline, drift, zscore, threshold = report.baseline, report.drift, report.z, report.limit
        # A panel's report follows the candidate that rose most; for any other probe it is result.score.
        self._score.labels(**labels).set(result.score if report is None else report.score)
        self._baseline.labels(**labels).set(baseline)
        self._drift.labels(**labels).set(drift)
        self._zscore.labels(**labels).set(zscore)
        if threshold is None:
            self._threshold.remove(*labels.values())
        else:
            self._threshold.labels(**labels).set(threshold)
        self._last_run.labels(**labels).set(self._clock())
        self._duration.labels(**labels).observe(result.duration_seconds)
        # Born at 0 so that increase() sees the first breach of this probe.
        self._breaches.labels(**labels)

    def observe_specific(self, *, probe: str, movers: list[tuple[str, float]]) -> None:
        """Show the candidates that rose most; series of candidates that left the top are removed.

        Bounded cardinality: at most `len(movers)` (a few) `candidate` series per probe at a time.
        """
        shown = {name for name, _ in movers}
        for stale in self._specific_shown.get(probe, set()) - shown:
            self._specific.remove(self.run, probe, stale)
        for name, value in movers:
            self._specific.labels(run=self.run, probe=probe, candidate=name).set(value)
        self._specific_shown[probe] = shown

    def record_breach(self, *, probe: str, trait: str | None) -> None:
        self._breaches.labels(**self._probe_labels(probe, trait)).inc()

    def set_halted(self, halted: bool) -> None:
        self._halted.set(1 if halted else 0)

    def set_step(self, step: int) -> None:
        self._step.set(step)

    def record_provenance_decision(self, *, decision: str, rule: str) -> None:
        self._provenance.labels(run=self.run, decision=decision, rule=rule).inc()

    def record_export_error(self, backend: str) -> None:
        self._export_errors.labels(run=self.run, backend=backend).inc()

    def _probe_labels(self, probe: str, trait: str | None) -> dict[str, str]:
        # An empty label value is the same as no label to Prometheus: a probe without a trait.
        return {"run": self.run, "probe": probe, "trait": trait or ""}
