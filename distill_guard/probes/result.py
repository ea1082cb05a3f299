"""What a probe run returns: per-item scores, so drift can be tested as paired differences."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProbeResult:
    """Scores of one suite on one model at one moment.

    `item_scores[i]` belongs to `item_ids[i]`; two results of the same suite list the same items
    in the same order, which is what makes a paired drift test possible.

    Probes that score several candidate answers (preference, choice) also keep, per item, the
    log-probability of every candidate (`answer_logprobs`) and which of them show the trait
    (`answer_is_trait`): specific drift compares the target's change with the others' changes.
    `candidates` names the columns when they are the same for every item (a preference suite).
    """

    suite: str
    kind: str
    trait: str | None
    item_ids: tuple[str, ...]
    item_scores: tuple[float, ...]
    is_probability: bool = True
    duration_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    candidates: tuple[str, ...] = ()
    answer_logprobs: tuple[tuple[float, ...], ...] = ()
    answer_is_trait: tuple[tuple[bool, ...], ...] = ()

    def __post_init__(self) -> None:
        if len(self.item_ids) != len(self.item_scores):
            counts = f"{len(self.item_ids)} item ids but {len(self.item_scores)} scores"
            raise ValueError(f"{self.suite}: {counts}")
        if not self.item_ids:
            raise ValueError(f"{self.suite}: a probe result needs at least one item")
        if self.answer_logprobs and len(self.answer_logprobs) != len(self.item_ids):
            raise ValueError(f"{self.suite}: {len(self.answer_logprobs)} answer rows for {len(self.item_ids)} items")

    @property
    def score(self) -> float:
        """Mean item score (NaN propagates: a NaN anywhere must never read as a pass)."""
        return math.fsum(self.item_scores) / len(self.item_scores)

    @property
    def stderr(self) -> float:
        n = len(self.item_scores)
        if n < 2:
            return 0.0
        mean = self.score
        variance = math.fsum((s - mean) ** 2 for s in self.item_scores) / (n - 1)
        return math.sqrt(variance / n)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["item_ids"] = list(self.item_ids)
        data["item_scores"] = list(self.item_scores)
        data["score"] = self.score
        data["stderr"] = self.stderr
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProbeResult:
        fields = {k: v for k, v in data.items() if k not in {"score", "stderr"}}
        fields["item_ids"] = tuple(fields["item_ids"])
        fields["item_scores"] = tuple(float(s) for s in fields["item_scores"])
        fields["candidates"] = tuple(fields.get("candidates", ()))
        fields["answer_logprobs"] = tuple(tuple(float(v) for v in row) for row in fields.get("answer_logprobs", ()))
        fields["answer_is_trait"] = tuple(tuple(bool(v) for v in row) for row in fields.get("answer_is_trait", ()))
        return cls(**fields)
