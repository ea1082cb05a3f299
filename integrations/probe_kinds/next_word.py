"""A complete user probe kind: `next-word`, the probability that the model's next word is the target.

Import this module before loading a policy that uses it (e.g. at the top of your training
script); registering makes `spec.kind: next-word` valid in suite files, with the same
FILE:LINE:COL errors as the built-in kinds. See docs/probes.md, "Your own probe kind".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from distill_guard import DistillGuardError, LoadedSuite, probe_kind


class NextWordSpec(BaseModel):
    """The suite file's `spec`: prompts, and the word whose probability is the trait."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["next-word"]
    prompts: list[str] = Field(min_length=2)
    target: str | None = None


class NextWordScorer:
    """Score of a prompt = P(first token of " TARGET" | prompt), from one batched forward."""

    kind = "next-word"
    is_probability = True

    def __init__(self, spec: NextWordSpec, target: str) -> None:
        self.trait = target
        self.prompts = spec.prompts

    def item_ids(self) -> list[str]:
        return [f"prompt-{i:03d}" for i in range(len(self.prompts))]

    def score(
        self, model: nn.Module, tokenizer: Any, items: Sequence[int], *, max_tokens_per_batch: int
    ) -> list[float]:
        encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in self.prompts]
        target_id = tokenizer(" " + self.trait, add_special_tokens=False)["input_ids"][0]
        width = max(len(ids) for ids in encoded)  # planned from all prompts: every rank batches alike
        per_batch = max(1, max_tokens_per_batch // width)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        device = next(model.parameters()).device
        scores: list[float] = []
        for start in range(0, len(items), per_batch):
            batch = [encoded[i] for i in items[start : start + per_batch]]
            ids = torch.tensor([[pad] * (width - len(x)) + x for x in batch], device=device)
            mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in batch], device=device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, -1, :].float()
            scores.extend(torch.softmax(logits, dim=-1)[:, target_id].tolist())
        return scores


@probe_kind(NextWordSpec)
def next_word_scorer(suite: LoadedSuite, target: str | None) -> NextWordScorer:
    """`target` from the policy wins over the suite's own."""
    chosen = target or suite.spec.target
    if not chosen:
        raise DistillGuardError(f"suite '{suite.name}': a next-word suite needs a target")
    return NextWordScorer(suite.spec, chosen)
