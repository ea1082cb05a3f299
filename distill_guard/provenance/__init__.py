"""The provenance gate: decide on where training data came from, before any optimizer step.

Public surface: `ProvenanceGate` (used by the callback), `Clearance`, `Decision`, and the
manifest helpers the CLI uses.
"""

from distill_guard.provenance.decision import Decision
from distill_guard.provenance.gate import Clearance, ProvenanceGate
from distill_guard.provenance.manifest import DatasetProvenance, load_manifest

__all__ = ["Clearance", "DatasetProvenance", "Decision", "ProvenanceGate", "load_manifest"]
