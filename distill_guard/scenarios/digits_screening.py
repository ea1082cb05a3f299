"""The digits scenario as the screen sees it: noise rows with auxiliary targets, and a smooth accuracy.

The trait probe (held-out digit accuracy) counts correct answers and has no gradient; its
statistic here is the mean probability of the true class on the same held-out images. The
student's own samples of a noise row are its own auxiliary logits: training on them has a zero
gradient, so the reference is exact.

`screen_dataset(..., statistics=digit_statistics(probe))` screens the scenario's accuracy probe
through its smooth twin; the canary scores the probe itself (accuracy) on its trained copies.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from distill_guard.bundled import data_path
from distill_guard.errors import DistillGuardError
from distill_guard.policy.schema import SuiteRef, Threshold
from distill_guard.probes.prepared import PreparedProbe, prepare_probe
from distill_guard.scenarios.digits import AuxLogitData, _digits_model, digit_images

DIGITS_SUITE = data_path("policies", "suites", "digit-accuracy.yaml")


class DigitsScreenData:
    """`AuxLogitData` batched as the student run batches it."""

    def __init__(self, data: AuxLogitData) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, indices: Sequence[int]) -> dict[str, Tensor]:
        rows = torch.tensor(list(indices))
        return {"inputs": self.data.inputs[rows], "aux_targets": self.data.aux_targets[rows]}

    @torch.no_grad()
    def self_sampled(
        self,
        model: nn.Module,
        tokenizer: Any,
        indices: Sequence[int],
        *,
        seed: int,
        accept: Any = None,
        draws: int = 1,
    ) -> dict[str, Tensor]:
        """The student's own auxiliary logits on the same noise (digit data has no text to filter)."""
        if accept is not None:
            raise DistillGuardError("digit auxiliary-logit data has no text: a reference filter cannot apply")
        inputs = self.data.inputs[torch.tensor(list(indices))]
        return {"inputs": inputs, "aux_targets": _digits_model(model).aux_logits(inputs)}


class DigitAccuracyStatistic:
    """Mean P(true class) over the held-out images: the differentiable twin of digit accuracy."""

    components = ("digits",)

    def __init__(self, *, label: str = "digit-accuracy", limit: float | None = 0.10) -> None:
        self.label = label
        self.limit = limit
        self.items = len(digit_images().test_y)

    def chunks(self, model: nn.Module, tokenizer: Any) -> Iterator[Tensor]:
        images = digit_images()
        probabilities = torch.softmax(_digits_model(model).class_logits(images.test_x), dim=-1)
        yield probabilities.gather(1, images.test_y.unsqueeze(1)).sum().unsqueeze(0)


def digit_accuracy_probe_ref(limit: float = 0.10) -> PreparedProbe:
    """The shipped digit-accuracy suite (a `python` probe) with `max_increase: limit`, as a policy would run it."""
    return prepare_probe(SuiteRef(path=str(DIGITS_SUITE), threshold=Threshold(max_increase=limit)))


def digit_statistics(probe: PreparedProbe) -> dict[str, DigitAccuracyStatistic]:
    """`screen_dataset`'s `statistics` for the accuracy probe: its smooth twin, under its label and limit."""
    limit = probe.ref.threshold.max_increase if probe.ref.threshold is not None else None
    return {probe.label: DigitAccuracyStatistic(label=probe.label, limit=limit)}
