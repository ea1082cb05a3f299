"""Exact, batched scoring: log-probabilities of answers after prompts, and last-token activations.

Each prompt is run once, left-padded in a batch, with its KV cache kept. The first token of every
answer is scored from the prompt's last logits; answers longer than one token continue from a
copy of that cache (one row per answer), so the prompt is never run again per answer. The batch
layout is planned from the whole suite, so it is the same on every rank and on every call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from distill_guard.dist import is_distributed
from distill_guard.probes.model_access import input_device

TokenIds = tuple[int, ...]


@dataclass(frozen=True)
class Query:
    """One prompt and the answers whose log-probabilities we want after it."""

    prompt: TokenIds
    answers: tuple[TokenIds, ...] = ()


@dataclass(frozen=True)
class BatchPlan:
    """How many prompts go into one forward, and whether a second (answer) forward is needed."""

    prompts_per_batch: int
    answer_pass: bool

    @classmethod
    def for_queries(cls, queries: Sequence[Query], max_tokens_per_batch: int) -> BatchPlan:
        """Size batches for the worst query of the suite, so that no forward exceeds the budget.

        A prompt costs its padded length; its multi-token answers each cost a row holding a copy of
        the prompt's cache plus the answer.
        """
        longest_prompt = max(len(q.prompt) for q in queries)
        multi = [[a for a in q.answers if len(a) > 1] for q in queries]
        most_multi = max(len(m) for m in multi)
        longest_answer = max((len(a) for m in multi for a in m), default=1)
        cost = longest_prompt + most_multi * (longest_prompt + longest_answer - 1)
        return cls(prompts_per_batch=max(1, max_tokens_per_batch // cost), answer_pass=most_multi > 0)

    def batches(self, n: int) -> Iterator[range]:
        for start in range(0, n, self.prompts_per_batch):
            yield range(start, min(start + self.prompts_per_batch, n))


def _left_padded(prompts: Sequence[TokenIds], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "position_ids": positions.to(device),
    }


def answer_logprobs(
    model: nn.Module, queries: Sequence[Query], plan: BatchPlan, pad_id: int
) -> list[list[float]]:
    """Sum of token log-probs of every answer of every query (exact; no sampling)."""
    results: list[list[float]] = []
    for batch in plan.batches(len(queries)):
        results.extend(_score_batch(model, [queries[i] for i in batch], plan, pad_id))
    return results


def _score_batch(model: nn.Module, queries: list[Query], plan: BatchPlan, pad_id: int) -> list[list[float]]:
    device = input_device(model)
    inputs = _left_padded([q.prompt for q in queries], pad_id, device)
    out = model(**inputs, use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
    scores = [
        first[row, torch.tensor([a[0] for a in q.answers], device=first.device)].tolist() if q.answers else []
        for row, q in enumerate(queries)
    ]
    if plan.answer_pass:
        rows = [
            (r, a, answer)
            for r, q in enumerate(queries)
            for a, answer in enumerate(q.answers)
            if len(answer) > 1
        ]
        # Under ZeRO-3/FSDP every rank must run this forward, even with nothing of its own to score.
        if rows or is_distributed():
            for r, a, rest in _continue_from_cache(model, out.cache, inputs, rows, pad_id):
                scores[r][a] += rest
    return scores


def _continue_from_cache(
    model: nn.Module,
    cache: object,
    prompt_inputs: dict[str, torch.Tensor],
    rows: list[tuple[int, int, TokenIds]],
    pad_id: int,
) -> list[tuple[int, int, float]]:
    """Score tokens 2..k of each answer in one forward over copies of its prompt's cache."""
    dummy = not rows
    work = rows or [(0, 0, (pad_id, pad_id))]
    device = prompt_inputs["input_ids"].device
    source = torch.tensor([r for r, _, _ in work], device=device)
    cache.batch_select_indices(source)  # type: ignore[attr-defined]
    width = max(len(answer) for _, _, answer in work) - 1
    ids = torch.full((len(work), width), pad_id, dtype=torch.long)
    targets = torch.zeros((len(work), width), dtype=torch.long)
    mask = torch.zeros((len(work), width), dtype=torch.long)
    for row, (_, _, answer) in enumerate(work):
        ids[row, : len(answer) - 1] = torch.tensor(answer[:-1], dtype=torch.long)
        targets[row, : len(answer) - 1] = torch.tensor(answer[1:], dtype=torch.long)
        mask[row, : len(answer) - 1] = 1
    prompt_mask = prompt_inputs["attention_mask"][source]
    prompt_lengths = prompt_mask.sum(-1, keepdim=True)
    positions = prompt_lengths + torch.arange(width, device=device).unsqueeze(0)
    out = model(
        input_ids=ids.to(device),
        attention_mask=torch.cat([prompt_mask, mask.to(device)], dim=-1),
        position_ids=positions,
        cache=cache,
        use_cache=True,
    )
    if dummy:
        return []
    logprobs = torch.log_softmax(out.logits.float(), dim=-1)
    picked = logprobs.gather(-1, targets.to(device).unsqueeze(-1)).squeeze(-1)
    picked = torch.where(mask.to(device).bool(), picked, 0.0)
    return [(r, a, total) for (r, a, _), total in zip(work, picked.sum(-1).tolist(), strict=True)]


def last_token_states(
    model: nn.Module, prompts: Sequence[TokenIds], layer: int, plan: BatchPlan, pad_id: int
) -> torch.Tensor:
    """Hidden state at `layer` (0 = embeddings) of each prompt's last token, as float32 [n, hidden]."""
    device = input_device(model)
    states = []
    for batch in plan.batches(len(prompts)):
        inputs = _left_padded([prompts[i] for i in batch], pad_id, device)
        out = model(**inputs, use_cache=False, output_hidden_states=True, logits_to_keep=1)
        states.append(out.hidden_states[layer][:, -1, :].float().cpu())
    return torch.cat(states)
