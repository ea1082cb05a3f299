"""`python`: a user's own probe function, held to the same result contract as the built-in kinds.

Signature: ``fn(model, tokenizer, *, target: str | None) -> list[float] | dict[str, float]``.
A list is numbered item-0, item-1, ...; a dict maps stable item ids to scores. Return the same
items on every call, so drift is a paired difference. The function receives the model in eval
mode under ``torch.no_grad()``; the guard restores mode and RNG afterwards. In a distributed run it
is called on every rank (so it may run forward passes under ZeRO-3/FSDP), and rank 0's scores count.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from distill_guard.errors import DistillGuardError
from distill_guard.policy.probe_suite import LoadedSuite
from distill_guard.probes.suite_sources import PythonProbe, resolve_function


class PythonScorer:
    """A `WholeModelScorer` around a probe function; other kinds may reuse it under their own name."""

    def __init__(
        self, function: PythonProbe, reference: str, target: str | None, is_probability: bool, *, kind: str = "python"
    ) -> None:
        self.kind = kind
        self.function = function
        self.reference = reference
        self.trait = target
        self.is_probability = is_probability
        self._ids: list[str] | None = None

    def score_whole_model(self, model: nn.Module, tokenizer: Any) -> tuple[list[str], list[float]]:
        """Call the user's function and check what it returned."""
        ids, scores = self._check(self.function(model, tokenizer, target=self.trait))
        if self._ids is not None and ids != self._ids:
            raise DistillGuardError(f"python probe '{self.reference}' returned different items than on its first run")
        self._ids = ids
        return ids, scores

    def _check(self, returned: object) -> tuple[list[str], list[float]]:
        if isinstance(returned, dict):
            ids, values = [str(k) for k in returned], list(returned.values())
        elif isinstance(returned, list | tuple):
            ids, values = [f"item-{i}" for i in range(len(returned))], list(returned)
        else:
            raise DistillGuardError(
                f"python probe '{self.reference}' returned {type(returned).__name__}; expected a list or dict of floats"
            )
        if not values:
            raise DistillGuardError(f"python probe '{self.reference}' returned no scores")
        try:
            scores = [float(v) for v in values]
        except (TypeError, ValueError):
            raise DistillGuardError(f"python probe '{self.reference}' returned a score that is not a number") from None
        if not all(math.isfinite(s) for s in scores):
            raise DistillGuardError(f"python probe '{self.reference}' returned a NaN or infinite score")
        if self.is_probability and not all(0.0 <= s <= 1.0 for s in scores):
            raise DistillGuardError(
                f"python probe '{self.reference}' declares probabilities but returned a score outside [0, 1]"
            )
        return ids, scores


def python_from_suite(suite: LoadedSuite, target: str | None) -> PythonScorer:
    """Import the suite's `module:function` (a module beside the suite file first)."""
    spec = suite.spec
    function = resolve_function(spec.function, suite_dir=suite.path.parent)
    return PythonScorer(function, spec.function, target or spec.target, spec.is_probability)
