"""The four probe kinds. Each turns a suite spec into items and scores any subset of them.

Scoring a subset is what lets a distributed run give each rank a shard of the items; the batch
layout is always planned from the whole suite, so every rank runs the same number of forwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from torch import nn


class ItemScorer(Protocol):
    kind: str
    trait: str | None
    is_probability: bool

    def item_ids(self) -> list[str]: ...

    def score(
        self, model: nn.Module, tokenizer: Any, items: Sequence[int], *, max_tokens_per_batch: int
    ) -> list[float]: ...
