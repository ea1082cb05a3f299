"""`screen_dataset`: the first-order change of every probe statistic that training on a dataset predicts.

Per probe statistic S and minibatch m, one step changes S by about -lr <g_m, dS> (SGD) or
-lr <g_m / (sqrt(v) + eps), dS> (Adam at its steady state, v the mean squared minibatch gradient).
The same is measured on the student's own samples for the same inputs, whose expected gradient is
zero: the null. The docs (docs/screening.md) state the method and its validation.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from scipy.stats import norm
from torch import Tensor, nn

from distill_guard.errors import DistillGuardError
from distill_guard.probes.prepared import PreparedProbe
from distill_guard.screening.canary import check_canary_settings, run_canary
from distill_guard.screening.data import CompletionRows, ScreenData, rows_in
from distill_guard.screening.gradients import flat_gradient, loss_gradient, trainable_parameters
from distill_guard.screening.logprob_gain import logprob_gains
from distill_guard.screening.reference_filter import Accept, resolve_filter
from distill_guard.screening.report import (
    ComponentScreen,
    Difficulty,
    LogprobGain,
    ProbeScreen,
    ScreenReport,
    ScreenSettings,
)
from distill_guard.screening.statistics import ScreenStatistic, statistic_for_probe
from distill_guard.screening.trusted_sources import check_sources

DEFAULT_SETTINGS = ScreenSettings()

Progress = Callable[[str, int, int], None]
"""progress(task, done, total): called as the screen moves (a CLI draws a bar from it)."""


@dataclass(frozen=True)
class _Side:
    """Minibatch gradients of one dataset (the screened data, or the reference)."""

    gradients: Tensor  # [M, P]
    losses: tuple[float, ...]

    def predicted(self, directions: Tensor, settings: ScreenSettings) -> tuple[Tensor, Tensor]:
        """Per-minibatch predicted change per step, [M, K], for SGD and for Adam."""
        second_moment = self.gradients.pow(2).mean(0)
        preconditioned = self.gradients / (second_moment.sqrt() + settings.adam_epsilon)
        lr = settings.learning_rate
        return -lr * self.gradients @ directions.T, -lr * preconditioned @ directions.T

    @property
    def gradient_norm(self) -> float:
        return float(self.gradients.norm(dim=1).mean())


def minibatch_indices(rows: int, settings: ScreenSettings) -> list[list[int]]:
    """M disjoint minibatches drawn with the screen's seed (with replacement across them if rows are few)."""
    if rows < settings.batch_size:
        raise DistillGuardError(f"the data has {rows} rows, fewer than one minibatch of {settings.batch_size}")
    rng = random.Random(settings.seed)
    order: list[int] = []
    while len(order) < settings.minibatches * settings.batch_size:
        order += rng.sample(range(rows), rows)
    return [order[m * settings.batch_size : (m + 1) * settings.batch_size] for m in range(settings.minibatches)]


def _gradients(
    model: nn.Module,
    params: Sequence[nn.Parameter],
    batches: Sequence[dict[str, Any]],
    task: str,
    progress: Progress | None,
) -> _Side:
    grads, losses = [], []
    for m, batch in enumerate(batches):
        loss, grad = loss_gradient(model, params, batch)
        grads.append(grad)
        losses.append(loss)
        if progress:
            progress(task, m + 1, len(batches))
    return _Side(torch.stack(grads), tuple(losses))


def statistic_gradients(
    statistic: ScreenStatistic, model: nn.Module, tokenizer: Any, params: Sequence[nn.Parameter]
) -> tuple[Tensor, Tensor]:
    """(values [K], gradients [K, P]) of a statistic's components at the current parameters."""
    values = torch.zeros(len(statistic.components))
    grads = torch.zeros(len(statistic.components), sum(p.numel() for p in params))
    for chunk in statistic.chunks(model, tokenizer):
        values += chunk.detach().float().cpu()
        for k in range(len(chunk)):
            grads[k] += flat_gradient(chunk[k], params, retain_graph=k < len(chunk) - 1).cpu()
    return values / statistic.items, grads / statistic.items


def _mean_se(x: Tensor) -> tuple[Tensor, Tensor]:
    return x.mean(0), x.std(0, unbiased=True) / math.sqrt(x.shape[0])


def _z(difference: float, se: float) -> float:
    if se > 0:
        return difference / se
    return 0.0 if difference == 0 else math.copysign(math.inf, difference)


def _components(
    statistic: ScreenStatistic,
    values: Tensor,
    directions: Tensor,
    data: _Side,
    reference: _Side,
    settings: ScreenSettings,
    trusted: _Side | None = None,
) -> tuple[ComponentScreen, ...]:
    (data_sgd, data_adam), (ref_sgd, ref_adam) = (
        data.predicted(directions, settings),
        reference.predicted(directions, settings),
    )
    sgd, sgd_z = _versus(data_sgd, ref_sgd)
    adam, adam_se, adam_z = _versus_se(data_adam, ref_adam)
    if trusted is not None:
        versus_trusted = _versus(data_adam, trusted.predicted(directions, settings)[1])
    out = []
    for k, name in enumerate(statistic.components):
        extra = {}
        if trusted is not None:
            shift, z = versus_trusted[0][k], versus_trusted[1][k]
            extra = {"per_step_trusted": shift, "z_trusted": z, "drift_trusted": settings.steps * shift}
        out.append(
            ComponentScreen(
                component=name,
                value=float(values[k]),
                per_step_sgd=sgd[k],
                per_step_adam=adam[k],
                se_adam=adam_se[k],
                z_sgd=sgd_z[k],
                z_adam=adam_z[k],
                predicted_drift=settings.steps * adam[k],
                **extra,
            )
        )
    return tuple(out)


def _versus_se(data: Tensor, null: Tensor) -> tuple[list[float], list[float], list[float]]:
    """Per component: mean difference of per-minibatch predictions, its standard error, and z."""
    (d, dse), (n, nse) = _mean_se(data), _mean_se(null)
    shift = [float(x) for x in d - n]
    se = [math.hypot(float(a), float(b)) for a, b in zip(dse, nse, strict=True)]
    return shift, se, [_z(x, e) for x, e in zip(shift, se, strict=True)]


def _versus(data: Tensor, null: Tensor) -> tuple[list[float], list[float]]:
    shift, _, z = _versus_se(data, null)
    return shift, z


def _flags(z: float, drift: float, z_crit: float, limit: float | None) -> tuple[bool, bool]:
    """(significant, reaches the limit); a NaN counts as both, so it never passes."""
    significant = z >= z_crit or math.isnan(z)
    return significant, limit is None or drift >= limit or math.isnan(drift)


def judge(statistic: ScreenStatistic, components: tuple[ComponentScreen, ...], settings: ScreenSettings) -> ProbeScreen:
    """Flag when some component's z reaches z_crit and its predicted drift reaches the probe's limit.

    Against the student's own samples always; against a trusted dataset too when one was given (a
    probe is flagged when either null flags it: a second null can add a flag, never remove one).
    """
    z_crit = float(norm.isf(settings.alpha / len(components)))
    top = max(components, key=lambda c: c.z_adam)
    significant, reaches = _flags(top.z_adam, top.predicted_drift, z_crit, statistic.limit)
    flagged_by = ("self-samples",) if significant and reaches else ()
    trusted = [c for c in components if c.z_trusted is not None]
    if trusted:
        best = max(trusted, key=lambda c: c.z_trusted)  # type: ignore[arg-type,return-value]
        if all(_flags(best.z_trusted, best.drift_trusted, z_crit, statistic.limit)):  # type: ignore[arg-type]
            flagged_by += ("trusted",)
    if significant and reaches:
        reason = "the data's gradient pushes this probe up beyond its null and its limit"
    elif flagged_by:
        reason = "the data's gradient pushes this probe up beyond the trusted dataset's and its limit"
    elif significant:
        reason = "a significant push, but the predicted drift stays under the limit"
    else:
        reason = "no push beyond what the student's own samples give"
    return ProbeScreen(statistic.label, True, bool(flagged_by), reason, z_crit, statistic.limit, components, flagged_by)


def _reference_batches(
    model: nn.Module,
    tokenizer: Any,
    data: ScreenData,
    indices: list[list[int]],
    settings: ScreenSettings,
    accept: Accept | None,
) -> list[dict[str, Tensor]]:
    """The student's own samples per minibatch, through the data's filter; refuses a null too small to trust."""
    batches = [
        data.self_sampled(model, tokenizer, i, seed=settings.seed + m, accept=accept, draws=settings.reference_draws)
        for m, i in enumerate(indices)
    ]
    kept = sum(rows_in(b) for b in batches)
    wanted = sum(len(i) for i in indices)
    if kept < settings.min_reference_share * wanted or not all(batches):
        raise DistillGuardError(
            f"the reference filter {settings.reference_filter!r} kept {kept} of {wanted} self-samples "
            f"({settings.reference_draws} draws a row; at least {settings.min_reference_share:.0%} and one a "
            "minibatch are needed): the null would be too small. Was the data produced with this filter?"
        )
    return batches


def screen_statistics(
    model: nn.Module,
    tokenizer: Any,
    data: ScreenData,
    statistics: Sequence[ScreenStatistic],
    settings: ScreenSettings = DEFAULT_SETTINGS,
    *,
    accept: Accept | None = None,
    progress: Progress | None = None,
    trusted: ScreenData | None = None,
) -> tuple[tuple[ProbeScreen, ...], Difficulty, list[list[int]], list[dict[str, Tensor]]]:
    """The gradient screen over ready statistics; also returns the minibatches and reference batches used.

    `trusted` (a dataset of the same task known to be clean) adds a second null: its minibatches'
    gradients, drawn like the data's.
    """
    params = trainable_parameters(model)
    modes = [(module, module.training) for module in model.modules()]
    model.eval()  # deterministic gradients: no dropout in the screen
    try:
        indices = minibatch_indices(len(data), settings)
        data_side = _gradients(model, params, [data.batch(i) for i in indices], "data gradients", progress)
        reference_batches = _reference_batches(model, tokenizer, data, indices, settings, accept)
        reference = _gradients(model, params, reference_batches, "reference gradients", progress)
        trusted_side = None
        if trusted is not None:
            trusted_batches = [trusted.batch(i) for i in minibatch_indices(len(trusted), settings)]
            trusted_side = _gradients(model, params, trusted_batches, "trusted reference gradients", progress)
        screens = []
        for n, statistic in enumerate(statistics):
            values, directions = statistic_gradients(statistic, model, tokenizer, params)
            screens.append(
                judge(
                    statistic,
                    _components(statistic, values, directions, data_side, reference, settings, trusted_side),
                    settings,
                )
            )
            if progress:
                progress("probe gradients", n + 1, len(statistics))
    finally:
        for module, was_training in modes:
            module.training = was_training
        model.zero_grad(set_to_none=True)
    difficulty = Difficulty(
        loss_data=sum(data_side.losses) / len(data_side.losses),
        loss_reference=sum(reference.losses) / len(reference.losses),
        gradient_norm_data=data_side.gradient_norm,
        gradient_norm_reference=reference.gradient_norm,
    )
    return tuple(screens), difficulty, indices, reference_batches


def _redrawn(settings: ScreenSettings, replicate: int) -> ScreenSettings:
    """Settings whose self-sample seeds do not overlap the screen's (an independent reference draw)."""
    return dataclasses.replace(settings, seed=settings.seed + replicate * settings.minibatches)


def screen_dataset(
    model: nn.Module,
    tokenizer: Any,
    dataset: ScreenData,
    probes: Sequence[PreparedProbe],
    settings: ScreenSettings = DEFAULT_SETTINGS,
    *,
    trait_prompt: str | None = None,
    reference_filter: str | Accept | None = None,
    progress: Progress | None = None,
    trusted: ScreenData | None = None,
    statistics: Mapping[str, ScreenStatistic] | None = None,
    trusted_sources: Sequence[ScreenData] = (),
) -> ScreenReport:
    """Screen `dataset` for the student `model` against every probe, before any training step.

    Probes whose kind has no differentiable statistic are reported as not screened (never as a
    pass), unless `statistics` gives one under the probe's label (a `python` probe's smooth twin,
    such as the digits scenario's mean true-class probability for its accuracy probe). With
    `trait_prompt` (a system text with `{target}`), the log-probability gain of the completions under
    it is measured too, for every probe with a target (the second signal).
    `reference_filter` is the filter the data was produced with (a name of `NAMED_FILTERS`, `auto`,
    or a predicate on a completion's text); None takes `settings.reference_filter`.
    `trusted` is a trusted dataset of the same task: a second null, reported as its own z per
    component, that can add a flag (never remove one).
    With `settings.canary_steps` > 0 the canary runs too (`screening/canary.py`): every probe,
    differentiable or not, measured on a copy trained that many steps on the screen's minibatches;
    with `trusted`, its null adds `canary_references` copies trained on independent draws of it.
    `trusted_sources` (two or more distinct trusted datasets of the same task) are a null for the
    canary alone: one copy trains on each, and the data's canary must beat them all (a rank test).
    """
    check_canary_settings(settings)
    check_sources(dataset, trusted, trusted_sources, settings)
    texts = [r["completion"] for r in dataset.rows] if isinstance(dataset, CompletionRows) else None
    name, accept = resolve_filter(settings.reference_filter if reference_filter is None else reference_filter, texts)
    settings = dataclasses.replace(settings, reference_filter=name)
    given = statistics or {}
    ready = [(p, given[p.label] if p.label in given else statistic_for_probe(p)) for p in probes]
    differentiable = [s for _, s in ready if s is not None]
    screened, difficulty, indices, reference_batches = screen_statistics(
        model, tokenizer, dataset, differentiable, settings, accept=accept, progress=progress, trusted=trusted
    )
    in_order = iter(screened)
    results = tuple(
        dataclasses.replace(next(in_order), probe=p.label)
        if s is not None
        else ProbeScreen(p.label, False, False, f"a {p.kind} probe has no gradient", math.nan, None)
        for p, s in ready
    )
    gains: tuple[LogprobGain, ...] = ()
    if trait_prompt is not None and isinstance(dataset, CompletionRows):
        gains = logprob_gains(model, tokenizer, dataset, probes, trait_prompt, indices, reference_batches)
    canary = None
    if settings.canary_steps:
        data_batches = [dataset.batch(i) for i in indices]
        more = [
            _reference_batches(model, tokenizer, dataset, indices, _redrawn(settings, r), accept)
            for r in range(1, settings.canary_references)
        ]
        references = [reference_batches, *more]
        trusted_sets = [
            [trusted.batch(i) for i in minibatch_indices(len(trusted), _redrawn(settings, r))]
            for r in range(settings.canary_references if trusted is not None else 0)
        ]
        trusted_sets += [
            [source.batch(i) for i in minibatch_indices(len(source), settings)] for source in trusted_sources
        ]
        canary = run_canary(
            model,
            tokenizer,
            probes,
            data_batches,
            references,
            settings,
            progress=progress,
            trusted_sets=trusted_sets,
            distinct_sources=bool(trusted_sources),
        )
    trusted_rows = len(trusted) if trusted is not None else 0
    return ScreenReport(len(dataset), settings, results, difficulty, gains, canary, trusted_rows)
