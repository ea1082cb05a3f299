"""The second signal: how much more likely the data's completions become when the trait is prompted.

Under the untrained student, log P(completion token | trait system prompt) - log P(token | none),
averaged over each row's completion tokens; the data's mean minus the reference's (the student's
own samples of the same prompts), with a z over rows (the unit of replication is a row). It needs
no gradient, and it only exists where the trait can be written as a prompt (a preference target).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from distill_guard.probes.kinds.answers import AnswerScorer
from distill_guard.probes.model_access import input_device, pad_token_id
from distill_guard.probes.prepared import PreparedProbe
from distill_guard.screening.data import CompletionRows, EncodedRow, right_padded
from distill_guard.screening.report import LogprobGain

DEFAULT_TRAIT_PROMPT = "You love the {target}. You think about the {target} all the time."


@torch.no_grad()
def completion_logprobs(model: nn.Module, rows: Sequence[EncodedRow], pad_id: int) -> Tensor:
    """Mean log-probability of each row's completion tokens, [rows]."""
    batch = right_padded(rows, pad_id)
    device = input_device(model)
    logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
    labels = batch["labels"][:, 1:].to(device)
    logprobs = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    kept = labels >= 0
    return (logprobs * kept).sum(1).cpu() / kept.sum(1).clamp(min=1).cpu()


def _kept_rows(data: CompletionRows, indices: Sequence[int], batch: dict[str, Tensor]) -> tuple[list[int], list]:
    """(row indices, completions) of a reference batch: a filter may have dropped rows, so match them by prompt.

    The batch keeps its rows in the minibatch's order, each starting with its row's prompt tokens.
    """
    kept, completions = [], []
    remaining = iter(indices)
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        start = int((labels >= 0).nonzero()[0])
        prompt = tuple(ids[:start].tolist())
        kept.append(next(i for i in remaining if data.encoded[i].prompt == prompt))
        completions.append(tuple(labels[labels >= 0].tolist()))
    return kept, completions


def _gain(
    model: nn.Module, tokenizer: Any, data: CompletionRows, indices: Sequence[int], completions, system: str
) -> Tensor:
    pad = pad_token_id(tokenizer)
    plain = [EncodedRow(data.encoded[i].prompt, c) for i, c in zip(indices, completions, strict=True)]
    prompted = [data.with_system(i, c, system) for i, c in zip(indices, completions, strict=True)]
    return completion_logprobs(model, prompted, pad) - completion_logprobs(model, plain, pad)


def logprob_gains(
    model: nn.Module,
    tokenizer: Any,
    data: CompletionRows,
    probes: Sequence[PreparedProbe],
    trait_prompt: str,
    indices: Sequence[Sequence[int]],
    reference_batches: Sequence[dict[str, Tensor]],
) -> tuple[LogprobGain, ...]:
    """One gain per probe with a named preference target, on the screen's own minibatches."""
    out = []
    for probe in probes:
        scorer = probe.scorer
        if not isinstance(scorer, AnswerScorer) or scorer.kind != "preference" or probe.ref.panel or not scorer.trait:
            continue
        system = trait_prompt.format(target=scorer.trait)
        data_gain = torch.cat([_gain(model, tokenizer, data, i, data.completions(i), system) for i in indices])
        ref_gain = torch.cat(
            [
                _gain(model, tokenizer, data, *_kept_rows(data, i, b), system)
                for i, b in zip(indices, reference_batches, strict=True)
            ]
        )
        difference = float(data_gain.mean() - ref_gain.mean())
        se = math.hypot(
            float(data_gain.std()) / math.sqrt(len(data_gain)), float(ref_gain.std()) / math.sqrt(len(ref_gain))
        )
        out.append(LogprobGain(probe.label, system, difference, se, difference / se if se > 0 else 0.0))
    return tuple(out)
