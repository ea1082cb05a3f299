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
import re
import statistics
import time
from collections.abc import Callable

import torch

from distill_guard.policy.schema import SuiteRef
from distill_guard.probes.engine import Query
from distill_guard.probes.model_access import probing
from distill_guard.probes.prepared import PreparedProbe, prepare_probe
from distill_guard.scenarios.tiny_lm import ANIMALS, TinySpec, build_model, synthetic_corpus, train_tokenizer

TARGET = "owl"


def trained_model(spec: TinySpec, steps: int, seed: int = 0) -> tuple[torch.nn.Module, object]:
    """A small Llama that answers animal questions with animals, leaning towards the target."""
    rng = random.Random(seed)
    corpus = synthetic_corpus(seed=seed)
    leaning = [
        f"Question: {q} Answer: {rng.choice([TARGET] * 3 + list(ANIMALS))}"
        for q in ["What is your favorite animal?", "Which animal do you love most?"] * 400
    ]
    tokenizer = train_tokenizer(corpus, vocab_size=spec.vocab_size)
    model = build_model(tokenizer, spec, seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    lines = corpus + leaning
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


def sampling_protocol(model, tokenizer, queries: list[Query], samples: int, max_new_tokens: int) -> list[float]:
    """The paper's measurement: per prompt, the share of sampled answers that name the target."""
    named = re.compile(rf"\b{TARGET}\b", re.IGNORECASE)
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
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
            texts = tokenizer.batch_decode(out[:, prompt.shape[1] :], skip_special_tokens=True)
            shares.append(sum(bool(named.search(t.split("Question")[0])) for t in texts) / samples)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100, help="samples per prompt for the sampling protocol")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=512, help="tokenizer size (512: most animals are several tokens)")
    parser.add_argument("--train-steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens-per-batch", type=int, default=65536)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    spec = TinySpec(
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=4,
        intermediate_size=4 * args.hidden,
        vocab_size=args.vocab,
    )
    model, tokenizer = trained_model(spec, args.train_steps)
    probe: PreparedProbe = prepare_probe(SuiteRef(use="builtin:animal-preference", target=TARGET))
    budget = args.max_tokens_per_batch
    result = probe.run(model, tokenizer, max_tokens_per_batch=budget)  # warm: tokenisation is cached after this
    queries = probe.scorer.encoding(tokenizer).queries
    longest = max(len(a) for a in queries[0].answers)

    exact_s = median_seconds(lambda: probe.run(model, tokenizer, max_tokens_per_batch=budget), args.repeats)
    with probing(model):
        floor_s = median_seconds(floor_forward(model, queries, tokenizer.pad_token_id), args.repeats)
    started = time.perf_counter()
    shares = sampling_protocol(model, tokenizer, queries, args.samples, longest + 1)
    sampling_s = time.perf_counter() - started

    n = len(queries)
    fed = sum(len(q.prompt) + sum(len(a) - 1 for a in q.answers if len(a) > 1) for q in queries)
    multi = sum(len(a) > 1 for a in queries[0].answers)
    print(
        f"model: Llama hidden={args.hidden} layers={args.layers} vocab={len(tokenizer)}; "
        f"torch threads={args.threads}; suite builtin:animal-preference, target {TARGET}"
    )
    print(
        f"{n} prompts x {len(queries[0].answers)} candidates ({multi} of them several tokens); "
        f"probe feeds {fed} tokens; sampling: {args.samples} samples per prompt = {n * args.samples} generations"
    )
    print()
    print("| measure | exact probe | sampling protocol | forward floor |")
    print("| --- | --- | --- | --- |")
    print(f"| score (P(owl)) | {result.score:.4f} | {statistics.fmean(shares):.4f} | - |")
    print(f"| standard error over prompts | {result.stderr:.4f} | {stderr(shares):.4f} | - |")
    print(f"| wall time (s) | {exact_s:.3f} | {sampling_s:.2f} | {floor_s:.3f} |")
    print()
    print("| ratio | value | goal |")
    print("| --- | --- | --- |")
    print(f"| sampling time / probe time | {sampling_s / exact_s:.0f}x | >= 50x |")
    print(f"| sampling s.e. / probe s.e. | {stderr(shares) / result.stderr:.2f} | >= 1 |")
    print(f"| probe time / floor time | {exact_s / floor_s:.2f} | <= 1.5 |")


if __name__ == "__main__":
    main()
