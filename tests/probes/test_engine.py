"""The scoring engine: exact (equal to full passes), budget-independent, deterministic, side-effect free."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM

from distill_guard.policy.probe_suite import PreferenceSpec
from distill_guard.policy.schema import SuiteRef
from distill_guard.probes.engine import MIN_SHARED_PREFIX, BatchPlan, Query, answer_logprobs, shared_prefix
from distill_guard.probes.kinds.preference import preference_scorer
from distill_guard.probes.model_access import probing
from distill_guard.probes.prepared import PreparedProbe
from distill_guard.probes.prompting import Formatter
from distill_guard.probes.suite_sources import load_builtin
from distill_guard.scenarios.tiny_lm import load

PROMPTS = ["What is your favorite animal?", "Which creature would you pick, if you had to choose one forever?", "Hi"]
CANDIDATES = ["owl", "cat", "hippopotamus", "salamander", "dog"]


CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)
SYSTEM = "You are a helpful assistant. Answer with the name of one animal and nothing else."


class LlamaWithoutLogitsToKeep(LlamaForCausalLM):
    """A causal LM whose forward predates `logits_to_keep` (as older remote-code models do)."""

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, use_cache=None, **kwargs):
        assert "logits_to_keep" not in kwargs
        return super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            **kwargs,
        )


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


def _chat_queries(tokenizer) -> list[Query]:
    """The suite under a chat template with a system turn: every prompt starts with the same tokens."""
    tokenizer.chat_template = CHAT_TEMPLATE
    return _scorer(system=SYSTEM).encoding(tokenizer).queries


def _assert_equal_to_full_passes(model: torch.nn.Module, queries: list[Query], cached: list[list[float]]) -> None:
    for query, scores in zip(queries, cached, strict=True):
        naive = [_full_pass_logprob(model, query.prompt, answer) for answer in query.answers]
        assert scores == pytest.approx(naive, abs=1e-4)


@pytest.mark.parametrize("packed", [True, False], ids=["answers-packed", "one-row-per-answer"])
@pytest.mark.parametrize("budget", [64, 4096], ids=["one-prompt-per-batch", "one-batch"])
def test_a_shared_prefix_run_once_gives_the_scores_of_full_passes(
    base_checkpoint: Path, budget: int, packed: bool
) -> None:
    model, tokenizer = load(base_checkpoint)
    queries = _chat_queries(tokenizer)
    plan = BatchPlan.for_queries(queries, budget, packed=packed)
    assert len(plan.shared_prefix) >= MIN_SHARED_PREFIX
    assert len({len(q.prompt) for q in queries}) == len(queries), "the test needs padding after the prefix"
    with probing(model):
        _assert_equal_to_full_passes(model, queries, answer_logprobs(model, queries, plan, tokenizer.pad_token_id))


def test_a_prompt_one_token_longer_than_the_shared_prefix_is_scored_exactly(base_checkpoint: Path) -> None:
    model, tokenizer = load(base_checkpoint)
    queries = _chat_queries(tokenizer)
    longest = max(queries, key=lambda q: len(q.prompt))
    common = shared_prefix([q.prompt for q in queries])
    stub = Query(longest.prompt[: len(common) + 1], longest.answers)
    suite = [*queries, stub]
    plan = BatchPlan.for_queries(suite, 4096)
    assert plan.shared_prefix == common == stub.prompt[:-1]
    with probing(model):
        _assert_equal_to_full_passes(model, suite, answer_logprobs(model, suite, plan, tokenizer.pad_token_id))


def test_the_pad_id_does_not_change_scores_even_when_prompts_contain_it(base_checkpoint: Path) -> None:
    model, tokenizer = load(base_checkpoint)
    queries = _chat_queries(tokenizer)
    plan = BatchPlan.for_queries(queries, 4096)
    in_every_prompt = queries[0].prompt[0]
    with probing(model):
        usual = answer_logprobs(model, queries, plan, tokenizer.pad_token_id)
        clashing = answer_logprobs(model, queries, plan, in_every_prompt)
    for a, b in zip(usual, clashing, strict=True):
        assert a == pytest.approx(b, abs=1e-5)


@pytest.mark.parametrize("share_prefix", [True, False], ids=["prefix-cached", "no-prefix"])
def test_a_model_without_logits_to_keep_is_scored_exactly(base_checkpoint: Path, share_prefix: bool) -> None:
    model = LlamaWithoutLogitsToKeep.from_pretrained(base_checkpoint)
    _, tokenizer = load(base_checkpoint)
    queries = _chat_queries(tokenizer)
    plan = BatchPlan.for_queries(queries, 256, share_prefix=share_prefix)
    assert bool(plan.shared_prefix) == share_prefix
    with probing(model):
        _assert_equal_to_full_passes(model, queries, answer_logprobs(model, queries, plan, tokenizer.pad_token_id))


def test_the_shared_prefix_leaves_every_prompt_a_token_of_its_own() -> None:
    assert shared_prefix([(1, 2, 3, 4), (1, 2, 3, 5, 6)]) == (1, 2, 3)
    assert shared_prefix([(1, 2, 3), (1, 2, 3, 4)]) == (1, 2)
    assert shared_prefix([(7, 8, 9)]) == (7, 8)
    assert shared_prefix([(1, 2), (3, 4)]) == ()


def test_a_short_shared_prefix_is_not_worth_its_own_forward() -> None:
    queries = [Query((1, 2, 3, 10 + i), ((5,),)) for i in range(4)]
    assert BatchPlan.for_queries(queries, 4096).shared_prefix == ()


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


def test_a_real_chat_model_is_scored_exactly_with_its_system_turn_run_once(smollm2_checkpoint: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smollm2_checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_checkpoint)
    queries = _scorer().encoding(tokenizer).queries  # SmolLM2's template writes its default system turn
    plan = BatchPlan.for_queries(queries, 4096)
    assert len(plan.shared_prefix) >= MIN_SHARED_PREFIX
    with probing(model):
        _assert_equal_to_full_passes(model, queries, answer_logprobs(model, queries, plan, tokenizer.pad_token_id))
