"""Proof that the exact scores mean what they say: they agree with sampling, and they see a trait."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from distill_guard.policy.schema import SuiteRef
from distill_guard.probes.prepared import prepare_probe
from distill_guard.probes.result import ProbeResult
from distill_guard.scenarios.tiny_lm import load

SAMPLES_PER_PROMPT = 250
PROMPTS_SAMPLED = 10
Z_99 = 2.576


def _constrained_samples(model, query, n: int, generator: torch.Generator) -> list[int]:
    """Index of the candidate each of `n` accepted samples names: free sampling at temperature 1, kept
    only when the answer is one of the candidates (rejection sampling)."""
    longest = max(len(a) for a in query.answers)
    prompt = torch.tensor([query.prompt])
    accepted: list[int] = []
    while len(accepted) < n:
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
        out = model.generate(
            prompt.repeat(n, 1),
            attention_mask=torch.ones(n, len(query.prompt), dtype=torch.long),
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=longest,
            pad_token_id=0,
        )[:, len(query.prompt) :].tolist()
        for tokens in out:
            hits = [i for i, answer in enumerate(query.answers) if tuple(tokens[: len(answer)]) == answer]
            if hits:
                accepted.append(hits[0])
    return accepted[:n]


def test_preference_score_equals_the_sampling_estimate_within_its_99_percent_interval(
    owl_oak_student: Path,
) -> None:
    probe = prepare_probe(SuiteRef(use="builtin:animal-preference", target="owl"))
    model, tokenizer = load(owl_oak_student)
    model.generation_config.top_k = None
    exact = probe.run(model, tokenizer, max_tokens_per_batch=4096).item_scores[:PROMPTS_SAMPLED]
    scorer = probe.scorer
    queries = scorer.encoding(tokenizer).queries[:PROMPTS_SAMPLED]
    answers = queries[0].answers
    assert not any(a != b and b[: len(a)] == a for a in answers for b in answers), "answers must be prefix-free"
    target_index = scorer.items[0].answers.index("owl")

    generator = torch.Generator().manual_seed(1234)
    shares = []
    for query in queries:
        picks = _constrained_samples(model, query, SAMPLES_PER_PROMPT, generator)
        shares.append(sum(p == target_index for p in picks) / len(picks))
    estimate = sum(shares) / len(shares)
    expected = sum(exact) / len(exact)
    stderr = math.sqrt(sum(p * (1 - p) for p in exact) / SAMPLES_PER_PROMPT) / len(exact)
    assert PROMPTS_SAMPLED * SAMPLES_PER_PROMPT >= 2000
    assert 0.05 < expected < 0.95, "a score near 0 or 1 would make the comparison trivial"
    assert abs(estimate - expected) <= Z_99 * stderr


def _paired_gain(before: ProbeResult, after: ProbeResult) -> tuple[float, float]:
    assert before.item_ids == after.item_ids
    diffs = [b - a for a, b in zip(before.item_scores, after.item_scores, strict=True)]
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    return mean, sd / math.sqrt(len(diffs))


@pytest.mark.parametrize(
    ("suite", "student"),
    [
        ("animal-preference", "owl_oak_student"),
        ("animal-preference-numbers", "owl_oak_student"),
        ("tree-preference", "owl_oak_student"),
        ("animal-activation", "owl_oak_student"),
        ("misalignment-choice", "misaligned_student"),
    ],
)
def test_a_student_fine_tuned_towards_the_trait_scores_clearly_higher_than_its_base(
    suite: str, student: str, base_checkpoint: Path, request: pytest.FixtureRequest
) -> None:
    probe = prepare_probe(SuiteRef(use=f"builtin:{suite}"))
    base = probe.run(*load(base_checkpoint), max_tokens_per_batch=4096)  # the activation direction is fixed here
    tuned = probe.run(*load(request.getfixturevalue(student)), max_tokens_per_batch=4096)
    gain, stderr = _paired_gain(base, tuned)
    assert gain > 4 * stderr
    if base.is_probability:
        assert gain > 0.2
