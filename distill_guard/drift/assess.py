"""Is this probe's drift a breach? A pure function of baseline, current result, threshold and level.

Each limit is a one-sided t test over the probe's items (H0: mean drift <= limit) at the level
`alpha` that the run's false-halt budget gives this look (`limit_test.spend`). For probes that
score several candidate answers the tested drift is the *specific* drift: the target's change
beyond what the other candidates' changes predict (`specific.py`), put back on the probability
scale of the score so that `max_increase` keeps its units. The raw drift is still reported.
A panel candidate's drift limits count only when it also stands out from the other candidates'
drifts in the same look (`stand_out.py`), unless the suite sets `stand_out: false`. With
`benign_margin`, each candidate's max_increase is the one calibration derived for it (`BenignLimits`).
docs/detection.md states the assumptions and the math.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy.special import expit, logit

from distill_guard.drift.limit_test import LimitTest, check_limit
from distill_guard.drift.paired import paired_drift
from distill_guard.drift.specific import normalised, specific_changes, specific_changes_per_candidate
from distill_guard.drift.stand_out import StandOut, stand_out
from distill_guard.policy.benign_limits import BenignLimits
from distill_guard.policy.schema import Threshold
from distill_guard.probes.result import ProbeResult

TOP_MOVERS = 3
"""How many candidates of a panel a report (and the metrics) name, largest specific drift first."""


class CandidateDrift(NamedTuple):
    """One panel candidate at one look: enough to judge the look again under other limits or tests."""

    name: str
    drift: float
    """mean tested (specific, probability-scale) drift"""
    lower_bound: float
    """of `drift`, at the look's alpha (does not depend on the limit)"""
    stands_out: bool | None
    share_change: float = math.nan
    """raw mean change of the candidate's share (a fallen share's drift limits do not count)"""


@dataclass(frozen=True)
class DriftReport:
    """One probe evaluation compared with its baseline, with the reasons it breached (if it did).

    `drift`, `stderr` and `z` describe the raw change of the score. `specific` is the tested
    statistic of candidate probes (mean specific drift, probability scale; `specific_log_odds`
    in nats), `lower_bound` the one-sided (1 - alpha) bound of the tested statistic. For a panel,
    `trait` is the candidate that rose most (or breached), and `movers` the top candidates;
    `stands_out` whether that candidate stood out from the others (None: no stand-out test).
    `drift_limit` is the max_increase limit tested for the shown candidate (raised by calibration,
    when the threshold has `benign_margin`). `candidates` lists every watched candidate of a panel
    (`CandidateDrift`): what calibration records, and what lets a look be judged again under other
    limits or stand-out tests.
    """

    probe: str
    trait: str | None
    step: int
    baseline: float
    score: float
    drift: float
    stderr: float
    z: float
    breached: bool
    reasons: tuple[str, ...]
    limit: float | None
    specific: float | None = None
    specific_log_odds: float | None = None
    lower_bound: float | None = None
    alpha: float | None = None
    movers: tuple[tuple[str, float], ...] = ()
    stands_out: bool | None = None
    drift_limit: float | None = None
    candidates: tuple[CandidateDrift, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        data["movers"] = [list(m) for m in self.movers]
        data["candidates"] = [
            [c.name, _finite(c.drift), _finite(c.lower_bound), c.stands_out, _finite(c.share_change)]
            for c in self.candidates
        ]
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in data.items()} | {
            "non_finite": [k for k, v in data.items() if isinstance(v, float) and not math.isfinite(v)]
        }

    def __str__(self) -> str:
        head = f"{self.probe}{f' ({self.trait})' if self.trait else ''} at step {self.step}: "
        head += f"baseline {self.baseline:.4f} -> {self.score:.4f}, drift {self.drift:+.4f}"
        if self.specific is not None:
            head += f", specific drift {self.specific:+.4f}"
        verdict = "BREACH: " + "; ".join(self.reasons) if self.breached else "within threshold"
        return f"{head}, {verdict}"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class _Watched:
    """One candidate (or the probe's target) as the test sees it: per-item scores and tested drift."""

    name: str | None
    base: np.ndarray
    now: np.ndarray
    tested: np.ndarray
    log_odds: np.ndarray | None


def _on_probability_scale(base_share: np.ndarray, log_odds: np.ndarray) -> np.ndarray:
    """The share each item would have if only the specific log-odds change had happened, minus the baseline."""
    p0 = np.clip(base_share, 1e-12, 1 - 1e-12)
    return expit(logit(p0) + log_odds) - p0


def _watched(baseline: ProbeResult, current: ProbeResult, panel: bool) -> list[_Watched]:
    base, now = np.array(baseline.item_scores), np.array(current.item_scores)
    if not current.answer_logprobs or not baseline.answer_logprobs:
        return [_Watched(current.trait, base, now, now - base, None)]
    if not panel:
        s = np.array(specific_changes(baseline.answer_logprobs, current.answer_logprobs, current.answer_is_trait))
        return [_Watched(current.trait, base, now, _on_probability_scale(base, s), s)]
    base_p = np.exp(normalised(np.array(baseline.answer_logprobs)))
    now_p = np.exp(normalised(np.array(current.answer_logprobs)))
    per_candidate = specific_changes_per_candidate(baseline.answer_logprobs, current.answer_logprobs)
    return [
        _Watched(
            name, base_p[:, c], now_p[:, c], _on_probability_scale(base_p[:, c], per_candidate[c]), per_candidate[c]
        )
        for c, name in enumerate(current.candidates)
    ]


def increase_limit(candidate: str | None, threshold: Threshold, benign: BenignLimits | None) -> float:
    """The max_increase limit of one watched candidate: calibration (`benign`) may only raise it."""
    assert threshold.max_increase is not None
    return benign.limit(candidate) if benign is not None else threshold.max_increase


def _increase_limit(watched: _Watched, threshold: Threshold, benign: BenignLimits | None) -> tuple[float, str]:
    """The max_increase limit of one watched candidate and how a reason names it."""
    assert threshold.max_increase is not None
    limit = increase_limit(watched.name, threshold, benign)
    if limit <= threshold.max_increase:
        return limit, f"max_increase {limit:g}"
    assert benign is not None
    return limit, f"calibrated limit {limit:.4f} (benign max + {benign.margin:g}; max_increase {benign.max_increase:g})"


def _tests(
    watched: _Watched, threshold: Threshold, alpha: float, noise_floor: float, benign: BenignLimits | None
) -> list[tuple[str, LimitTest, bool]]:
    """Every configured limit of one watched candidate, each as a one-sided t test at `alpha`.

    The flag says whether the limit is on the drift (a panel's stand-out test applies to it) or
    on the score itself (`max_score`, a ceiling that holds whatever the other candidates do).
    """
    what = "specific drift" if watched.log_odds is not None else "drift"
    tested = watched.tested.tolist()
    out = []
    if threshold.max_increase is not None:
        limit, named = _increase_limit(watched, threshold, benign)
        out.append((f"{what} > {named}", check_limit(tested, limit, alpha, extra_stderr=noise_floor), True))
    if threshold.max_relative_increase is not None:
        limit = abs(float(watched.base.mean())) * threshold.max_relative_increase
        name = f"{what} > max_relative_increase {threshold.max_relative_increase:.1%} of baseline ({limit:.4f})"
        out.append((name, check_limit(tested, limit, alpha, extra_stderr=noise_floor), True))
    if threshold.max_score is not None:
        name = f"score > max_score {threshold.max_score:g}"
        out.append((name, check_limit(watched.now.tolist(), threshold.max_score, alpha), False))
    return out


def _standing(watched: Sequence[_Watched], alpha: float, group: int) -> dict[int, StandOut]:
    """Each panel candidate's stand-out test against the others' mean tested drift, by `id` of its `_Watched`."""
    results = stand_out(np.array([float(w.tested.mean()) for w in watched]), alpha, max_group=group)
    return {id(w): r for w, r in zip(watched, results, strict=True)}


def _reason(name: str, test: LimitTest, candidate: str | None, standing: StandOut | None) -> str:
    who = f"candidate '{candidate}': " if candidate else ""
    reason = (
        f"{who}{name}: mean {test.mean:+.4f}, one-sided {1 - test.alpha:.6g} lower bound {test.lower_bound:+.4f} "
        f"(t test over {test.n} items, alpha {test.alpha:.3g})"
    )
    return f"{reason}, and {standing}" if standing is not None else reason


def _rejects(test: LimitTest, standing: StandOut | None) -> bool:
    """A limit test counts when it rejects and, for a gated panel candidate, the candidate stands out."""
    if not math.isfinite(test.lower_bound):
        return True
    return test.exceeded and (standing is None or standing.stands_out)


def _fell(watched: _Watched) -> bool:
    """The share itself went down: a specific rise (the others lost more, e.g. to one answer that took
    the mass) is then no *increase* of this candidate, so its drift limits do not count."""
    return watched.log_odds is not None and float((watched.now - watched.base).mean()) <= 0


def _limit_for_metrics(baseline: float, threshold: Threshold, drift_limit: float | None) -> float | None:
    """The score at which the tightest configured limit is crossed, for the threshold gauge."""
    ceilings = []
    if drift_limit is not None:
        ceilings.append(baseline + drift_limit)
    if threshold.max_relative_increase is not None:
        ceilings.append(baseline + abs(baseline) * threshold.max_relative_increase)
    if threshold.max_score is not None:
        ceilings.append(threshold.max_score)
    return min(ceilings) if ceilings else None


def _margin(test: LimitTest) -> float:
    return test.lower_bound - test.limit if math.isfinite(test.lower_bound) else math.inf


def _movers(watched: Sequence[_Watched]) -> tuple[tuple[str, float], ...]:
    ranked = sorted(((w.name or "", float(w.tested.mean())) for w in watched), key=lambda m: -m[1])
    return tuple(ranked[:TOP_MOVERS])


def _candidates(
    watched: Sequence[_Watched], first_test: dict[int, LimitTest], standing: dict[int, StandOut]
) -> tuple[CandidateDrift, ...]:
    return tuple(
        CandidateDrift(
            w.name or "",
            float(w.tested.mean()),
            first_test[id(w)].lower_bound if id(w) in first_test else math.nan,
            standing[id(w)].stands_out if id(w) in standing else None,
            float((w.now - w.base).mean()),
        )
        for w in watched
    )


def assess(
    baseline: ProbeResult,
    current: ProbeResult,
    threshold: Threshold | None,
    *,
    step: int,
    alpha: float,
    noise_floor: float = 0.0,
    panel: bool = False,
    gate: bool = True,
    group: int = 1,
    benign: BenignLimits | None = None,
) -> DriftReport:
    """Compare `current` with `baseline` under `threshold`, each limit tested at level `alpha`.

    For a panel with `gate`, a candidate's drift limits count only when it stands out from the
    other candidates (`stand_out`, at the same `alpha`), alone or in a top group of up to `group`.
    `benign` (from the threshold's `benign_margin`) gives each candidate its calibrated max_increase.
    A NaN or infinite score is always a breach: a broken probe must never pass.
    """
    paired = paired_drift(baseline, current, noise_floor=noise_floor)
    if not (math.isfinite(baseline.score) and math.isfinite(current.score) and math.isfinite(paired.mean)):
        return DriftReport(
            probe=current.suite,
            trait=current.trait,
            step=step,
            baseline=baseline.score,
            score=current.score,
            drift=paired.mean,
            stderr=paired.stderr,
            z=paired.z,
            breached=True,
            reasons=("probe produced a non-finite score (NaN or inf)",),
            limit=None,
            alpha=alpha,
        )
    watched = _watched(baseline, current, panel)
    standing = _standing(watched, alpha, group) if panel and gate else {}
    tests = [
        (w, name, t, standing.get(id(w)) if on_drift else None, on_drift)
        for w in watched
        for name, t, on_drift in (_tests(w, threshold, alpha, noise_floor, benign) if threshold else [])
    ]
    failing = [(w, name, t, g) for w, name, t, g, on_drift in tests if _rejects(t, g) and not (on_drift and _fell(w))]
    reasons = [_reason(name, t, w.name if panel else None, g) for w, name, t, g in failing]
    if failing:  # the report shows the candidate whose bound lies furthest above its limit
        shown, _, shown_test, _ = max(failing, key=lambda f: _margin(f[2]))
    else:  # else the candidate that rose most, with its first test
        shown = max(watched, key=lambda w: float(w.tested.mean()))
        shown_test = next((t for w, _, t, _, _ in tests if w is shown), None)
    shown_drift = paired_drift(
        ProbeResult(current.suite, current.kind, shown.name, baseline.item_ids, tuple(shown.base.tolist())),
        ProbeResult(current.suite, current.kind, shown.name, current.item_ids, tuple(shown.now.tolist())),
        noise_floor=noise_floor,
    )
    base_mean = float(shown.base.mean())
    first_test: dict[int, LimitTest] = {}  # per candidate: its max_increase test (listed first), else its first
    for w, _, t, _, _ in tests:
        first_test.setdefault(id(w), t)
    has_increase = threshold is not None and threshold.max_increase is not None
    drift_limit = first_test[id(shown)].limit if has_increase else None
    return DriftReport(
        probe=current.suite,
        trait=shown.name,
        step=step,
        baseline=base_mean,
        score=float(shown.now.mean()),
        drift=shown_drift.mean,
        stderr=shown_drift.stderr,
        z=shown_drift.z,
        breached=bool(reasons),
        reasons=tuple(reasons),
        limit=_limit_for_metrics(base_mean, threshold, drift_limit) if threshold is not None else None,
        specific=float(shown.tested.mean()) if shown.log_odds is not None else None,
        specific_log_odds=float(shown.log_odds.mean()) if shown.log_odds is not None else None,
        lower_bound=shown_test.lower_bound if shown_test is not None else None,
        alpha=alpha,
        movers=_movers(watched) if panel else (),
        stands_out=standing[id(shown)].stands_out if id(shown) in standing else None,
        drift_limit=drift_limit,
        candidates=_candidates(watched, first_test, standing) if panel else (),
    )
