"""Trait probes: score a model's leaning towards a trait by log-probability.

Public surface: `prepare_probes(loaded_policy)` and `PreparedProbe.run(model, tokenizer, ...)`,
`load_suite` for suite files, and `ProbeResult`, the contract with the drift module. Imported
lazily, because the policy validator imports `probes.catalog` while the policy package loads.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PreparedProbe": "distill_guard.probes.prepared",
    "prepare_probe": "distill_guard.probes.prepared",
    "prepare_probes": "distill_guard.probes.prepared",
    "ProbeResult": "distill_guard.probes.result",
    "LoadedSuite": "distill_guard.probes.suite",
    "ProbeSuite": "distill_guard.probes.suite",
    "load_suite": "distill_guard.probes.suite",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'distill_guard.probes' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
