"""What a probe kind offers the guard: the `ProbeScorer` protocol and its two optional capabilities.

A kind turns a suite's spec into a scorer (see `registry.py`); the four built-in kinds and user
kinds meet the same protocol. Scoring any subset of the items is what lets a distributed run give
each rank a shard; a kind plans its batches from the whole suite, so every rank runs the same
number of forwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from torch import nn


class ProbeScorer(Protocol):
    """One suite, ready to score a model item by item.

    Attributes:
        kind: the suite's `spec.kind`.
        trait: what a higher score means more of (a label in metrics and halt records), or None.
        is_probability: True when every item score lies in [0, 1].

    `item_ids()` lists the items, the same on every call. `score(model, tokenizer, items, ...)`
    returns one score per index in `items` (indices into `item_ids()`), computed from the model's
    log-probabilities or activations; the model comes in eval mode under `torch.no_grad()` and the
    guard restores it afterwards. Keep each forward within `max_tokens_per_batch` tokens, and run
    the same forwards for any `items` of equal length (ranks must not wait for each other). A NaN
    counts as a breach, never as a pass.

    A scorer that keeps state worth saving with a checkpoint implements `Resumable` too.
    """

    kind: str
    trait: str | None
    is_probability: bool

    def item_ids(self) -> list[str]: ...

    def score(
        self, model: nn.Module, tokenizer: Any, items: Sequence[int], *, max_tokens_per_batch: int
    ) -> list[float]: ...


@runtime_checkable
class Resumable(Protocol):
    """A scorer whose state (e.g. a direction fixed at baseline) travels in trainer_state.json."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; {} before there is any."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned ({} resets)."""
        ...


@runtime_checkable
class WholeModelScorer(Protocol):
    """A scorer that cannot split its items (a user function over the whole model: the `python` kind).

    Every rank calls it, so it may run forwards under ZeRO-3/FSDP; rank 0's scores count.
    """

    kind: str
    trait: str | None
    is_probability: bool

    def score_whole_model(self, model: nn.Module, tokenizer: Any) -> tuple[list[str], list[float]]:
        """(item ids, scores), the same items on every call."""
        ...
