"""Is this probe's drift a breach? A pure function of baseline, current result and threshold."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from distill_guard.drift.paired import paired_drift
from distill_guard.policy.schema import Threshold
from distill_guard.probes.result import ProbeResult


@dataclass(frozen=True)
class DriftReport:
    """One probe evaluation compared with its baseline, with the reasons it breached (if it did)."""

    probe: str
    trait: str | None
    step: int
    baseline: float
    score: float
    drift: float
    stderr: float
    z: float
    breached: bool
    reasons: tuple[str, ...]
    limit: float | None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in data.items()} | {
            "non_finite": [k for k, v in data.items() if isinstance(v, float) and not math.isfinite(v)]
        }

    def __str__(self) -> str:
        head = f"{self.probe} at step {self.step}: baseline {self.baseline:.4f} -> {self.score:.4f}"
        stats = f"drift {self.drift:+.4f} (se {self.stderr:.4f}, z {self.z:.1f})"
        verdict = "BREACH: " + "; ".join(self.reasons) if self.breached else "within threshold"
        return f"{head}, {stats}, {verdict}"


def _limit_for_metrics(baseline: float, threshold: Threshold) -> float | None:
    """The score at which the tightest configured limit is crossed, for the threshold gauge."""
    ceilings = []
    if threshold.max_increase is not None:
        ceilings.append(baseline + threshold.max_increase)
    if threshold.max_relative_increase is not None:
        ceilings.append(baseline + abs(baseline) * threshold.max_relative_increase)
    if threshold.max_score is not None:
        ceilings.append(threshold.max_score)
    return min(ceilings) if ceilings else None


def assess(
    baseline: ProbeResult,
    current: ProbeResult,
    threshold: Threshold | None,
    *,
    step: int,
    noise_floor: float = 0.0,
) -> DriftReport:
    """Compare `current` with `baseline` under `threshold`.

    A limit is breached only when the drift is also significant (z >= min_z), so noise never
    trips a halt. A NaN or infinite score is always a breach: a broken probe must never pass.
    """
    paired = paired_drift(baseline, current, noise_floor=noise_floor)
    base, score = baseline.score, current.score
    reasons: list[str] = []
    if not (math.isfinite(base) and math.isfinite(score) and math.isfinite(paired.mean)):
        reasons.append("probe produced a non-finite score (NaN or inf)")
    elif threshold is not None:
        significant = paired.z >= threshold.min_z
        sig_text = f"z {paired.z:.1f} >= {threshold.min_z:g}"
        if threshold.max_increase is not None and paired.mean > threshold.max_increase and significant:
            reasons.append(f"increase {paired.mean:.4f} > max_increase {threshold.max_increase:g} ({sig_text})")
        if threshold.max_relative_increase is not None and significant:
            relative = paired.mean / abs(base) if base != 0 else math.inf
            if relative > threshold.max_relative_increase:
                reasons.append(
                    f"relative increase {relative:.1%} > max_relative_increase "
                    f"{threshold.max_relative_increase:.1%} ({sig_text})"
                )
        if threshold.max_score is not None and score > threshold.max_score:
            margin_z = (score - threshold.max_score) / current.stderr if current.stderr > 0 else math.inf
            if margin_z >= threshold.min_z:
                reasons.append(f"score {score:.4f} > max_score {threshold.max_score:g} (z {margin_z:.1f})")
    limit = _limit_for_metrics(base, threshold) if threshold is not None and math.isfinite(base) else None
    return DriftReport(
        probe=current.suite,
        trait=current.trait,
        step=step,
        baseline=base,
        score=score,
        drift=paired.mean,
        stderr=paired.stderr,
        z=paired.z,
        breached=bool(reasons),
        reasons=tuple(reasons),
        limit=limit,
    )
