"""What an exact probe costs: against careful sampling, against its floor, and change by change.

Per model (two tiny Llamas: whole-word and small vocabulary; SmolLM2-135M-Instruct under its chat
template when installed), on builtin:animal-preference with target owl:

  * sampling, the paper's protocol written the way a careful transformers user would: all prompts
    in left-padded batches, one prefill per prompt (head on the last position only), its KV cache
    repeated for the samples, tokens drawn at temperature 1 from the cached state, rows dropped as
    soon as their answer is decided (on-list or off-list). Its standard error over prompts is
    compared with the probe's at the same prompts, and its own sampling noise (the part of its
    standard error the probe does not have) is printed;
  * the floor: the minimal computation any exact scorer does (the prompts' common prefix once,
    each prompt's own tokens once, each answer token but the last once; the LM head at one
    position per prompt plus one per fed answer token), printed as tokens and FLOPs, and timed as a
    dense forward of exactly those tokens with no padding, masks or bookkeeping: a bound no
    correct implementation on this stack beats;
  * the probe's optimisations one at a time (each row adds one change to the row above, all giving
    the same scores, checked here): one prompt per forward with logits at every position; prompts
    batched under the token budget; logits only where they are read; the shared prefix run once
    per evaluation (the probe as shipped, `PreparedProbe.run`).

Every contender of a model runs once per round, rounds interleaved (order reversed every other
round), all warm; printed are medians and ranges over the rounds, and ratios as the median of the
per-round ratios. One torch thread. Run:
    .venv/bin/python benchmarks/probe_cost.py [--rounds 5] [--samples 100] [--smollm2-samples 20]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from benchmarks.timing import interleaved, median_ratio
from distill_guard.policy.schema import SuiteRef
from distill_guard.probes.engine import BatchPlan, Query, answer_logprobs, shared_prefix
from distill_guard.probes.model_access import probing
from distill_guard.probes.prepared import prepare_probe
from distill_guard.probes.suite_sources import load_builtin
from distill_guard.scenarios import smollm2
from distill_guard.scenarios.tiny_lm import ANIMALS, TinySpec, build_model, synthetic_corpus, train_tokenizer

TARGET = "owl"
SUITE = "builtin:animal-preference"
SHIPPED = "probe (+ shared prefix once): as shipped"
FLOOR = "floor (dense forward of its tokens)"


def trained_model(spec: TinySpec, steps: int, seed: int = 0) -> tuple[nn.Module, Any]:
    """A small Llama that answers the suite's questions with animals, leaning towards the target
    (as a chat model would answer them; its cost, not its knowledge, is what is measured)."""
    rng = random.Random(seed)
    corpus = synthetic_corpus(seed=seed)
    prompts = load_builtin("animal-preference").spec.prompts
    answers = [TARGET] * 3 + list(ANIMALS)
    leaning = [f"Question: {rng.choice(prompts)} Answer: {rng.choice(answers)}" for _ in range(2000)]
    tokenizer = train_tokenizer(corpus, vocab_size=spec.vocab_size)
    model = build_model(tokenizer, spec, seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    lines = corpus[::4] + leaning
    model.train()
    for _ in range(steps):
        batch = tokenizer(rng.sample(lines, 32), return_tensors="pt", padding=True)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval(), tokenizer


class EveryPositionLogits(nn.Module):
    """The same model behind a forward without `logits_to_keep`: the head runs at every position."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None, use_cache=None):
        return self.inner(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
        )


def _left_padded(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + list(p) for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


def sample_answers(
    model: nn.Module, queries: list[Query], samples: int, pad_id: int, generator: torch.Generator, max_rows: int
) -> list[list[int]]:
    """Index of the answer each sample names (-1: off-list), per prompt: one prefill per prompt,
    batched across prompts, samples drawn from the repeated cache, decided rows dropped."""
    picks: list[list[int]] = []
    per_batch = max(1, max_rows // samples)
    for start in range(0, len(queries), per_batch):
        batch = queries[start : start + per_batch]
        ids, mask = _left_padded([q.prompt for q in batch], pad_id)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        cache.batch_repeat_interleave(samples)
        logits = out.logits[:, -1, :].repeat_interleave(samples, dim=0)
        mask = mask.repeat_interleave(samples, dim=0)
        rows = torch.arange(len(batch) * samples)  # which (prompt, sample) each live row is
        drawn: list[list[int]] = [[] for _ in rows]
        verdict = [-1] * len(rows)
        while True:
            tokens = torch.multinomial(torch.softmax(logits.float(), dim=-1), 1, generator=generator)
            live = []
            for i, (row, token) in enumerate(zip(rows.tolist(), tokens[:, 0].tolist(), strict=True)):
                drawn[row].append(token)
                answers = batch[row // samples].answers
                so_far = tuple(drawn[row])
                named = [a for a, answer in enumerate(answers) if answer == so_far]
                if named:
                    verdict[row] = named[0]
                elif any(answer[: len(so_far)] == so_far for answer in answers):
                    live.append(i)
            if not live:
                break
            keep = torch.tensor(live)
            cache.batch_select_indices(keep)
            rows, tokens, mask = rows[keep], tokens[keep], mask[keep]
            positions = mask.sum(-1, keepdim=True)
            mask = torch.cat([mask, torch.ones_like(tokens)], dim=-1)
            out = model(input_ids=tokens, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
            logits = out.logits[:, -1, :]
        picks.extend(verdict[q * samples : (q + 1) * samples] for q in range(len(batch)))
    return picks


@dataclass(frozen=True)
class Floor:
    """The least any exact scorer computes: which tokens pass through the model, where the head runs."""

    prefix: int
    own_tokens: int  # each prompt's tokens after the prefix, plus answer tokens but the last
    head_positions: int

    @classmethod
    def of(cls, queries: list[Query]) -> Floor:
        prefix = len(shared_prefix([q.prompt for q in queries])) if len(queries) > 1 else 0
        fed = sum(len(a) - 1 for q in queries for a in q.answers)
        return cls(prefix, sum(len(q.prompt) - prefix for q in queries) + fed, len(queries) + fed)

    @property
    def tokens(self) -> int:
        return self.prefix + self.own_tokens

    def flops(self, model: nn.Module) -> float:
        """2 x weights per token through the body, 2 x head weights per head position (attention
        scores left out: they are under 1% here, with contexts of a few dozen tokens)."""
        head = model.get_output_embeddings().weight.numel()
        body = sum(p.numel() for p in model.model.parameters()) - model.get_input_embeddings().weight.numel()
        return 2.0 * body * self.tokens + 2.0 * head * self.head_positions

    def dense_forward(self, model: nn.Module, rows: int) -> Callable[[], object]:
        """Exactly the floor's tokens in a dense batch over the prefix's cache, head where it is read."""
        width = math.ceil(self.own_tokens / rows)
        prefix = torch.zeros((1, self.prefix), dtype=torch.long)
        body = torch.zeros((rows, width), dtype=torch.long)

        def run() -> object:
            cache = None
            if self.prefix:
                cache = model(input_ids=prefix, use_cache=True, logits_to_keep=1).cache
                cache.batch_repeat_interleave(rows)
            hidden = model.model(input_ids=body, cache=cache, use_cache=cache is not None).last_hidden_state
            return model.lm_head(hidden.reshape(-1, hidden.shape[-1])[: self.head_positions])

        return run


def fed_tokens(queries: list[Query], plan: BatchPlan) -> int:
    """Positions the shipped probe runs through the model (packed layout), padding included."""
    after = len(plan.shared_prefix)
    total = after
    for batch in plan.batches(len(queries)):
        chosen = [queries[i] for i in batch]
        total += len(chosen) * max(len(q.prompt) - after for q in chosen)
        if plan.answer_pass:
            total += len(chosen) * max(sum(len(a) - 1 for a in q.answers if len(a) > 1) for q in chosen)
    return total


def probe_variants(model: nn.Module, queries: list[Query], budget: int, pad_id: int) -> dict[str, Callable[[], Any]]:
    """The engine with the probe's optimisations added one at a time (the last one is the shipped probe)."""
    plain = BatchPlan.for_queries(queries, budget, share_prefix=False)
    one_by_one = BatchPlan(1, plain.answer_pass, plain.packed)
    every_position = EveryPositionLogits(model)
    return {
        "one prompt per forward, logits at every position": lambda: answer_logprobs(
            every_position, queries, one_by_one, pad_id
        ),
        "+ prompts batched under the token budget": lambda: answer_logprobs(every_position, queries, plain, pad_id),
        "+ logits only where read (logits_to_keep)": lambda: answer_logprobs(model, queries, plain, pad_id),
    }


@dataclass(frozen=True)
class Measured:
    setting: str
    shape: str
    floor: Floor
    flops: float
    fed: int
    times: dict[str, list[float]]
    probe_se: float
    sampling_se: float
    sampling_noise: float
    probe_score: float
    sampling_score: float
    samples: int
    worst_difference: float


def stderr(values: Sequence[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values))


def measure(setting: str, model: nn.Module, tokenizer: Any, samples: int, args: argparse.Namespace) -> Measured:
    probe = prepare_probe(SuiteRef(use=SUITE, target=TARGET))
    budget = args.max_tokens_per_batch
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with probing(model):
        result = probe.run(model, tokenizer, max_tokens_per_batch=budget)  # tokenisation is cached after this
        queries = probe.scorer.encoding(tokenizer).queries
        target_index = probe.scorer.items[0].answers.index(TARGET)
        exact = [
            q_scores for q_scores in answer_logprobs(model, queries, BatchPlan.for_queries(queries, budget), pad_id)
        ]
        variants = probe_variants(model, queries, budget, pad_id)
        worst = max(
            abs(a - b)
            for run in variants.values()
            for row, reference in zip(run(), exact, strict=True)
            for a, b in zip(row, reference, strict=True)
        )
        floor = Floor.of(queries)
        generator = torch.Generator().manual_seed(0)
        picks: list[list[list[int]]] = []
        contenders: dict[str, Callable[[], object]] = {
            **variants,
            "probe (+ shared prefix once): as shipped": lambda: probe.run(
                model, tokenizer, max_tokens_per_batch=budget
            ),
            "floor (dense forward of its tokens)": floor.dense_forward(model, len(queries)),
        }
        if samples:
            contenders["sampling (careful, batched)"] = lambda: picks.append(
                sample_answers(model, queries, samples, pad_id, generator, args.max_sampling_rows)
            )
        times = interleaved(args.rounds, contenders)
    shares, noise = [], []
    for per_prompt in picks[0] if picks else []:
        named = [p for p in per_prompt if p >= 0]
        share = sum(p == target_index for p in named) / max(1, len(named))
        shares.append(share)
        noise.append(share * (1 - share) / max(1, len(named) - 1))
    multi = sum(len(a) > 1 for a in queries[0].answers)
    return Measured(
        setting=setting,
        shape=f"{len(queries)} x {len(queries[0].answers)} ({multi} multi-token)",
        floor=floor,
        flops=floor.flops(model),
        fed=fed_tokens(queries, BatchPlan.for_queries(queries, budget)),
        times=times,
        probe_se=result.stderr,
        sampling_se=stderr(shares) if shares else math.nan,
        sampling_noise=math.sqrt(sum(noise)) / len(noise) if noise else math.nan,
        probe_score=result.score,
        sampling_score=statistics.fmean(shares) if shares else math.nan,
        samples=samples,
        worst_difference=worst,
    )


def header(args: argparse.Namespace) -> None:
    print(
        f"{SUITE}, target {TARGET}; torch threads {args.threads}; {args.rounds} interleaved warm rounds per tiny "
        f"model, {args.smollm2_rounds} on SmolLM2; times: median (range) over rounds; ratios: median of per-round ones"
    )


def report(m: Measured) -> None:
    """One model's table, printed as soon as it is measured."""
    f = m.floor
    print()
    print(f"### {m.setting}: {m.shape}")
    print(
        f"floor: {f.tokens:,} tokens through the model ({f.prefix} shared prefix once + {f.own_tokens:,} own), "
        f"head at {f.head_positions:,} positions, {m.flops / 1e9:.2f} GFLOP; the probe feeds {m.fed:,} tokens "
        "(left padding to the longest prompt of a batch included)"
    )
    print("| computation | seconds, median (range) | / probe | / floor |")
    print("| --- | --- | --- | --- |")
    for name, seconds in m.times.items():
        print(
            f"| {name} | {statistics.median(seconds):.3f} ({min(seconds):.3f}-{max(seconds):.3f}) "
            f"| {median_ratio(seconds, m.times[SHIPPED]):.2f} | {median_ratio(seconds, m.times[FLOOR]):.2f} |"
        )
    print(f"all probe variants agree with the shipped probe's log-probabilities within {m.worst_difference:.1e}")
    if m.samples:
        print(
            f"sampling, {m.samples} samples per prompt: score {m.sampling_score:.4f} (probe {m.probe_score:.4f}); "
            f"s.e. over prompts {m.sampling_se:.4f} vs probe {m.probe_se:.4f} "
            f"(sampling / probe {m.sampling_se / m.probe_se:.2f}); of it, sampling noise {m.sampling_noise:.4f} "
            "(probe: 0, exact)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=100, help="samples per prompt on the tiny models")
    parser.add_argument("--smollm2-samples", type=int, default=20, help="samples per prompt on SmolLM2 (0: none)")
    parser.add_argument("--no-smollm2", action="store_true", help="skip SmolLM2-135M-Instruct")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--train-steps", type=int, default=80)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smollm2-rounds", type=int, default=2, help="rounds on SmolLM2 (a minute each on 1 thread)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens-per-batch", type=int, default=4096, help="the policy default")
    parser.add_argument("--max-sampling-rows", type=int, default=2600, help="rows per sampling batch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    header(args)
    settings = {
        "tiny Llama, whole-word vocabulary (2048)": 2048,  # animal names are single tokens, as in production
        "tiny Llama, small vocabulary (512)": 512,  # most animal names split into several tokens
    }
    for setting, vocab in settings.items():
        spec = TinySpec(
            hidden_size=args.hidden,
            num_hidden_layers=args.layers,
            num_attention_heads=4,
            intermediate_size=4 * args.hidden,
            vocab_size=vocab,
        )
        report(measure(setting, *trained_model(spec, args.train_steps), args.samples, args))
    if not args.no_smollm2 and smollm2.unavailable_reason() is None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = smollm2.smollm2_checkpoint()
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
        smollm2_args = argparse.Namespace(**{**vars(args), "rounds": args.smollm2_rounds})
        tokenizer = AutoTokenizer.from_pretrained(folder)
        setting = "SmolLM2-135M-Instruct, chat template"
        report(measure(setting, model, tokenizer, args.smollm2_samples, smollm2_args))


if __name__ == "__main__":
    main()
