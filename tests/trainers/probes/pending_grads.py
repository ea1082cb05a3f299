"""A probe that reports gradients left in the model: non-zero only if it ran inside an accumulation cycle."""

from __future__ import annotations

from typing import Any

from torch import nn


def scores(model: nn.Module, tokenizer: Any, *, target: str | None = None) -> list[float]:
    trainable = [p for p in model.parameters() if p.requires_grad]
    pending = sum(1 for p in trainable if p.grad is not None and bool(p.grad.abs().sum() > 0))
    share = pending / len(trainable)
    return [share, share]
