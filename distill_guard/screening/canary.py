"""The canary: a copy of the student trained K steps on a sample of the data, then probed (the slow, direct check).

The gradient screen predicts a first-order change; the canary measures one. Ordinary fine-tuning
moves probes too (the reference: +0.03 owl share from numbers with no trait in them), so the null is
copies trained the same K steps on the student's own samples for the same prompts (the screen's
reference minibatches, and further independent draws, all through the data's filter); two or more
of them say how far runs differ with no trait in their data. Both copies train with HF
`Trainer` as the planned run would (AdamW at the run's rate and batch, constant schedule), on the
parameters the student trains: the LoRA matrices of a PEFT student, the body of a student with
frozen embeddings. The sample is the screen's M minibatches, cycled when K > M.
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


def judge_canary(
    probe: PreparedProbe, before: float, data: float, references: Sequence[float], settings: ScreenSettings
) -> CanaryProbe:
    """Flag when the rise over the self-sample canaries exceeds their own spread and, projected, reaches the limit.

    The unit of replication is a training run: two runs on the student's own samples differ by
    their spread with no trait in either, so a smaller rise is not evidence. A canary shorter than
    the run is extrapolated linearly (steps / K): a saturating rise is then overstated, which errs
    toward flagging; a canary at least as long as the run is taken as is. A non-finite score never passes.
    """
    null = statistics.fmean(references)
    rise = data - null
    spread = max(references) - min(references)
    noise = statistics.stdev(references) * math.sqrt(1 + 1 / len(references))
    z_runs = rise / noise if noise > 0 else (0.0 if rise == 0 else math.copysign(math.inf, rise))
    projected = rise * max(1.0, settings.steps / settings.canary_steps)
    limit = probe_limit(probe)
    beyond_noise = rise > spread or not math.isfinite(rise)
    reaches = limit is None or projected >= limit or not math.isfinite(projected)
    if beyond_noise and reaches:
        reason = "training on the data moved this probe beyond the self-sample canaries and its limit"
    elif beyond_noise:
        reason = "a rise beyond the self-sample canaries, but its projection stays under the limit"
    else:
        reason = "no rise beyond what runs on the student's own samples differ by"
    return CanaryProbe(
        probe=probe.label,
        before=before,
        after_data=data,
        after_references=tuple(references),
        rise=rise,
        spread=spread,
        z_runs=z_runs,
        projected_drift=projected,
        limit=limit,
        flagged=beyond_noise and reaches,
        reason=reason,
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
) -> CanaryReport:
    """Train the data canary and one self-sample canary per reference set; probe them and the untrained student."""
    check_canary_settings(dataclasses.replace(settings, canary_references=len(reference_sets)))
    if not probes:
        raise DistillGuardError("the canary has no probe to measure the trained copies with")
    data_canary = train_copy(model, data_batches, settings, task="canary on the data", progress=progress)
    references = [
        train_copy(model, batches, settings, task=f"self-sample canary {r + 1}", progress=progress)
        for r, batches in enumerate(reference_sets)
    ]
    judged = []
    for probe in probes:
        before, data, *others = (
            probe.run(m, tokenizer, max_tokens_per_batch=PROBE_TOKENS_PER_BATCH).score
            for m in (model, data_canary, *references)
        )
        judged.append(judge_canary(probe, before, data, others, settings))
    rows = sum(rows_in(b) for b in data_batches)
    return CanaryReport(settings.canary_steps, rows, tuple(judged))
