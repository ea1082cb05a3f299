"""A weight matrix's norm profile: what stays put when hidden units are permuted, noised or rounded.

Permuting a model's hidden units consistently (its function unchanged) reorders the rows and
columns of every matrix, and renaming or reordering tensors hides which matrix is which. The
sorted row norms and the sorted column norms of a matrix do not change under either, nor under
sign flips of units; noise or float16/bfloat16 rounding moves each norm by about its relative size
over the square root of the row length. The profile keeps PROFILE_POINTS quantiles of each, so
one entry is the same size for a 64-wide toy and a 49,152-row embedding, and it costs one pass over
the matrix (singular values would also survive permutations, but take about ten times as long on
SmolLM2-135M: `python benchmarks/quarantine_fingerprint.py`).

The gate's weight test (weight_statistics.py) answers another question, whether two models share
an initialisation, by pairing units of both models; a registry entry has to be matched without the
halted model's weights, so it keeps this summary instead and reuses only `finite`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from distill_guard.provenance.weight_statistics import finite

PROFILE_POINTS = 16
TOLERANCE = 2e-3
"""Largest relative L2 difference of either profile for two matrices to match. Measured by
`benchmarks/quarantine_fingerprint.py` on the tiny model halted after 2 steps at lr 1e-3: the
disguised halted copy (units permuted, 1e-3 noise, bfloat16) is at most 4.2e-4 from its entry, the
base it was fine-tuned from at least 5.3e-3 (median 6.6e-3) over the matrices the entry keeps; 2e-3
sits about 5x above the first and 2.6x below the second."""


@dataclass(frozen=True)
class NormProfile:
    """Quantiles of a matrix's row norms and column norms, with its shape."""

    shape: tuple[int, ...]
    row_norms: tuple[float, ...]
    column_norms: tuple[float, ...]

    def transposed(self) -> NormProfile:
        """The profile of the transposed matrix: the same linear map stored the other way round (as
        GPT-2's Conv1D stores it), which a reader only has to transpose back."""
        return NormProfile(tuple(reversed(self.shape)), self.column_norms, self.row_norms)

    def to_json(self) -> dict[str, object]:
        return {
            "shape": list(self.shape),
            "row_norms": [float(f"{v:.7g}") for v in self.row_norms],
            "column_norms": [float(f"{v:.7g}") for v in self.column_norms],
        }


class ProfileIndex:
    """A model's profiles stacked by shape, so that one profile meets every same-shaped matrix in one
    tensor operation: a registry of a hundred SmolLM2-sized entries is checked in a fraction of a
    second instead of 18 s of pairwise comparisons (`python benchmarks/quarantine_fingerprint.py`)."""

    def __init__(self, profiles: Iterable[NormProfile]) -> None:
        groups: dict[tuple[int, ...], list[NormProfile]] = {}
        for profile in profiles:
            groups.setdefault(profile.shape, []).append(profile)
        self._stacks = {
            shape: torch.tensor([p.row_norms + p.column_norms for p in group], dtype=torch.float64)
            for shape, group in groups.items()
            if all(len(p.row_norms) == len(p.column_norms) == PROFILE_POINTS for p in group)
        }

    def closest(self, profile: NormProfile) -> float:
        """The distance to the closest indexed profile in either orientation (the larger relative L2
        difference of row and of column quantiles); infinite when no indexed matrix has its shape."""
        candidates = [profile, profile.transposed()] if len(profile.shape) == 2 else [profile]
        return min((self._distance(p) for p in candidates), default=float("inf"))

    def _distance(self, profile: NormProfile) -> float:
        stack = self._stacks.get(profile.shape)
        mine = torch.tensor(profile.row_norms + profile.column_norms, dtype=torch.float64)
        if stack is None or mine.shape[0] != 2 * PROFILE_POINTS:
            return float("inf")
        rows, columns = mine[:PROFILE_POINTS], mine[PROFILE_POINTS:]
        scale = torch.stack([rows.norm(), columns.norm()])
        if not bool((scale > 0).all()):
            return float("inf")
        difference = (stack - mine).reshape(-1, 2, PROFILE_POINTS).norm(dim=2) / scale
        return float(difference.max(dim=1).values.min())

    def matches(self, profile: NormProfile) -> bool:
        return self.closest(profile) <= TOLERANCE


def norm_profile(tensor: torch.Tensor) -> NormProfile | None:
    """The profile of a 2-D (or flattened N-D) tensor; None for an all-zero one, which says nothing."""
    matrix = finite(tensor).reshape(tensor.shape[0], -1)
    rows, columns = matrix.norm(dim=1), matrix.norm(dim=0)
    if not bool(rows.any()):
        return None
    points = (torch.arange(PROFILE_POINTS, dtype=torch.float64) + 0.5) / PROFILE_POINTS
    return NormProfile(
        tuple(tensor.shape),
        tuple(torch.quantile(rows, points).tolist()),
        tuple(torch.quantile(columns, points).tolist()),
    )
