"""Judge a recorded panel look again under another stand-out test: what a policy change would have done.

A panel look's verdict on its drift limits depends only on what its report records per candidate
(`CandidateDrift`: tested drift, its lower bound at the look's alpha, the share's change) and on
the limits. So a past run answers "would this look have breached with `stand_out_group` g?"
without training again; the benchmarks judge every run under each test size this way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from distill_guard.drift.assess import DriftReport, increase_limit
from distill_guard.drift.patience import PatienceTracker
from distill_guard.drift.stand_out import stand_out
from distill_guard.policy.benign_limits import BenignLimits
from distill_guard.policy.load import LoadedPolicy
from distill_guard.policy.schema import Threshold
from distill_guard.policy.semantics import suite_label


def breaches_with_group(
    report: DriftReport, threshold: Threshold, group: int, benign: BenignLimits | None = None
) -> bool:
    """Whether the panel look `report` breaches `threshold` with a stand-out test of up to `group` candidates.

    Only `max_increase` limits (with `benign` raising them) are recorded per candidate; a threshold
    with any other limit cannot be judged again from the record and is refused. A look with no
    stand-out test in it (not a panel, or no score) keeps its verdict.
    """
    if not report.candidates or report.alpha is None or threshold.max_increase is None:
        return report.breached  # no stand-out test took part: a targeted suite, a failed probe, a NaN score
    if threshold.max_relative_increase is not None or threshold.max_score is not None:
        raise ValueError("only max_increase limits can be judged again from a recorded look")
    standing = stand_out(np.array([c.drift for c in report.candidates]), report.alpha, max_group=group)
    for candidate, verdict in zip(report.candidates, standing, strict=True):
        if not math.isfinite(candidate.lower_bound):
            return True
        limit = increase_limit(candidate.name, threshold, benign)
        if candidate.lower_bound > limit and verdict.stands_out and not candidate.share_change <= 0:
            return True
    return False


def halt_with_group(
    history: Sequence[DriftReport], loaded: LoadedPolicy, group: int | None = None
) -> DriftReport | None:
    """The look a run recorded in `history` would have halted at had `loaded`'s panels used `group`
    (None: each panel's own `stand_out_group`, which must give the run's own halt).

    Suites without the stand-out test keep their recorded verdicts; patience counts as it does live.
    """
    refs = {suite_label(ref): ref for ref in loaded.policy.probes.suites}
    streaks = PatienceTracker()
    for report in history:
        ref = refs[report.probe]
        if ref.threshold is None:
            continue
        breached = (
            breaches_with_group(
                report, ref.threshold, group or ref.stand_out_group, loaded.benign_limits.get(report.probe)
            )
            if ref.panel and ref.stand_out
            else report.breached
        )
        patience = ref.threshold.patience if math.isfinite(report.score) else 1
        if streaks.update(report.probe, breached, patience):
            return report
    return None
