"""The digits scenario as the screen sees it: noise rows with auxiliary targets, and a smooth accuracy.

The trait probe (held-out digit accuracy) counts correct answers and has no gradient; its
statistic here is the mean probability of the true class on the same held-out images. The
student's own samples of a noise row are its own auxiliary logits: training on them has a zero
gradient, so the reference is exact.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from distill_guard.errors import DistillGuardError
from distill_guard.scenarios.digits import AuxLogitData, _digits_model, digit_images


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
