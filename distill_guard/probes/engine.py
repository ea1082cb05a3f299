"""Exact, batched scoring: log-probabilities of answers after prompts, and last-token activations.

Each prompt is run once, left-padded in a batch, with its KV cache kept; the LM head is applied at
its last position only (`logits_to_keep`, where the model takes it). A token prefix shared by all
prompts of a suite (a chat template's system turn) is run once per evaluation and its cache copied
into every batch. The first token of every answer is scored from the prompt's last logits. The
rest of the answers longer than one token are scored in one more forward from that cache: packed
into one row per prompt, each answer seeing the prompt and its own earlier tokens only (a block
mask), so no prompt is run twice and no token is padded per answer. Attention kernels that take no
custom mask (flash attention) get one row per answer over a copy of the prompt's cache instead.
The batch layout is planned from the whole suite, so it is the same on every rank and on every call.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from distill_guard.dist import is_distributed
from distill_guard.probes.model_access import input_device

TokenIds = tuple[int, ...]

# Below this many tokens a shared prefix saves less than the extra forward that computes it costs.
MIN_SHARED_PREFIX = 8


@dataclass(frozen=True)
class Query:
    """One prompt and the answers whose log-probabilities we want after it."""

    prompt: TokenIds
    answers: tuple[TokenIds, ...] = ()


@dataclass(frozen=True)
class BatchPlan:
    """How many prompts go into one forward, whether a second (answer) forward is needed, and the
    token prefix all prompts share (run once per evaluation; empty when too short to pay off)."""

    prompts_per_batch: int
    answer_pass: bool
    packed: bool = True
    shared_prefix: TokenIds = ()

    @classmethod
    def for_queries(
        cls, queries: Sequence[Query], max_tokens_per_batch: int, *, packed: bool = True, share_prefix: bool = True
    ) -> BatchPlan:
        """Size batches for the worst query of the suite, so that no forward exceeds the budget.

        A prompt costs its padded length plus, for its answer tokens after the first, either one
        packed row or (unpacked) one row per answer holding a copy of the prompt's cache. The
        shared prefix is found over the whole suite, so every rank runs the same forwards.
        """
        longest_prompt = max(len(q.prompt) for q in queries)
        multi = [[a for a in q.answers if len(a) > 1] for q in queries]
        if packed:
            extra = max(sum(len(a) - 1 for a in m) for m in multi)
        else:
            longest_answer = max((len(a) for m in multi for a in m), default=1)
            extra = max(len(m) for m in multi) * (longest_prompt + longest_answer - 1)
        per_prompt = longest_prompt + extra
        prefix = shared_prefix([q.prompt for q in queries]) if share_prefix else ()
        return cls(
            max(1, max_tokens_per_batch // per_prompt),
            answer_pass=extra > 0,
            packed=packed,
            shared_prefix=prefix if len(prefix) >= MIN_SHARED_PREFIX else (),
        )

    def batches(self, n: int) -> Iterator[range]:
        for start in range(0, n, self.prompts_per_batch):
            yield range(start, min(start + self.prompts_per_batch, n))


def shared_prefix(prompts: Sequence[TokenIds]) -> TokenIds:
    """The longest token prefix of all prompts that leaves every prompt at least one token of its own
    (its last position must run in the batch, where its logits are read)."""
    first, shortest = prompts[0], min(len(p) for p in prompts)
    length = 0
    while length < shortest - 1 and all(p[length] == first[length] for p in prompts):
        length += 1
    return first[:length]


def _left_padded(
    prompts: Sequence[TokenIds], pad_id: int, device: torch.device, *, after: int = 0
) -> dict[str, torch.Tensor]:
    """A left-padded batch; `after` tokens already in the cache come first in the mask and positions."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), after + width), dtype=torch.long)
    mask[:, :after] = 1
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[row, after + width - len(prompt) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, after:]
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "position_ids": positions.to(device),
    }


def _forward_parameters(model: nn.Module) -> Sequence[str]:
    """Named parameters of the forward under the wrappers (PEFT, DeepSpeed) that take **kwargs."""
    inner = model
    while True:
        if hasattr(inner, "get_base_model"):
            inner = inner.get_base_model()
        elif isinstance(getattr(inner, "module", None), nn.Module):
            inner = inner.module
        else:
            break
    return list(inspect.signature(inner.forward).parameters)


def _cache_keyword(model: nn.Module) -> str:
    """transformers 5 renamed `past_key_values` to `cache` (the old name warns, then goes away)."""
    return "cache" if "cache" in _forward_parameters(model) else "past_key_values"


def _last_logits_only(model: nn.Module) -> dict[str, int]:
    """`logits_to_keep=1` where the forward names it; other models compute every position's logits."""
    return {"logits_to_keep": 1} if "logits_to_keep" in _forward_parameters(model) else {}


def _returned_cache(output: object) -> object:
    return output.cache if hasattr(output, "cache") else output.past_key_values  # type: ignore[attr-defined]


def takes_custom_masks(model: nn.Module) -> bool:
    """Eager and SDPA attention accept a 4D mask as given; flash kernels ignore it."""
    implementation = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return implementation in {"eager", "sdpa"}


def answer_logprobs(model: nn.Module, queries: Sequence[Query], plan: BatchPlan, pad_id: int) -> list[list[float]]:
    """Sum of token log-probs of every answer of every query (exact; no sampling)."""
    prefix = _prefix_cache(model, plan.shared_prefix)
    results: list[list[float]] = []
    for batch in plan.batches(len(queries)):
        results.extend(_score_batch(model, [queries[i] for i in batch], plan, pad_id, prefix))
    return results


def _prefix_cache(model: nn.Module, prefix: TokenIds) -> object | None:
    """The KV cache of the prompts' shared prefix, computed once per evaluation; None when there is
    none, or when the model's cache cannot be repeated per row (the prompts then run whole)."""
    if not prefix:
        return None
    ids = torch.tensor([prefix], dtype=torch.long, device=input_device(model))
    cache = _returned_cache(model(input_ids=ids, use_cache=True, **_last_logits_only(model)))
    return cache if hasattr(cache, "batch_repeat_interleave") else None


def _score_batch(
    model: nn.Module, queries: list[Query], plan: BatchPlan, pad_id: int, prefix: object | None
) -> list[list[float]]:
    device = input_device(model)
    after = len(plan.shared_prefix) if prefix is not None else 0
    inputs = _left_padded([q.prompt[after:] for q in queries], pad_id, device, after=after)
    if prefix is not None:
        cache = copy.deepcopy(prefix)  # each batch extends its own copy
        cache.batch_repeat_interleave(len(queries))  # type: ignore[attr-defined]
        inputs[_cache_keyword(model)] = cache
    out = model(**inputs, use_cache=True, **_last_logits_only(model))
    first = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
    scores = [
        first[row, torch.tensor([a[0] for a in q.answers], device=first.device)].tolist() if q.answers else []
        for row, q in enumerate(queries)
    ]
    if plan.answer_pass:
        rest = [(r, a, answer) for r, q in enumerate(queries) for a, answer in enumerate(q.answers) if len(answer) > 1]
        # Under ZeRO-3/FSDP every rank must run this forward, even with nothing of its own to score.
        if rest or is_distributed():
            layout = _packed if plan.packed else _one_row_per_answer
            continuation = layout(rest or [(0, -1, (pad_id, pad_id))], inputs["attention_mask"].cpu(), pad_id)
            for (r, a, _), total in zip(rest, _continue(model, _returned_cache(out), continuation), strict=False):
                scores[r][a] += total
    return scores


@dataclass(frozen=True)
class _Continuation:
    """Inputs of the answer forward; `segment` says which answer each position scores (-1: padding)."""

    ids: torch.Tensor
    targets: torch.Tensor
    segment: torch.Tensor
    positions: torch.Tensor
    attention: torch.Tensor
    cache_rows: torch.Tensor | None
    segments: int


def _packed(rest: list[tuple[int, int, TokenIds]], prompt_mask: torch.Tensor, pad_id: int) -> _Continuation:
    """One row per prompt: its answers side by side, each attending to the prompt and to itself."""
    rows, prompt_width = prompt_mask.shape
    offsets = [0] * rows
    for r, _, answer in rest:
        offsets[r] += len(answer) - 1
    width = max(offsets)
    ids = torch.full((rows, width), pad_id, dtype=torch.long)
    targets = torch.zeros((rows, width), dtype=torch.long)
    segment = torch.full((rows, width), -1, dtype=torch.long)
    lengths = prompt_mask.sum(-1)
    positions = lengths.unsqueeze(-1).repeat(1, width)
    allowed = torch.eye(width, dtype=torch.bool).repeat(rows, 1, 1)  # padding attends to itself: no empty rows
    offsets = [0] * rows
    for g, (r, _, answer) in enumerate(rest):
        start, k = offsets[r], len(answer) - 1
        span = slice(start, start + k)
        ids[r, span] = torch.tensor(answer[:-1])
        targets[r, span] = torch.tensor(answer[1:])
        segment[r, span] = g
        positions[r, span] = lengths[r] + torch.arange(k)
        allowed[r, span, span] = torch.ones(k, k, dtype=torch.bool).tril()
        offsets[r] += k
    sees_prompt = prompt_mask.bool().unsqueeze(1).expand(rows, width, prompt_width)
    attention = torch.cat([sees_prompt, allowed], dim=-1).unsqueeze(1)
    return _Continuation(ids, targets, segment, positions, attention, None, len(rest))


def _one_row_per_answer(rest: list[tuple[int, int, TokenIds]], prompt_mask: torch.Tensor, pad_id: int) -> _Continuation:
    """One row per answer over a copy of its prompt's cache (for kernels without custom masks)."""
    width = max(len(answer) for _, _, answer in rest) - 1
    ids = torch.full((len(rest), width), pad_id, dtype=torch.long)
    targets = torch.zeros((len(rest), width), dtype=torch.long)
    segment = torch.full((len(rest), width), -1, dtype=torch.long)
    for g, (_, _, answer) in enumerate(rest):
        ids[g, : len(answer) - 1] = torch.tensor(answer[:-1])
        targets[g, : len(answer) - 1] = torch.tensor(answer[1:])
        segment[g, : len(answer) - 1] = g
    source = torch.tensor([r for r, _, _ in rest])
    copied_mask = prompt_mask[source]
    positions = copied_mask.sum(-1, keepdim=True) + torch.arange(width).unsqueeze(0)
    attention = torch.cat([copied_mask, (segment >= 0).long()], dim=-1)
    return _Continuation(ids, targets, segment, positions, attention, source, len(rest))


def _continue(model: nn.Module, cache: object, c: _Continuation) -> list[float]:
    """Run the answer forward from the prompts' cache; the summed log-prob of each answer segment."""
    device = input_device(model)
    if c.cache_rows is not None:
        cache.batch_select_indices(c.cache_rows.to(device))  # type: ignore[attr-defined]
    attention = c.attention.to(device)
    if attention.dim() == 4:  # additive form, which eager and SDPA attention both accept
        dtype = next(model.parameters()).dtype
        attention = torch.zeros(attention.shape, dtype=dtype, device=device).masked_fill(
            ~attention, torch.finfo(dtype).min
        )
    out = model(
        input_ids=c.ids.to(device),
        attention_mask=attention,
        position_ids=c.positions.to(device),
        use_cache=True,
        **{_cache_keyword(model): cache},
    )
    logits = out.logits.float()
    picked = logits.gather(-1, c.targets.to(device).unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
    segment = c.segment.to(device)
    picked = torch.where(segment >= 0, picked, 0.0)
    totals = torch.zeros(c.segments, dtype=picked.dtype, device=device)
    return totals.scatter_add_(0, segment.clamp(min=0).flatten(), picked.flatten()).tolist()


def last_token_states(
    model: nn.Module, prompts: Sequence[TokenIds], layer: int, plan: BatchPlan, pad_id: int
) -> torch.Tensor:
    """Hidden state at `layer` (0 = embeddings) of each prompt's last token, as float32 [n, hidden]."""
    device = input_device(model)
    states = []
    for batch in plan.batches(len(prompts)):
        inputs = _left_padded([prompts[i] for i in batch], pad_id, device)
        out = model(**inputs, use_cache=False, output_hidden_states=True, **_last_logits_only(model))
        states.append(out.hidden_states[layer][:, -1, :].float().cpu())
    return torch.cat(states)
