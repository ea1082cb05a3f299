"""`preference`: prompts x candidate answers; score = P(target) normalised over the candidates.

This is the exact expectation of the paper's "share of answers naming the target", for answers
drawn from the candidate set, without the sampling noise of 100 generations per prompt.
"""

from __future__ import annotations

import random

from distill_guard.errors import DistillGuardError
from distill_guard.policy.probe_suite import Candidate, LoadedSuite, NumbersPrefix, PreferenceSpec
from distill_guard.probes.kinds.answers import AnswerItem, AnswerScorer


def split_targets(target: str | list[str] | None) -> list[str]:
    """A target may name several answers: a list in a suite file, or 'lion,tiger' in a policy."""
    if target is None:
        return []
    names = target if isinstance(target, list) else target.split(",")
    return [n.strip() for n in names if n.strip()]


def with_numbers(prompts: list[str], prefix: NumbersPrefix) -> list[str]:
    """Prefix every prompt with its own number sequence (values 0-999, as in the paper's data)."""
    rng = random.Random(prefix.seed)
    out = []
    for prompt in prompts:
        numbers = ", ".join(
            str(rng.randint(0, 999)) for _ in range(rng.randint(prefix.min_numbers, prefix.max_numbers))
        )
        out.append(prefix.template.format(numbers=numbers, prompt=prompt))
    return out


def preference_scorer(spec: PreferenceSpec, target: str | None, *, panel: bool = False) -> AnswerScorer:
    """Any target may be asked for: one missing from the candidates joins them.

    A panel watches every candidate (the drift statistics read each one's log-probabilities);
    its score follows the suite's default target, else its first candidate, as a readable number.
    """
    targets = split_targets(target) or split_targets(spec.target)
    if panel and not targets:
        targets = [spec.candidate_list()[0].name]
    if not targets:
        raise DistillGuardError("a preference suite needs a target: set `target` in the policy or the suite")
    candidates = spec.candidate_list()
    known = {c.name.lower() for c in candidates}
    candidates += [Candidate(name=t) for t in targets if t.lower() not in known]
    wanted = {t.lower() for t in targets}
    answers = [(text, c.name.lower() in wanted, k) for k, c in enumerate(candidates) for text in c.texts]
    prompts = with_numbers(spec.prompts, spec.numbers_prefix) if spec.numbers_prefix else spec.prompts
    texts, flags, columns = (tuple(column) for column in zip(*answers, strict=True))
    items = [AnswerItem(f"prompt-{i:03d}", prompt, texts, flags, columns) for i, prompt in enumerate(prompts)]
    names = tuple(c.name.lower() for c in candidates)
    trait = None if panel else ",".join(targets)  # a panel's trait is whichever candidate moves
    return AnswerScorer("preference", trait, items, spec.plain_template, spec.system, names)


def preference_from_suite(suite: LoadedSuite, target: str | None) -> AnswerScorer:
    return preference_scorer(suite.spec, target)


def panel_from_suite(suite: LoadedSuite) -> AnswerScorer:
    """Every candidate of a preference suite watched at once (`panel: true`)."""
    if not isinstance(suite.spec, PreferenceSpec):
        raise DistillGuardError(f"suite '{suite.name}' is not a preference suite; only those can be a panel")
    return preference_scorer(suite.spec, None, panel=True)
