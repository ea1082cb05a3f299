"""distill-guard: keep hidden traits from leaking into models trained on model-generated data.

Everything a user receives or names in code is importable from here; submodules are internal.
Names whose modules need torch or transformers (or importlib.metadata, for `__version__`) load on
first use (PEP 562), so `import distill_guard` and the review commands (policy, manifest, check)
start in a fraction of a second.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from distill_guard.errors import DistillGuardError, PolicyError, ProvenanceDenied, TrainingHalted
from distill_guard.extras import missing_extra_message

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from distill_guard._version import __version__
    from distill_guard.callback import DistillGuard
    from distill_guard.drift.assess import DriftReport
    from distill_guard.drift.halt_record import HALT_RECORD_NAME, HaltRecord, read_quarantine_marker
    from distill_guard.policy.probe_suite import LoadedSuite
    from distill_guard.probes.kinds import ProbeScorer, Resumable, WholeModelScorer
    from distill_guard.probes.kinds.registry import probe_kind, register_probe_kind
    from distill_guard.probes.result import ProbeResult
    from distill_guard.provenance.decision import Decision
    from distill_guard.provenance.gate import Clearance
    from distill_guard.quarantine import LEGACY_QUARANTINE_MARKER_NAME, QUARANTINE_MARKER_NAME

_LAZY_NAMES: dict[str, str] = {
    "__version__": "distill_guard._version",  # importlib.metadata: a few dozen ms no review command needs
    "DistillGuard": "distill_guard.callback",
    "DriftReport": "distill_guard.drift.assess",
    "HALT_RECORD_NAME": "distill_guard.drift.halt_record",
    "LEGACY_QUARANTINE_MARKER_NAME": "distill_guard.quarantine",
    "QUARANTINE_MARKER_NAME": "distill_guard.quarantine",
    "HaltRecord": "distill_guard.drift.halt_record",
    "read_quarantine_marker": "distill_guard.drift.halt_record",
    "LoadedSuite": "distill_guard.policy.probe_suite",
    "ProbeScorer": "distill_guard.probes.kinds",
    "Resumable": "distill_guard.probes.kinds",
    "WholeModelScorer": "distill_guard.probes.kinds",
    "probe_kind": "distill_guard.probes.kinds.registry",
    "register_probe_kind": "distill_guard.probes.kinds.registry",
    "ProbeResult": "distill_guard.probes.result",
    "Decision": "distill_guard.provenance.decision",
    "Clearance": "distill_guard.provenance.gate",
}

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


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use and keep the value, so later lookups are plain."""
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'distill_guard' has no attribute {name!r}")
    try:
        value = getattr(import_module(module), name)
    except ModuleNotFoundError as exc:  # a core install without the training stack
        message = missing_extra_message(exc, f"distill_guard.{name}")
        if message is None:
            raise
        raise ModuleNotFoundError(message, name=exc.name) from exc
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
