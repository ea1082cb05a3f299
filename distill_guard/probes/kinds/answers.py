"""What preference and choice probes share: normalised probability of trait answers per prompt."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from distill_guard.probes.engine import BatchPlan, Query, answer_logprobs, takes_custom_masks
from distill_guard.probes.model_access import pad_token_id
from distill_guard.probes.prompting import Formatter


@dataclass(frozen=True)
class AnswerItem:
    """One prompt with its answer texts, each marked as showing the trait or not.

    `columns[k]` is the candidate answer text k spells (several spellings pool into one
    candidate); empty means every answer text is its own candidate.
    """

    id: str
    prompt: str
    answers: tuple[str, ...]
    is_trait: tuple[bool, ...]
    columns: tuple[int, ...] = ()

    def candidate_logprobs(self, logprobs: Sequence[float]) -> tuple[list[float], list[bool]]:
        """Log-probability of each candidate (its spellings pooled) and whether it shows the trait."""
        if not self.columns:
            return list(logprobs), list(self.is_trait)
        width = max(self.columns) + 1
        pooled = [logsumexp([lp for lp, c in zip(logprobs, self.columns, strict=True) if c == k]) for k in range(width)]
        flags = [any(t for t, c in zip(self.is_trait, self.columns, strict=True) if c == k) for k in range(width)]
        return pooled, flags


def logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(math.fsum(math.exp(v - top) for v in values))


def trait_share(logprobs: Sequence[float], is_trait: Sequence[bool]) -> float:
    """P(trait answers) / P(all answers): the exact expectation of sampling restricted to the answers."""
    trait = [lp for lp, t in zip(logprobs, is_trait, strict=True) if t]
    return math.exp(logsumexp(trait) - logsumexp(logprobs))


class AnswerEncoding:
    """Token ids of every item for one tokenizer, kept so repeated runs skip tokenisation."""

    def __init__(self, items: Sequence[AnswerItem], formatter: Formatter) -> None:
        queries = []
        for item in items:
            text = formatter.prompt_text(item.prompt)
            prompt_ids = formatter.encode_prompt(text)
            answers = tuple(tuple(formatter.encode_answer(text, prompt_ids, a)) for a in item.answers)
            queries.append(Query(tuple(prompt_ids), answers))
        self.queries = queries
        self.tokenizer = formatter.tokenizer


@dataclass(frozen=True)
class ItemAnswers:
    """One item's score (trait share) with the log-probability of each candidate, for specific drift."""

    share: float
    logprobs: tuple[float, ...]
    is_trait: tuple[bool, ...]


class AnswerScorer:
    """Scores items by the normalised probability of their trait answers; shared by two kinds.

    `candidates` names the candidate columns when every item has the same ones (preference).
    """

    def __init__(
        self,
        kind: str,
        trait: str | None,
        items: list[AnswerItem],
        plain_template: str,
        system: str | None,
        candidates: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind
        self.trait = trait
        self.is_probability = True
        self.items = items
        self.candidates = candidates
        self._plain_template = plain_template
        self._system = system
        self._encoding: AnswerEncoding | None = None

    def item_ids(self) -> list[str]:
        return [item.id for item in self.items]

    def encoding(self, tokenizer: Any) -> AnswerEncoding:
        if self._encoding is None or self._encoding.tokenizer is not tokenizer:
            self._encoding = AnswerEncoding(self.items, Formatter(tokenizer, self._plain_template, self._system))
        return self._encoding

    def score(
        self, model: nn.Module, tokenizer: Any, items: Sequence[int], *, max_tokens_per_batch: int
    ) -> list[float]:
        return [a.share for a in self.score_answers(model, tokenizer, items, max_tokens_per_batch=max_tokens_per_batch)]

    def score_answers(
        self, model: nn.Module, tokenizer: Any, items: Sequence[int], *, max_tokens_per_batch: int
    ) -> list[ItemAnswers]:
        """Trait share and per-candidate log-probabilities of each item, from the same forwards."""
        queries = self.encoding(tokenizer).queries
        plan = BatchPlan.for_queries(queries, max_tokens_per_batch, packed=takes_custom_masks(model))
        logprobs = answer_logprobs(model, [queries[i] for i in items], plan, pad_token_id(tokenizer))
        out = []
        for lp, i in zip(logprobs, items, strict=True):
            item = self.items[i]
            pooled, flags = item.candidate_logprobs(lp)
            out.append(ItemAnswers(trait_share(lp, item.is_trait), tuple(pooled), tuple(flags)))
        return out
