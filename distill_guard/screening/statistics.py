"""Differentiable probe statistics: what a probe scores, as a tensor the screen can take gradients of.

The probe engine scores under `torch.no_grad()`; the screen needs the gradient of the same number
with respect to the parameters that will train. A `ScreenStatistic` returns one value per
component (one for a probe with a target, one per candidate for a panel), summed over the items
of a chunk, so a long suite can be differentiated a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from distill_guard.probes.engine import Query
from distill_guard.probes.kinds.answers import AnswerItem, AnswerScorer
from distill_guard.probes.model_access import input_device, pad_token_id
from distill_guard.probes.prepared import PreparedProbe


class ScreenStatistic(Protocol):
    """One probe, as differentiable statistics.

    `components` names each statistic (the target, or every candidate of a panel); `limit` is the
    probe's `max_increase` (None: no limit, the probe is reported but cannot flag on drift).
    `chunks(model, tokenizer)` yields, per chunk of items, a tensor [components] of the chunk's
    *summed* item values; their total divided by `items` is the statistic.
    """

    label: str
    components: tuple[str, ...]
    limit: float | None
    items: int

    def chunks(self, model: nn.Module, tokenizer: Any) -> Iterator[Tensor]: ...


class AnswerShareStatistic:
    """Mean share of the trait answers (target probe) or of every candidate (panel), per item."""

    def __init__(self, label: str, scorer: AnswerScorer, *, panel: bool, limit: float | None, chunk_items: int = 16):
        self.label = label
        self.scorer = scorer
        self.panel = panel
        self.limit = limit
        self.chunk_items = chunk_items
        self.items = len(scorer.items)
        self.components = scorer.candidates if panel else (scorer.trait or label,)

    def chunks(self, model: nn.Module, tokenizer: Any) -> Iterator[Tensor]:
        queries = self.scorer.encoding(tokenizer).queries
        for start in range(0, len(queries), self.chunk_items):
            stop = min(start + self.chunk_items, len(queries))
            logprobs = answer_logprob_tensors(model, queries[start:stop], pad_token_id(tokenizer))
            yield torch.stack(
                [self._item_values(item, lp) for item, lp in zip(self.scorer.items[start:stop], logprobs, strict=True)]
            ).sum(0)

    def _item_values(self, item: AnswerItem, logprobs: Tensor) -> Tensor:
        shares = torch.softmax(logprobs, dim=0)  # over the item's answer texts: the probe's normalisation
        if not self.panel:
            return shares[torch.tensor(item.is_trait)].sum().unsqueeze(0)
        columns = torch.tensor(item.columns, device=shares.device)
        return torch.zeros(len(self.components), device=shares.device).scatter_add(0, columns, shares)


def answer_logprob_tensors(model: nn.Module, queries: Sequence[Query], pad_id: int) -> list[Tensor]:
    """Summed log-probability of every answer of every query, with gradients (one right-padded forward).

    Row 0 of a query is its prompt (whose last logits score every answer's first token); each
    answer longer than one token adds a row prompt + answer[:-1] for its remaining tokens. Every
    scored token is gathered in one indexing step (a per-answer index would cost a full-size
    gradient buffer each in the backward pass).
    """
    rows: list[tuple[int, ...]] = []
    where: list[tuple[int, int, int, int]] = []  # (row, position, token, answer number)
    answer = 0
    for q in queries:
        prompt_row, end = len(rows), len(q.prompt) - 1
        rows.append(q.prompt)
        for a in q.answers:
            where.append((prompt_row, end, a[0], answer))
            if len(a) > 1:
                where.extend((len(rows), end + 1 + k, token, answer) for k, token in enumerate(a[1:]))
                rows.append(q.prompt + a[:-1])
            answer += 1
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    device = input_device(model)
    row, position, token, owner = (torch.tensor(column, device=device) for column in zip(*where, strict=True))
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    picked = torch.log_softmax(logits[row, position].float(), dim=-1).gather(1, token.unsqueeze(1)).squeeze(1)
    totals = torch.zeros(answer, device=device, dtype=picked.dtype).index_add(0, owner, picked)
    return list(totals.split([len(q.answers) for q in queries]))


def statistic_for_probe(probe: PreparedProbe) -> ScreenStatistic | None:
    """The probe's statistic, or None for kinds whose score has no gradient (python, activation)."""
    if not isinstance(probe.scorer, AnswerScorer):
        return None
    return AnswerShareStatistic(probe.label, probe.scorer, panel=probe.ref.panel, limit=probe_limit(probe))


def probe_limit(probe: PreparedProbe) -> float | None:
    """The probe's `max_increase`: how far the screen lets a predicted or canary drift go (None: no limit)."""
    threshold = probe.ref.threshold
    return threshold.max_increase if threshold is not None else None
