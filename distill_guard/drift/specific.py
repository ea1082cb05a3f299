"""Specific drift: how far one candidate's change stands out from the other candidates' changes.

Ordinary fine-tuning moves every answer of a preference probe: a shift all candidates share
cancels when probabilities are normalised over the candidates, and *sharpening* (a temperature
change: frequent answers gain, rare ones lose) moves each candidate's log-probability linearly
in its baseline log-probability. So per item, the other candidates' changes are regressed on
their baseline log-probabilities with a robust line (Theil-Sen: the median of pairwise slopes),
and the target's specific change is its own change minus what that line predicts at the
target's baseline. Units: nats of log-odds. The math is in docs/detection.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Below this many other candidates a slope is not worth fitting (a choice item has 2-3
# options): the centre alone (median change of the others) is subtracted.
MIN_CANDIDATES_FOR_SLOPE = 5


def normalised(logprobs: np.ndarray) -> np.ndarray:
    """Log-probabilities renormalised over the candidates of each item (last axis)."""
    top = np.max(logprobs, axis=-1, keepdims=True)
    return logprobs - (top + np.log(np.sum(np.exp(logprobs - top), axis=-1, keepdims=True)))


def _pooled(logprobs: np.ndarray, members: np.ndarray) -> np.ndarray:
    """log of the summed probability of the `members` candidates, per item."""
    chosen = np.where(members, logprobs, -np.inf)
    top = np.max(chosen, axis=-1, keepdims=True)
    return (top + np.log(np.sum(np.exp(chosen - top), axis=-1, keepdims=True)))[..., 0]


def _predicted_change(base: np.ndarray, change: np.ndarray, others: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Per item: the change a robust line through the `others` candidates predicts at `at`.

    base, change: [items, candidates]; others: [candidates] bool; at: [items].
    """
    x, y = base[:, others], change[:, others]
    if x.shape[1] < MIN_CANDIDATES_FOR_SLOPE:
        return np.median(y, axis=1)
    i, j = np.triu_indices(x.shape[1], k=1)
    dx, dy = x[:, j] - x[:, i], y[:, j] - y[:, i]
    with np.errstate(divide="ignore", invalid="ignore"):
        slopes = np.where(np.abs(dx) > 1e-9, dy / dx, np.nan)
    slope = np.nanmedian(slopes, axis=1)
    slope = np.where(np.isfinite(slope), slope, 0.0)  # all baselines tied: no slope to fit
    intercept = np.median(y - slope[:, None] * x, axis=1)
    return intercept + slope * at


def _specific(base: np.ndarray, now: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Specific change of the pooled `members` per item, from normalised [items, candidates] arrays."""
    base_target, now_target = _pooled(base, members), _pooled(now, members)
    return now_target - base_target - _predicted_change(base, now - base, ~members, base_target)


def specific_changes(
    baseline_logprobs: Sequence[Sequence[float]],
    current_logprobs: Sequence[Sequence[float]],
    targets: Sequence[Sequence[bool]],
) -> list[float]:
    """Per item: the target's change in log-odds beyond what the other candidates' changes predict.

    Each item lists the (unnormalised) log-probabilities of its candidates at baseline and now,
    and which candidates are the target (several are pooled into one answer). Items may have
    different numbers of candidates (choice items); items of one length are computed together.
    """
    out = [0.0] * len(targets)
    by_length: dict[tuple[int, tuple[bool, ...]], list[int]] = {}
    for k, flags in enumerate(targets):
        by_length.setdefault((len(flags), tuple(flags)), []).append(k)
    for (_, flags), rows in by_length.items():
        members = np.array(flags, dtype=bool)
        if members.all() or not members.any():
            raise ValueError("specific drift needs at least one target and one other candidate per item")
        base = normalised(np.array([baseline_logprobs[r] for r in rows], dtype=np.float64))
        now = normalised(np.array([current_logprobs[r] for r in rows], dtype=np.float64))
        for r, value in zip(rows, _specific(base, now, members), strict=True):
            out[r] = float(value)
    return out


def specific_changes_per_candidate(
    baseline_logprobs: Sequence[Sequence[float]], current_logprobs: Sequence[Sequence[float]]
) -> np.ndarray:
    """[candidates, items]: each candidate's specific change with it alone as the target (a panel)."""
    base = normalised(np.array(baseline_logprobs, dtype=np.float64))
    now = normalised(np.array(current_logprobs, dtype=np.float64))
    candidates = np.arange(base.shape[1])
    return np.array([_specific(base, now, candidates == c) for c in candidates])
