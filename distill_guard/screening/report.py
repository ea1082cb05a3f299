"""What a screen returns: per probe, the predicted first-order change against its null, and a verdict."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ScreenSettings:
    """The planned run the prediction is for, and how the screen samples it.

    `minibatches` (M) minibatches of `batch_size` rows give the mean gradient and its standard
    error; `steps` and `learning_rate` scale the per-step prediction to the run; `alpha` is the
    one-sided level of the z test per probe (Bonferroni over a panel's candidates).
    `reference_filter` names the filter the data was produced with (`screening/reference_filter.py`);
    each reference row takes the first of `reference_draws` self-samples that passes it, and the
    screen refuses when fewer than `min_reference_share` of the reference rows got one.
    `canary_steps` > 0 also trains the canary (`screening/canary.py`) that many optimizer steps,
    against `canary_references` copies trained on independent draws of the student's own samples.
    """

    minibatches: int = 16
    batch_size: int = 8
    learning_rate: float = 1e-4
    steps: int = 100
    alpha: float = 0.01
    seed: int = 0
    adam_epsilon: float = 1e-8
    reference_filter: str = "auto"
    reference_draws: int = 8
    min_reference_share: float = 0.5
    canary_steps: int = 0
    canary_references: int = 2


@dataclass(frozen=True)
class ComponentScreen:
    """One statistic (a probe's target, or one candidate of a panel).

    `per_step_*` are predicted changes per optimizer step, data minus reference (the student's own
    samples); `se_adam` their standard error across minibatches; `predicted_drift` = steps x
    per_step_adam, in the probe's score units. With a trusted dataset of the same task, the
    `*_trusted` fields are the same Adam numbers with that dataset as the null (None without one).
    """

    component: str
    value: float
    per_step_sgd: float
    per_step_adam: float
    se_adam: float
    z_sgd: float
    z_adam: float
    predicted_drift: float
    per_step_trusted: float | None = None
    z_trusted: float | None = None
    drift_trusted: float | None = None


@dataclass(frozen=True)
class ProbeScreen:
    """One probe's screen; `top` is its component with the largest Adam z (a panel's likeliest mover).

    `flagged_by` names the nulls that flagged it: `self-samples`, `trusted` (a trusted dataset).
    """

    probe: str
    screened: bool
    flagged: bool
    reason: str
    z_crit: float
    limit: float | None
    components: tuple[ComponentScreen, ...] = ()
    flagged_by: tuple[str, ...] = ()

    @property
    def top(self) -> ComponentScreen | None:
        return max(self.components, key=lambda c: c.z_adam, default=None)

    @property
    def top_trusted(self) -> ComponentScreen | None:
        """The component with the largest z against the trusted dataset (None without one)."""
        measured = [c for c in self.components if c.z_trusted is not None]
        return max(measured, key=lambda c: c.z_trusted, default=None)  # type: ignore[arg-type,return-value]


@dataclass(frozen=True)
class LogprobGain:
    """The second signal: mean log P(completion token | trait prompt) - log P(token | none), data minus reference."""

    probe: str
    trait_prompt: str
    gain: float
    stderr: float
    z: float


@dataclass(frozen=True)
class CanaryProbe:
    """One probe on the canary: the copy trained on the data against copies trained on the student's own samples.

    `rise` = data canary minus the mean of the self-sample canaries; `spread` = their range (what two
    runs with no trait in their data differ by); `z_runs` = rise over the runs' standard deviation
    (unit: a training run; indicative with few references). `projected_drift` scales the rise
    linearly to the planned run when the canary is shorter. With a trusted dataset, `*_trusted` are
    the same against the copies trained on it (with distinct trusted sources: one copy per source,
    and `rise_trusted` is the margin over the highest trait-free copy, self-samples included),
    and `flagged_by` names the null(s) that fired (`trusted` or `trusted sources`; `self-samples`,
    the unprojected backstop, when a trusted null ran).
    """

    probe: str
    before: float
    after_data: float
    after_references: tuple[float, ...]
    rise: float
    spread: float
    z_runs: float
    projected_drift: float
    limit: float | None
    flagged: bool
    reason: str
    flagged_by: tuple[str, ...] = ()
    after_trusted: tuple[float, ...] = ()
    rise_trusted: float | None = None
    spread_trusted: float | None = None
    projected_trusted: float | None = None


@dataclass(frozen=True)
class CanaryReport:
    """The slow, direct check: `steps` optimizer steps on `rows` rows of the data (the screen's minibatches)."""

    steps: int
    rows: int
    probes: tuple[CanaryProbe, ...]
    trusted_copies: int = 0  # copies trained on the trusted dataset (0: the self-sample null alone)
    trusted_rows: int = 0  # rows of the trusted dataset one such copy trained on (the first source's)
    trusted_sources: int = 0  # distinct trusted datasets, one copy each (0: copies of one dataset, or none)

    @property
    def flagged(self) -> bool:
        return any(p.flagged for p in self.probes)


@dataclass(frozen=True)
class Difficulty:
    """Baselines that ignore the probes: mean training loss and gradient norm, data and reference."""

    loss_data: float
    loss_reference: float
    gradient_norm_data: float
    gradient_norm_reference: float


@dataclass(frozen=True)
class ScreenReport:
    rows: int
    settings: ScreenSettings
    probes: tuple[ProbeScreen, ...]
    difficulty: Difficulty
    logprob_gains: tuple[LogprobGain, ...] = ()
    canary: CanaryReport | None = None
    trusted_rows: int = 0

    @property
    def flagged(self) -> bool:
        """Any probe flagged by the gradient screen, or by the canary when one ran."""
        return any(p.flagged for p in self.probes) or (self.canary is not None and self.canary.flagged)

    @property
    def unscreened(self) -> tuple[str, ...]:
        return tuple(p.probe for p in self.probes if not p.screened)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["flagged"] = self.flagged
        data["unscreened"] = list(self.unscreened)
        return _finite(data)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True)

    def __str__(self) -> str:
        s = self.settings
        lines = [
            f"screened {self.rows} rows: {s.minibatches} minibatches of {s.batch_size}, "
            f"predicted over {s.steps} steps at lr {s.learning_rate:g} (Adam-preconditioned, first order); "
            f"reference filter: {s.reference_filter}"
            + (f"; trusted reference: {self.trusted_rows} rows" if self.trusted_rows else "")
        ]
        for p in self.probes:
            top = p.top
            if not p.screened or top is None:
                lines.append(f"  {p.probe}: NOT SCREENED ({p.reason})")
                continue
            verdict = "FLAGGED" if p.flagged else "pass"
            limit = f"limit {p.limit:+.4f}" if p.limit is not None else "no limit"
            lines.append(
                f"  {p.probe} [{top.component}]: z {top.z_adam:+.2f} (crit {p.z_crit:.2f}), "
                f"predicted drift {top.predicted_drift:+.4f} ({limit}): {verdict}: {p.reason}"
            )
            trusted = p.top_trusted
            if trusted is not None:
                lines.append(
                    f"    against the trusted dataset [{trusted.component}]: z {trusted.z_trusted:+.2f}, "
                    f"predicted drift {trusted.drift_trusted:+.4f}"
                )
        for g in self.logprob_gains:
            lines.append(f"  log-prob gain under '{g.trait_prompt}' ({g.probe}): {g.gain:+.5f} nat/token, z {g.z:+.2f}")
        if self.canary is not None:
            c = self.canary
            against = "copies trained on the student's samples"
            if c.trusted_sources:
                bound = 1 / (c.trusted_sources + 1)
                against += (
                    f" and one on each of {c.trusted_sources} trusted sources (a trait-free dataset like them "
                    f"beats them all with probability <= {bound:.3f})"
                )
            elif c.trusted_copies:
                against += f" and {c.trusted_copies} on the trusted dataset ({c.trusted_rows} rows each)"
            lines.append(f"canary: {c.steps} steps on {c.rows} rows, against {against}")
            lines += [f"  {p.probe}: {canary_line(p)}" for p in c.probes]
        lines.append("verdict: " + ("FLAGGED" if self.flagged else "pass"))
        return "\n".join(lines)


def canary_line(p: CanaryProbe) -> str:
    """One canary probe for a human: scores, the rise over the null, the projection and the verdict."""
    limit = f"limit {p.limit:+.4f}" if p.limit is not None else "no limit"
    references = ", ".join(f"{r:.4f}" for r in p.after_references)
    trusted = ""
    if p.rise_trusted is not None:
        scores = ", ".join(f"{r:.4f}" for r in p.after_trusted)
        trusted = (
            f"; trusted-data canaries {scores}: rise {p.rise_trusted:+.4f} (their spread {p.spread_trusted:.4f}), "
            f"projected {p.projected_trusted:+.4f}"
        )
    by = f" (by {', '.join(p.flagged_by)})" if p.flagged_by and p.rise_trusted is not None else ""
    return (
        f"untrained {p.before:.4f}, canary {p.after_data:.4f}, self-sample canaries {references}: "
        f"rise {p.rise:+.4f} (their spread {p.spread:.4f}, z {p.z_runs:+.2f} over runs), projected over the run "
        f"{p.projected_drift:+.4f}{trusted} ({limit}): {'FLAGGED' if p.flagged else 'pass'}{by}: {p.reason}"
    )


def _finite(value: Any) -> Any:
    """JSON has no infinities: a non-finite float becomes a string naming it."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
