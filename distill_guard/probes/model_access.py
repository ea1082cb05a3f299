"""Reach the model to probe through its wrappers, and leave it exactly as it was found.

A probe runs in the middle of training: it must not change train/eval mode of any submodule,
consume random numbers the training loop would have drawn, or record gradients.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """Strip (Distributed)DataParallel, whose parameters are full copies on every rank.

    FSDP and DeepSpeed wrappers are kept: their forward gathers the sharded parameters, and every
    rank calls it the same number of times. PEFT models are kept too: their forward applies the adapters.
    """
    while isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
        model = model.module
    return model


def input_device(model: nn.Module) -> torch.device:
    try:
        return model.get_input_embeddings().weight.device  # type: ignore[operator, union-attr]
    except (AttributeError, NotImplementedError):
        return next(model.parameters()).device


@contextmanager
def probing(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode, no gradients, forked RNG; restores every submodule's mode on the way out."""
    modes = [(module, module.training) for module in model.modules()]
    cuda_devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=cuda_devices), torch.no_grad():
            model.eval()
            yield model
    finally:
        for module, was_training in modes:
            module.training = was_training


def pad_token_id(tokenizer: Any) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


@contextmanager
def counting_forwards(model: nn.Module) -> Iterator[list[int]]:
    """Count calls of `model`'s own forward while the block runs (the count is `[n]`, read after)."""
    calls = [0]

    def count(_module: nn.Module, _args: Any) -> None:
        calls[0] += 1

    handle = model.register_forward_pre_hook(count)
    try:
        yield calls
    finally:
        handle.remove()
