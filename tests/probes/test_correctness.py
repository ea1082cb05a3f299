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

DRAWS_PER_PROMPT = 500
PROMPTS_SAMPLED = 10
Z_99 = 2.576


def _constrained_samples(model, query, draws: int, generator: torch.Generator) -> list[int]:
    """Index of the candidate named by each accepted sample: free ancestral sampling at temperature 1
    over the whole vocabulary, kept only when the answer is one of the candidates (rejection)."""
    longest = max(len(a) for a in query.answers)
    tokens = torch.tensor([query.prompt]).repeat(draws, 1)
    with torch.no_grad():
        for _ in range(longest):
            probs = model(input_ids=tokens).logits[:, -1, :].float().softmax(-1)
            tokens = torch.cat([tokens, torch.multinomial(probs, 1, generator=generator)], dim=-1)
    accepted = []
    for sampled in tokens[:, len(query.prompt) :].tolist():
        hits = [i for i, answer in enumerate(query.answers) if tuple(sampled[: len(answer)]) == answer]
        accepted.extend(hits[:1])
    return accepted


def test_preference_score_equals_the_sampling_estimate_within_its_99_percent_interval(
    base_checkpoint: Path,
) -> None:
    targets = ["owl", "cat", "dog", "lion", "tiger", "eagle"]  # several targets keep the share away from 0 and 1
    probe = prepare_probe(SuiteRef(use="builtin:animal-preference", target=",".join(targets)))
    model, tokenizer = load(base_checkpoint)
    all_exact = probe.run(model, tokenizer, max_tokens_per_batch=4096).item_scores
    scorer = probe.scorer
    queries = scorer.encoding(tokenizer).queries
    answers = queries[0].answers
    assert not any(a != b and b[: len(a)] == a for a in answers for b in answers), "answers must be prefix-free"
    target_indices = {scorer.items[0].answers.index(t) for t in targets}

    generator = torch.Generator().manual_seed(1234)
    picks, exact = [], []
    for query, score in zip(queries, all_exact, strict=True):  # prompts the tiny model mostly answers off-list
        accepted = _constrained_samples(model, query, DRAWS_PER_PROMPT, generator)  # are skipped: that choice
        if len(accepted) >= DRAWS_PER_PROMPT // 4:  # depends on acceptance only, not on which answer won
            picks.append(accepted)
            exact.append(score)
        if len(picks) == PROMPTS_SAMPLED:
            break
    assert len(picks) == PROMPTS_SAMPLED and sum(len(p) for p in picks) >= 2000
    estimate = sum(sum(i in target_indices for i in p) / len(p) for p in picks) / len(picks)
    expected = sum(exact) / len(exact)
    stderr = math.sqrt(sum(e * (1 - e) / len(p) for e, p in zip(exact, picks, strict=True))) / len(picks)
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
        # not animal-activation: on these tiny models its direction is not the trait (the owl student
        # moves -10 to +5 contrasts by init seed; benchmarks/activation_sensitivity.py, docs/probes.md)
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
