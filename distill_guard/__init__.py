"""distill-guard: keep hidden traits from leaking into models trained on model-generated data."""

from distill_guard.callback import DistillGuard
from distill_guard.errors import DistillGuardError, PolicyError, ProvenanceDenied, TrainingHalted

__all__ = ["DistillGuard", "DistillGuardError", "PolicyError", "ProvenanceDenied", "TrainingHalted"]
__version__ = "0.1.0"
