"""distill-guard: keep hidden traits from leaking into models trained on model-generated data.

Everything a user receives or names in code is importable from here; submodules are internal.
"""

from distill_guard._version import __version__
from distill_guard.callback import DistillGuard
from distill_guard.drift.assess import DriftReport
from distill_guard.drift.halt_record import (
    HALT_RECORD_NAME,
    LEGACY_QUARANTINE_MARKER_NAME,
    QUARANTINE_MARKER_NAME,
    HaltRecord,
    read_quarantine_marker,
)
from distill_guard.errors import DistillGuardError, PolicyError, ProvenanceDenied, TrainingHalted
from distill_guard.policy.probe_suite import LoadedSuite
from distill_guard.probes.kinds import ProbeScorer, Resumable, WholeModelScorer
from distill_guard.probes.kinds.registry import probe_kind, register_probe_kind
from distill_guard.probes.result import ProbeResult
from distill_guard.provenance.decision import Decision
from distill_guard.provenance.gate import Clearance

__all__ = [
    "HALT_RECORD_NAME",
    "LEGACY_QUARANTINE_MARKER_NAME",
    "QUARANTINE_MARKER_NAME",
    "Clearance",
    "Decision",
    "DistillGuard",
    "DistillGuardError",
    "DriftReport",
    "HaltRecord",
    "LoadedSuite",
    "PolicyError",
    "ProbeResult",
    "ProbeScorer",
    "ProvenanceDenied",
    "Resumable",
    "TrainingHalted",
    "WholeModelScorer",
    "__version__",
    "probe_kind",
    "read_quarantine_marker",
    "register_probe_kind",
]
