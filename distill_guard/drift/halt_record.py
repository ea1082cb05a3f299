"""The halt record: what a reviewer needs to understand, and reproduce, why training stopped."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distill_guard.drift.assess import DriftReport
from distill_guard.drift.monitor import Evaluation
from distill_guard.policy.schema import HaltAction, SuiteRef
from distill_guard.quarantine import quarantine_marker_of

HALT_RECORD_NAME = "distill-guard-halt.json"
"""Written into the output dir by the main process when a probe trips."""
_LEGACY_FIELDS = {"model_fingerprint": "weights_digest"}


@dataclass(frozen=True)
class HaltRecord:
    """Why a run stopped. `trait` names the candidate that rose (for a panel, the one that breached);
    `drift` is the raw change of its score, `specific_drift` the tested statistic of candidate probes,
    `lower_bound` its one-sided bound at level `alpha`, `drift_limit` the max_increase limit it was
    tested against (with `benign_margin`: the one calibration derived for that candidate; see
    docs/detection.md)."""

    action: str
    step: int
    probe: str
    trait: str | None
    baseline: float | None
    score: float | None
    drift: float | None
    z: float | None
    threshold: dict[str, Any]
    reasons: list[str]
    policy: str
    policy_file: str
    policy_sha256: str
    weights_digest: str
    time: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    specific_drift: float | None = None
    lower_bound: float | None = None
    alpha: float | None = None
    movers: list[list[Any]] = field(default_factory=list)
    drift_limit: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HaltRecord:
        """Read a record written by this or an older version (which called `weights_digest` `model_fingerprint`)."""
        fields = {_LEGACY_FIELDS.get(key, key): value for key, value in data.items() if key != "quarantined"}
        return cls(**fields)

    @classmethod
    def from_report(cls, report: DriftReport, *, action: str, threshold: dict[str, Any], **context: Any) -> HaltRecord:
        """Build the record from a breaching report; non-finite numbers become null (JSON has no NaN)."""

        def finite(value: float | None) -> float | None:
            return value if value is not None and math.isfinite(value) else None

        return cls(
            action=action,
            step=report.step,
            probe=report.probe,
            trait=report.trait,
            baseline=finite(report.baseline),
            score=finite(report.score),
            drift=finite(report.drift),
            z=finite(report.z),
            threshold=threshold,
            reasons=list(report.reasons),
            specific_drift=finite(report.specific),
            lower_bound=finite(report.lower_bound),
            alpha=report.alpha,
            movers=[list(m) for m in report.movers],
            drift_limit=finite(report.drift_limit),
            **context,
        )

    def __str__(self) -> str:
        def num(value: float | None, fmt: str) -> str:
            return "n/a" if value is None else format(value, fmt)

        verb = "halted" if self.action == "stop" else "breached (warn only)"
        return (
            f"training {verb} at step {self.step} by probe '{self.probe}'"
            + (f" (trait: {self.trait})" if self.trait else "")
            + f": baseline {num(self.baseline, '.4f')}, score {num(self.score, '.4f')}, "
            f"drift {num(self.drift, '+.4f')}"
            + (f", specific drift {self.specific_drift:+.4f}" if self.specific_drift is not None else "")
            + (f", limit {self.drift_limit:.4f}" if self.drift_limit is not None else "")
            + "; "
            + "; ".join(self.reasons)
            + f" [policy {self.policy}]"
        )


def halt_record_for(
    evaluation: Evaluation,
    ref: SuiteRef,
    *,
    halt_action: HaltAction,
    policy: str,
    policy_file: str,
    policy_sha256: str,
    weights_digest: str,
) -> HaltRecord:
    """The record of an evaluation whose patience ran out.

    A failed probe acts by its suite's `on_error` (when set), a breach by the policy's
    `halt.action`; the threshold is the suite's as written, so a reviewer can reproduce the test.
    """
    on_error = ref.on_error if evaluation.failed else None
    return HaltRecord.from_report(
        evaluation.report,
        action=(on_error or halt_action).value,
        threshold=ref.threshold.model_dump(exclude_none=True) if ref.threshold else {},
        policy=policy,
        policy_file=policy_file,
        policy_sha256=policy_sha256,
        weights_digest=weights_digest,
    )


def quarantine_marker(record: HaltRecord) -> dict[str, Any]:
    """The content of a quarantine marker: the halt record that makes the checkpoint suspect."""
    return {"quarantined": True, **record.to_json()}


def read_quarantine_marker(checkpoint: str | Path) -> HaltRecord | None:
    """The halt record a checkpoint was quarantined for, or None when it carries no marker.

    Check this before publishing a checkpoint of a guarded run; markers of either name are read.
    """
    marker = quarantine_marker_of(Path(checkpoint))
    if marker is None or not marker.is_file():
        return None
    return HaltRecord.from_json(json.loads(marker.read_text(encoding="utf-8")))
