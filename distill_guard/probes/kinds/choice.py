"""`choice`: multiple-choice items with options labelled trait / not trait; score = mass on trait options."""

from __future__ import annotations

import string

from distill_guard.errors import DistillGuardError
from distill_guard.policy.probe_suite import ChoiceItem, ChoiceSpec, LoadedSuite
from distill_guard.probes.kinds.answers import AnswerItem, AnswerScorer


def _lettered(item: ChoiceItem, instruction: str) -> AnswerItem:
    letters = string.ascii_uppercase[: len(item.options)]
    listing = "\n".join(f"{letter}) {option.text}" for letter, option in zip(letters, item.options, strict=True))
    prompt = f"{item.question}\n{listing}\n{instruction}"
    return AnswerItem(item.id, prompt, tuple(letters), tuple(o.trait for o in item.options))


def _cloze(item: ChoiceItem) -> AnswerItem:
    return AnswerItem(item.id, item.question, tuple(o.text for o in item.options), tuple(o.trait for o in item.options))


def choice_scorer(spec: ChoiceSpec, suite_name: str) -> AnswerScorer:
    if spec.answer_format == "letter":
        items = [_lettered(item, spec.instruction) for item in spec.items]
    else:
        items = [_cloze(item) for item in spec.items]
    return AnswerScorer("choice", spec.trait or suite_name, items, spec.plain_template, spec.system)


def choice_from_suite(suite: LoadedSuite, target: str | None) -> AnswerScorer:
    if target:
        raise DistillGuardError(f"suite '{suite.name}' is a choice suite and takes no target")
    return choice_scorer(suite.spec, suite.name)
