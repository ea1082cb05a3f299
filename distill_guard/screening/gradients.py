"""Gradients restricted to the parameters that will train, flattened into one vector each.

Only `requires_grad` parameters count: for a PEFT student those are the LoRA matrices, for the LM
miniature the body without its frozen embeddings. A gradient over parameters that never move
would predict a change that training cannot make.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from distill_guard.errors import DistillGuardError
from distill_guard.probes.model_access import input_device


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise DistillGuardError("the student has no trainable parameters (requires_grad): nothing to screen")
    return params


def flat_gradient(output: Tensor, params: Sequence[nn.Parameter], *, retain_graph: bool = False) -> Tensor:
    """d output / d params as one float32 vector (zeros where a parameter does not reach `output`)."""
    grads = torch.autograd.grad(output, params, retain_graph=retain_graph, allow_unused=True)
    return torch.cat(
        [(g if g is not None else torch.zeros_like(p)).reshape(-1).float() for g, p in zip(grads, params, strict=True)]
    )


def loss_gradient(model: nn.Module, params: Sequence[nn.Parameter], batch: dict[str, Any]) -> tuple[float, Tensor]:
    """The training loss of one minibatch (the Trainer convention: `model(**batch)["loss"]`) and its gradient."""
    device = input_device(model)
    moved = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
    loss = model(**moved)["loss"]
    if not torch.isfinite(loss):
        raise DistillGuardError(f"the training loss of a minibatch is {float(loss)}: cannot screen this data")
    return float(loss.detach()), flat_gradient(loss, params)
