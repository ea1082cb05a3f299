"""Turn probe scores into decisions: paired drift against the baseline, thresholds, patience, halt records."""

from distill_guard.drift.assess import DriftReport, assess
from distill_guard.drift.patience import PatienceTracker
from distill_guard.drift.record import HaltRecord

__all__ = ["DriftReport", "HaltRecord", "PatienceTracker", "assess"]
