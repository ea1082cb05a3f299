"""A probe evaluation (result + drift report) with chosen numbers, for tests of what gets exported."""

from __future__ import annotations

from distill_guard import DriftReport, ProbeResult


def evaluation(
    probe: str = "animal-preference",
    trait: str | None = "owl",
    *,
    score: float,
    baseline: float,
    drift: float,
    zscore: float,
    threshold: float | None,
    duration_seconds: float = 0.8,
    kind: str = "preference",
) -> tuple[ProbeResult, DriftReport]:
    """One-item result scoring `score` and the report comparing it with `baseline` (limit `threshold`)."""
    is_probability = kind in ("preference", "choice")
    result = ProbeResult(
        probe, kind, trait, ("item-0",), (score,), is_probability=is_probability, duration_seconds=duration_seconds
    )
    report = DriftReport(probe, trait, 1, baseline, score, drift, 0.0, zscore, False, (), threshold)
    return result, report
