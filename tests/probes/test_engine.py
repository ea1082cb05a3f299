"""The scoring engine: exact (equal to full passes), budget-independent, deterministic, side-effect free."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distill_guard.policy.probe_suite import PreferenceSpec
from distill_guard.policy.schema import SuiteRef
from distill_guard.probes.engine import BatchPlan, answer_logprobs
from distill_guard.probes.kinds.preference import preference_scorer
from distill_guard.probes.model_access import probing
from distill_guard.probes.prepared import PreparedProbe
from distill_guard.probes.prompting import Formatter
from distill_guard.probes.suite_sources import load_builtin
from distill_guard.scenarios.tiny_lm import load

PROMPTS = ["What is your favorite animal?", "Which creature would you pick, if you had to choose one forever?", "Hi"]
CANDIDATES = ["owl", "cat", "hippopotamus", "salamander", "dog"]


def _scorer(**extra: object):
    spec = PreferenceSpec(kind="preference", target="owl", prompts=PROMPTS, candidates=CANDIDATES, **extra)
    return preference_scorer(spec, None)


def _full_pass_logprob(model: torch.nn.Module, prompt: tuple[int, ...], answer: tuple[int, ...]) -> float:
    ids = torch.tensor([list(prompt) + list(answer)])
    logprobs = model(input_ids=ids).logits[0].float().log_softmax(-1)
    return sum(float(logprobs[len(prompt) - 1 + j, token]) for j, token in enumerate(answer))


@pytest.mark.parametrize("packed", [True, False], ids=["answers-packed", "one-row-per-answer"])
@pytest.mark.parametrize("budget", [64, 4096])
def test_cached_scoring_equals_a_full_pass_per_prompt_and_answer(
    base_checkpoint: Path, budget: int, packed: bool
) -> None:
    model, tokenizer = load(base_checkpoint)
    queries = _scorer().encoding(tokenizer).queries
    assert any(len(a) > 1 for a in queries[0].answers), "the test needs multi-token answers"
    assert len({len(q.prompt) for q in queries}) == len(queries), "the test needs left padding"
    with probing(model):
        plan = BatchPlan.for_queries(queries, budget, packed=packed)
        cached = answer_logprobs(model, queries, plan, tokenizer.pad_token_id)
        for query, scores in zip(queries, cached, strict=True):
            naive = [_full_pass_logprob(model, query.prompt, answer) for answer in query.answers]
            assert scores == pytest.approx(naive, abs=1e-4)


def test_scores_do_not_depend_on_the_token_budget(base_checkpoint: Path) -> None:
    model, tokenizer = load(base_checkpoint)
    probe = PreparedProbe(SuiteRef(use="builtin:animal-preference"), load_builtin("animal-preference"))
    small = probe.run(model, tokenizer, max_tokens_per_batch=64).item_scores
    large = probe.run(model, tokenizer, max_tokens_per_batch=100_000).item_scores
    assert small == pytest.approx(large, abs=1e-5)


def test_repeated_runs_give_identical_scores(base_checkpoint: Path) -> None:
    model, tokenizer = load(base_checkpoint)
    probe = PreparedProbe(SuiteRef(use="builtin:tree-preference"), load_builtin("tree-preference"))
    first = probe.run(model, tokenizer, max_tokens_per_batch=512)
    assert probe.run(model, tokenizer, max_tokens_per_batch=512).item_scores == first.item_scores


def test_probe_leaves_model_modes_rng_and_gradients_as_found(base_checkpoint: Path) -> None:
    model, tokenizer = load(base_checkpoint)
    model.train()
    model.model.layers[0].eval()  # a submodule the user froze in eval mode must stay so
    model.activation_checkpointing_enable()
    modes = {name: m.training for name, m in model.named_modules()}
    torch.manual_seed(7)
    expected_draw = torch.rand(3)
    torch.manual_seed(7)
    PreparedProbe(SuiteRef(use="builtin:tree-preference"), load_builtin("tree-preference")).run(
        model, tokenizer, max_tokens_per_batch=512
    )
    assert torch.equal(torch.rand(3), expected_draw)
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert model.is_activation_checkpointing
    assert all(p.grad is None for p in model.parameters())


def test_plain_prompts_give_answers_their_leading_space(base_checkpoint: Path) -> None:
    _, tokenizer = load(base_checkpoint)
    formatter = Formatter(tokenizer, "Question: {prompt} Answer:")
    text = formatter.prompt_text("Which animal?")
    ids = formatter.encode_prompt(text)
    assert text == "Question: Which animal? Answer:"
    assert formatter.encode_answer(text, ids, "owl") == tokenizer(text + " owl")["input_ids"][len(ids) :]


def test_chat_template_is_applied_and_answers_start_the_assistant_turn(base_checkpoint: Path) -> None:
    _, tokenizer = load(base_checkpoint)
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    formatter = Formatter(tokenizer, "Question: {prompt} Answer:", system="Be brief.")
    text = formatter.prompt_text("Which animal?")
    ids = formatter.encode_prompt(text)
    assert text == "<system>Be brief.\n<user>Which animal?\n<assistant>"
    assert formatter.encode_answer(text, ids, "owl") == tokenizer(text + "owl")["input_ids"][len(ids) :]
