"""What an exact probe costs, against the paper's sampling protocol and against the forward-pass floor.

One machine, one run, one model. Prints a table of ratios:
  * our probe vs sampling (same 50+ prompts, 100 samples each at temperature 1, share of answers
    naming the target): wall time, and standard error of the score over prompts;
  * our probe vs the floor: one batched forward over exactly the tokens the probe feeds the
    model, with the LM head applied only where the probe reads logits.

    .venv/bin/python benchmarks/probe_cost.py            # about a minute on 2 CPU cores
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from distill_guard.policy.schema import SuiteRef
from distill_guard.probes.engine import Query
from distill_guard.probes.model_access import probing
from distill_guard.probes.prepared import PreparedProbe, prepare_probe
from distill_guard.probes.suite_sources import load_builtin
from distill_guard.scenarios.tiny_lm import ANIMALS, TinySpec, build_model, synthetic_corpus, train_tokenizer

TARGET = "owl"


def trained_model(spec: TinySpec, steps: int, seed: int = 0) -> tuple[torch.nn.Module, object]:
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


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def sampling_protocol(model, tokenizer, queries: list[Query], target_index: int, samples: int) -> list[float]:
    """The paper's measurement: per prompt, the share of sampled answers naming the target, among the
    answers naming a candidate (the probe's definition: an answer names a candidate when its tokens
    start with the candidate's tokens; off-list answers are dropped)."""
    shares = []
    with torch.no_grad():
        for query in queries:
            prompt = torch.tensor([query.prompt]).repeat(samples, 1)
            out = model.generate(
                prompt,
                attention_mask=torch.ones_like(prompt),
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max(len(a) for a in query.answers) + 1,
                pad_token_id=tokenizer.pad_token_id,
            )
            named = []
            for tokens in out[:, prompt.shape[1] :].tolist():
                named += [i for i, a in enumerate(query.answers) if tuple(tokens[: len(a)]) == a][:1]
            shares.append(sum(i == target_index for i in named) / max(1, len(named)))
    return shares


def floor_forward(model, queries: list[Query], pad_id: int) -> Callable[[], object]:
    """One forward over exactly the probe's input tokens; the LM head only where the probe reads logits."""
    rows = [list(q.prompt) + [t for a in q.answers if len(a) > 1 for t in a[:-1]] for q in queries]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    read = torch.zeros_like(ids, dtype=torch.bool)
    for i, (row, q) in enumerate(zip(rows, queries, strict=True)):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
        read[i, len(q.prompt) - 1 : len(row)] = True

    def run() -> object:
        with torch.no_grad():
            hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
            return model.lm_head(hidden[read])

    return run


def stderr(values: list[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values))


@dataclass(frozen=True)
class Measured:
    setting: str
    answers: str
    probe_s: float
    floor_s: float
    sampling_s: float
    probe_se: float
    sampling_se: float
    probe_score: float
    sampling_score: float


def measure(setting: str, spec: TinySpec, args: argparse.Namespace) -> Measured:
    model, tokenizer = trained_model(spec, args.train_steps)
    probe: PreparedProbe = prepare_probe(SuiteRef(use="builtin:animal-preference", target=TARGET))
    budget = args.max_tokens_per_batch
    result = probe.run(model, tokenizer, max_tokens_per_batch=budget)  # warm: tokenisation is cached after this
    queries = probe.scorer.encoding(tokenizer).queries
    probe_s = median_seconds(lambda: probe.run(model, tokenizer, max_tokens_per_batch=budget), args.repeats)
    with probing(model):
        floor_s = median_seconds(floor_forward(model, queries, tokenizer.pad_token_id), args.repeats)
    started = time.perf_counter()
    target_index = probe.scorer.items[0].answers.index(TARGET)
    shares = sampling_protocol(model, tokenizer, queries, target_index, args.samples)
    sampling_s = time.perf_counter() - started
    multi = sum(len(a) > 1 for a in queries[0].answers)
    return Measured(
        setting,
        f"{len(queries)} x {len(queries[0].answers)} ({multi} multi-token)",
        probe_s,
        floor_s,
        sampling_s,
        result.stderr,
        stderr(shares),
        result.score,
        statistics.fmean(shares),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100, help="samples per prompt for the sampling protocol")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--train-steps", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens-per-batch", type=int, default=65536)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    settings = {
        "whole-word vocabulary (2048)": 2048,  # animal names are single tokens, as in production vocabularies
        "small vocabulary (512)": 512,  # most animal names split into several tokens: the harder case
    }
    rows = []
    for setting, vocab in settings.items():
        spec = TinySpec(
            hidden_size=args.hidden,
            num_hidden_layers=args.layers,
            num_attention_heads=4,
            intermediate_size=4 * args.hidden,
            vocab_size=vocab,
        )
        rows.append(measure(setting, spec, args))
    print(
        f"Llama hidden={args.hidden} layers={args.layers}, torch threads={args.threads}, builtin:animal-preference, "
        f"target {TARGET}; sampling: {args.samples} samples per prompt at temperature 1; times are medians of "
        f"{args.repeats} warm runs (sampling: one run)"
    )
    print()
    print(
        "| setting | prompts x answers | probe s | floor s | sampling s | sampling / probe time "
        "| sampling / probe s.e. | probe / floor time | score: probe, sampling |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in rows:
        print(
            f"| {m.setting} | {m.answers} | {m.probe_s:.3f} | {m.floor_s:.3f} | {m.sampling_s:.1f} "
            f"| {m.sampling_s / m.probe_s:.0f}x | {m.sampling_se / m.probe_se:.2f} | {m.probe_s / m.floor_s:.2f} "
            f"| {m.probe_score:.3f}, {m.sampling_score:.3f} |"
        )
    print()
    print("goals: sampling / probe time >= 50x at sampling / probe s.e. >= 1; probe / floor time <= 1.5")


if __name__ == "__main__":
    main()
