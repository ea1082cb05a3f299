"""Statistics that say whether two sets of weights grew from one random initialisation.

Two statistics, each with its own null:

- **Unit-pairing margin.** Take the embedding (and unembedding) rows of token strings both
  tokenizers contain and pair each hidden unit of one model with one of the other; a shared
  origin pairs them one-to-one (see `unit_pairing_margin`). It does not change when hidden units
  are permuted or sign-flipped (function-preserving disguises), when tensors are renamed or
  reordered, when tokens are added, or when the architecture is re-labelled, and it compares
  models of different widths. Rejected on the tiny models: the Gram matrix E E^T and the plain
  paired correlation, which two independent initialisations trained on the same data share
  (0.98 and 0.5): both read learned structure, not the initialisation.
- **Sampled-row correlation.** For matrices matched by name, or by shape and position when names
  differ, the Pearson correlation over rows drawn at random (seeded) from the whole matrix, so
  re-randomising a fixed slice (the leading rows) cannot hide it; the median over matrices.

Both sample with a seed the caller draws fresh for each comparison, so an adversary cannot know
in advance which token rows or matrix rows will be read.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Mapping, Sequence

import torch
from scipy.optimize import linear_sum_assignment

MAX_SHARED_TOKENS = 16_384
SAMPLE_ENTRIES = 16_384
MIN_ENTRIES = 1024


def finite(values: torch.Tensor) -> torch.Tensor:
    """float64 with NaN and infinities as 0: a few poisoned entries (an unused token row) must not blind a test."""
    return torch.nan_to_num(values.detach().to(torch.float64), nan=0.0, posinf=0.0, neginf=0.0)


def pearson(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """Pearson correlation of two equally sized tensors, None when either is constant."""
    x = finite(a).reshape(-1)
    y = finite(b).reshape(-1)
    x, y = x - x.mean(), y - y.mean()
    denominator = float(x.norm() * y.norm())
    return float((x @ y) / denominator) if denominator > 0 else None


def shared_token_rows(
    vocab_a: Mapping[str, int] | None, vocab_b: Mapping[str, int] | None, rows_a: int, rows_b: int, seed: int
) -> tuple[list[int], list[int]]:
    """Row ids of up to MAX_SHARED_TOKENS token strings in both vocabularies (a seeded sample).

    Without a vocabulary on one side (a live module), rows are aligned by token id instead.
    """
    if vocab_a is None or vocab_b is None:
        pairs = [(i, i) for i in range(min(rows_a, rows_b))]
    else:
        shared = vocab_a.keys() & vocab_b.keys()
        pairs = sorted((vocab_a[t], vocab_b[t]) for t in shared if vocab_a[t] < rows_a and vocab_b[t] < rows_b)
    if len(pairs) > MAX_SHARED_TOKENS:
        pairs = random.Random(seed).sample(pairs, MAX_SHARED_TOKENS)
    return [a for a, _ in pairs], [b for _, b in pairs]


def unit_pairing_margin(rows_a: torch.Tensor, rows_b: torch.Tensor, seed: int) -> float | None:
    """How distinctly the hidden units of two row sets (same tokens) pair one-to-one, beyond chance.

    Each unit (column) is correlated with every unit of the other side over the shared tokens and
    units are paired by a maximum-weight assignment on |correlation|, so neither a permutation nor a
    sign flip of units hides a shared origin. A unit's margin is its paired |correlation| minus its
    best |correlation| with any other unit: a shared initialisation pairs each unit with exactly one
    (margin near 1), while structure two independently trained models both learn correlates each
    unit with many (margin near 0). The statistic is the median margin minus the median margin with
    the token correspondence shuffled (seeded), which is what chance alone gives.
    """
    a = _standardised_columns(rows_a)
    b = _standardised_columns(rows_b)
    if a is None or b is None or min(a.shape[1], b.shape[1]) < 2:
        return None
    shuffle = torch.randperm(b.shape[0], generator=torch.Generator().manual_seed(seed))
    return _median_margin(a, b) - _median_margin(a, b[shuffle])  # standardising commutes with a row shuffle


def _median_margin(a: torch.Tensor, b: torch.Tensor) -> float:
    strength = (a.T @ b).abs()
    units_a, units_b = linear_sum_assignment(strength.numpy(), maximize=True)
    paired = strength[units_a, units_b]
    others = strength[units_a].clone()
    others[torch.arange(len(units_a)), torch.as_tensor(units_b)] = -1.0
    return float((paired - others.max(dim=1).values).median())


def _standardised_columns(rows: torch.Tensor) -> torch.Tensor | None:
    centred = finite(rows)
    centred = centred - centred.mean(dim=0, keepdim=True)
    norms = centred.norm(dim=0, keepdim=True)
    return centred / norms.clamp_min(1e-12) if bool((norms > 0).any()) else None


def vocabulary_matrices(shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Names of the matrices with the most rows (the embedding and unembedding, whatever they are called).

    Any 2-D tensor within 1% of the largest row count counts, so a resized vocabulary still does.
    """
    matrices = {n: s for n, s in shapes.items() if len(s) == 2}
    if not matrices:
        return []
    most = max(s[0] for s in matrices.values())
    return sorted(n for n, s in matrices.items() if s[0] >= most * 0.99)[:4]


def matched_matrices(
    shapes_a: Mapping[str, tuple[int, ...]], shapes_b: Mapping[str, tuple[int, ...]]
) -> list[tuple[str, str]]:
    """Pairs of same-shaped matrices: by name first, then the rest by shape and position."""
    big_a = {n: s for n, s in shapes_a.items() if math.prod(s) >= MIN_ENTRIES}
    big_b = {n: s for n, s in shapes_b.items() if math.prod(s) >= MIN_ENTRIES}
    pairs = [(n, n) for n in sorted(big_a.keys() & big_b.keys()) if big_a[n] == big_b[n]]
    left_a = [n for n in sorted(big_a) if (n, n) not in pairs]
    left_b = [n for n in sorted(big_b) if (n, n) not in pairs]
    for shape in sorted({big_a[n] for n in left_a}):
        same_a = [n for n in left_a if big_a[n] == shape]
        same_b = [n for n in left_b if big_b[n] == shape]
        pairs.extend(zip(same_a, same_b, strict=False))
    return pairs


def sampled_rows(shape: tuple[int, ...], seed: int) -> list[int]:
    """Seeded row indices spread over the whole matrix, about SAMPLE_ENTRIES entries, in order."""
    per_row = math.prod(shape[1:])
    count = min(shape[0], math.ceil(SAMPLE_ENTRIES / per_row))
    generator = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(shape[0], generator=generator)[:count].tolist())


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None
