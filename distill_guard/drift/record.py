"""The halt record: what a reviewer needs to understand, and reproduce, why training stopped."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distill_guard.drift.assess import DriftReport

HALT_RECORD_NAME = "distill-guard-halt.json"


@dataclass(frozen=True)
class HaltRecord:
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
    model_fingerprint: str
    time: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_report(cls, report: DriftReport, *, action: str, threshold: dict[str, Any], **context: Any) -> HaltRecord:
        """Build the record from a breaching report; non-finite numbers become null (JSON has no NaN)."""

        def finite(value: float) -> float | None:
            return value if math.isfinite(value) else None

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
            f"drift {num(self.drift, '+.4f')}, z {num(self.z, '.1f')}; "
            + "; ".join(self.reasons)
            + f" [policy {self.policy}]"
        )


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON so a reader sees either the old file or the whole new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, default=str)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
