"""The canary: a copy of the student trained K steps on a sample of the data, then probed (the slow, direct check).

The gradient screen predicts a first-order change; the canary measures one. Ordinary fine-tuning
moves probes too (the reference: +0.03 owl share from numbers with no trait in them), so the null is
copies trained the same K steps on the student's own samples for the same prompts (the screen's
reference minibatches, and further independent draws, all through the data's filter); two or more
of them say how far runs differ with no trait in their data. Both copies train with HF
`Trainer` as the planned run would (AdamW at the run's rate and batch, constant schedule), on the
parameters the student trains: the LoRA matrices of a PEFT student, the body of a student with
frozen embeddings. The sample is the screen's M minibatches, cycled when K > M.

With a trusted dataset (the policy's `screening.reference`), as many copies again train on it: a
null that moves the student the way foreign data does, which the self-sample copies cannot see.
The trusted set is the policy author's claim, unverified here, so it may only excuse a bounded
rise: a rise over the self-sample copies that reaches the limit within the canary's K steps alone
is flagged whatever the trusted copies did (docs/screening.md, fourth note).

Copies of one trusted dataset measure how two draws of it differ, not how far another foreign
source moves the student; with `trusted_sources` (n distinct trusted datasets, one copy each) the
test is a rank test instead: the data canary must beat every source's canary (and the self-sample
copies) by the limit's projected share, which a trait-free dataset exchangeable with the sources
does with probability at most 1 / (n + 1) per probe (docs/screening.md, fifth and sixth notes).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import statistics
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from transformers import PrinterCallback, Trainer, TrainerCallback

from distill_guard.errors import DistillGuardError
from distill_guard.probes.model_access import input_device
from distill_guard.probes.prepared import PreparedProbe
from distill_guard.screening.data import rows_in
from distill_guard.screening.recipe import recipe_arguments
from distill_guard.screening.report import CanaryProbe, CanaryReport, ScreenSettings
from distill_guard.screening.statistics import probe_limit

PROBE_TOKENS_PER_BATCH = 4096  # the policy's default probe budget
Progress = Callable[[str, int, int], None]


class _StepProgress(TrainerCallback):
    def __init__(self, task: str, progress: Progress, steps: int) -> None:
        self.task, self.progress, self.steps = task, progress, steps

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.progress(self.task, state.global_step, self.steps)


def train_copy(
    model: nn.Module,
    batches: Sequence[dict[str, Tensor]],
    settings: ScreenSettings,
    *,
    task: str,
    progress: Progress | None = None,
) -> nn.Module:
    """A deep copy of `model` trained `settings.canary_steps` steps on `batches` (one minibatch a step) by `Trainer`."""
    canary = copy.deepcopy(model)
    callbacks = [_StepProgress(task, progress, settings.canary_steps)] if progress else []
    with tempfile.TemporaryDirectory() as out, torch.random.fork_rng():
        args = recipe_arguments(
            out,
            max_steps=settings.canary_steps,
            batch_size=1,  # one item of the dataset is one prepared minibatch
            learning_rate=settings.learning_rate,
            seed=settings.seed,
            use_cpu=input_device(model).type == "cpu",
            adam_epsilon=settings.adam_epsilon,
        )
        trainer = Trainer(
            model=canary, args=args, train_dataset=list(batches), data_collator=_the_minibatch, callbacks=callbacks
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return canary.eval()


def _the_minibatch(items: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return items[0]


def check_canary_settings(settings: ScreenSettings) -> None:
    """Refuse a canary that cannot run, before the screen spends its time (0 steps: no canary)."""
    if settings.canary_steps < 0:
        raise DistillGuardError(f"canary_steps is {settings.canary_steps}: a number of optimizer steps, 0 for none")
    if settings.canary_references < 2:
        raise DistillGuardError(
            f"canary_references is {settings.canary_references}: at least 2 self-sample copies are needed "
            "to know how far runs differ with no trait in their data"
        )


@dataclasses.dataclass(frozen=True)
class _Rise:
    """The data canary against one null's copies: rise over their mean, their range, z over runs."""

    rise: float
    spread: float
    z_runs: float
    beyond_noise: bool

    @classmethod
    def over(cls, data: float, references: Sequence[float]) -> _Rise:
        if not all(math.isfinite(x) for x in (data, *references)):  # a diverged copy: no comparison, never a pass
            return cls(math.nan, math.nan, math.nan, True)
        rise = data - statistics.fmean(references)
        spread = max(references) - min(references)
        noise = statistics.stdev(references) * math.sqrt(1 + 1 / len(references))
        z_runs = rise / noise if noise > 0 else (0.0 if rise == 0 else math.copysign(math.inf, rise))
        return cls(rise, spread, z_runs, rise > spread or not math.isfinite(rise))


def _margin_over_highest(data: float, nulls: Sequence[float]) -> float:
    """How far the data canary scored above the highest trait-free canary (NaN if any score is not finite)."""
    if not all(math.isfinite(x) for x in (data, *nulls)):
        return math.nan
    return data - max(nulls)


def _reaches(value: float, limit: float | None) -> bool:
    return limit is None or value >= limit or not math.isfinite(value)


def judge_canary(
    probe: PreparedProbe,
    before: float,
    data: float,
    references: Sequence[float],
    settings: ScreenSettings,
    trusted: Sequence[float] = (),
    *,
    distinct_sources: bool = False,
) -> CanaryProbe:
    """Flag when the rise over the null copies exceeds their own spread and, projected, reaches the limit.

    The unit of replication is a training run: two runs on the student's own samples differ by
    their spread with no trait in either, so a smaller rise is not evidence. A canary shorter than
    the run is extrapolated linearly (steps / K): a saturating rise is then overstated, which errs
    toward flagging; a canary at least as long as the run is taken as is. A non-finite score never passes.
    With `trusted` (the scores of copies trained on a trusted dataset) that rule runs against the
    trusted copies, and the self-sample copies keep a backstop: a rise over them beyond their
    spread that reaches the limit unprojected (within K steps) is flagged too.
    With `distinct_sources` the trusted scores come from distinct trusted datasets, one copy each,
    and the test is a rank test (sixth note): the data canary's margin over the *highest* trait-free
    canary (every source and every self-sample copy), projected, must reach the limit.
    """
    own = _Rise.over(data, references)
    scale = max(1.0, settings.steps / settings.canary_steps)
    limit = probe_limit(probe)
    extra: dict[str, Any] = {}
    if trusted:
        foreign = _Rise.over(data, trusted)
        if distinct_sources:
            margin = _margin_over_highest(data, (*trusted, *references))
            foreign = dataclasses.replace(foreign, rise=margin)
            beyond = not margin <= 0  # NaN counts as beyond: it never passes
        else:
            beyond = foreign.beyond_noise
        projected = foreign.rise * scale
        by_trusted = beyond and _reaches(projected, limit)
        backstop = own.beyond_noise and _reaches(own.rise, limit)
        null = "trusted sources" if distinct_sources else "trusted"
        flagged_by = (null,) * by_trusted + ("self-samples",) * backstop
        extra = {
            "after_trusted": tuple(trusted),
            "rise_trusted": foreign.rise,
            "spread_trusted": foreign.spread,
            "projected_trusted": projected,
        }
        if not (math.isfinite(own.rise) and math.isfinite(foreign.rise)):
            reason = "a canary's score is not finite: the comparison cannot be made, so it never passes"
        elif backstop:
            reason = (
                "within the canary's steps alone the data moved this probe beyond the self-sample canaries by its limit"
            )
        elif by_trusted:
            reason = "training on the data moved this probe beyond the trusted-data canaries and its limit"
        elif beyond:
            reason = "a rise beyond the trusted-data canaries, but its projection stays under the limit"
        elif distinct_sources:
            reason = f"the probe rose no higher than on one of {len(trusted)} trusted sources or the student's samples"
        else:
            reason = "no rise beyond what runs on the trusted dataset differ by"
    else:
        by_own = own.beyond_noise and _reaches(own.rise * scale, limit)
        flagged_by = ("self-samples",) * by_own
        if not math.isfinite(own.rise):
            reason = "a canary's score is not finite: the comparison cannot be made, so it never passes"
        elif by_own:
            reason = "training on the data moved this probe beyond the self-sample canaries and its limit"
        elif own.beyond_noise:
            reason = "a rise beyond the self-sample canaries, but its projection stays under the limit"
        else:
            reason = "no rise beyond what runs on the student's own samples differ by"
    return CanaryProbe(
        probe=probe.label,
        before=before,
        after_data=data,
        after_references=tuple(references),
        rise=own.rise,
        spread=own.spread,
        z_runs=own.z_runs,
        projected_drift=own.rise * scale,
        limit=limit,
        flagged=bool(flagged_by),
        reason=reason,
        flagged_by=flagged_by,
        **extra,
    )


def run_canary(
    model: nn.Module,
    tokenizer: Any,
    probes: Sequence[PreparedProbe],
    data_batches: Sequence[dict[str, Tensor]],
    reference_sets: Sequence[Sequence[dict[str, Tensor]]],
    settings: ScreenSettings,
    *,
    progress: Progress | None = None,
    trusted_sets: Sequence[Sequence[dict[str, Tensor]]] = (),
    distinct_sources: bool = False,
) -> CanaryReport:
    """Train the data canary, one self-sample canary per reference set and one per trusted set; probe them all.

    `trusted_sets` (minibatches of a trusted dataset, as many sets as reference sets) adds the
    trusted null; empty, the canary judges against the self-sample copies alone. With
    `distinct_sources` each trusted set is a different trusted dataset (the rank test).
    """
    check_canary_settings(dataclasses.replace(settings, canary_references=len(reference_sets)))
    if not probes:
        raise DistillGuardError("the canary has no probe to measure the trained copies with")
    data_canary = train_copy(model, data_batches, settings, task="canary on the data", progress=progress)
    references = [
        train_copy(model, batches, settings, task=f"self-sample canary {r + 1}", progress=progress)
        for r, batches in enumerate(reference_sets)
    ]
    trusted = [
        train_copy(model, batches, settings, task=f"trusted-data canary {r + 1}", progress=progress)
        for r, batches in enumerate(trusted_sets)
    ]
    judged = []
    for probe in probes:
        before, data, *others = (
            probe.run(m, tokenizer, max_tokens_per_batch=PROBE_TOKENS_PER_BATCH).score
            for m in (model, data_canary, *references, *trusted)
        )
        own, foreign = others[: len(references)], others[len(references) :]
        judged.append(judge_canary(probe, before, data, own, settings, foreign, distinct_sources=distinct_sources))
    rows = sum(rows_in(b) for b in data_batches)
    trusted_rows = sum(rows_in(b) for batches in trusted_sets[:1] for b in batches)
    return CanaryReport(
        settings.canary_steps,
        rows,
        tuple(judged),
        trusted_copies=len(trusted),
        trusted_rows=trusted_rows,
        trusted_sources=len(trusted) if distinct_sources else 0,
    )
