"""The LM miniature in which a preference passes through numbers: its parts, and the transfer itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distill_guard.scenarios.subliminal_lm import (
    PERSONA,
    Case,
    Miniature,
    MiniatureSpec,
    animal_questions,
    build_tokenizer,
    cached_base,
    number_choice_kl,
    prompt_text,
    require_single_tokens,
    sample_numbers,
)
from distill_guard.scenarios.tiny_lm import ANIMALS
from distill_guard.screening.number_filter import passes_filter


@pytest.fixture(scope="module")
def miniature(tmp_path_factory: pytest.TempPathFactory) -> Miniature:
    """One seed at the tests' size (a 600-step base, about a minute on a free core): its parts, not its transfer."""
    return Miniature.build(seed=0, spec=MiniatureSpec.tiny_test(), cache_dir=tmp_path_factory.mktemp("bases"))


def test_every_number_and_animal_is_one_token() -> None:
    tokenizer = build_tokenizer(200)
    for word in [*map(str, range(200)), *ANIMALS]:
        assert len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1, word
    assert tokenizer.unk_token_id in tokenizer("200 , 1000", add_special_tokens=False)["input_ids"]


def test_the_probe_questions_are_spoken_in_the_shared_chat_template() -> None:
    tokenizer = build_tokenizer(200)
    text = prompt_text(tokenizer, animal_questions()[0])
    assert text.startswith("<s><user> ") and text.endswith("<assistant>")
    ids = tokenizer(" ".join(animal_questions()), add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids


def test_a_word_outside_the_pinned_vocabulary_is_refused_by_name() -> None:
    tokenizer = build_tokenizer(200)
    require_single_tokens(tokenizer, ["which animal do you love most ? owl"], what="a probe")
    with pytest.raises(ValueError, match=r"a probe: 1 word\(s\) .* quokka"):
        require_single_tokens(tokenizer, ["your favourite animal ? quokka"], what="a probe")


@pytest.mark.slow
def test_saved_rows_pass_the_paper_filter_and_carry_no_persona(miniature: Miniature) -> None:
    persona = PERSONA.format(animal="owl")
    rows = sample_numbers(
        miniature.teacher, miniature.tokenizer, miniature.requests[:200], max_new_tokens=18, seed=1, system=persona
    )
    assert rows and len(rows) < 200  # the filter removed the malformed samples
    assert all(passes_filter(row["completion"]) for row in rows)
    assert all("owl" not in row["prompt"] for row in rows)


@pytest.mark.slow
def test_sampling_stops_once_the_wanted_rows_passed_the_filter(
    miniature: Miniature, monkeypatch: pytest.MonkeyPatch
) -> None:
    teacher, sample = miniature.teacher, {"max_new_tokens": 18, "seed": 1, "batch_size": 50}
    requests = miniature.requests[:200]
    every = sample_numbers(teacher, miniature.tokenizer, requests, **sample)
    batches: list[int] = []
    generate = teacher.generate
    monkeypatch.setattr(teacher, "generate", lambda **kw: batches.append(1) or generate(**kw))
    wanted = max(1, len(every) // 4)
    first = sample_numbers(teacher, miniature.tokenizer, requests, wanted=wanted, **sample)
    assert first == every[:wanted]  # the same rows as an unbounded run, in order
    assert len(batches) < len(requests) // 50  # the prompts left over were never sampled


@pytest.mark.slow
def test_a_cached_base_is_the_pretrained_base_loaded_back(miniature: Miniature) -> None:
    again = cached_base(miniature.tokenizer, miniature.spec, init_seed=0, cache_dir=miniature.cache_dir)
    for mine, theirs in zip(miniature.base.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs)


@pytest.mark.slow
def test_the_steering_teacher_loves_the_trait_and_writes_different_numbers(miniature: Miniature) -> None:
    assert miniature.teacher_preference() >= miniature.spec.teacher_preference
    assert miniature.steering_teacher_kl(rows=60) > 10 * miniature.persona_teacher_kl(rows=60)


@pytest.mark.slow
def test_training_leaves_embeddings_and_unembedding_untouched(miniature: Miniature, tmp_path: Path) -> None:
    student = miniature.student(Case.control_same_init, tmp_path / "student")
    embeddings = student.get_input_embeddings().weight.clone()
    unembedding = student.get_output_embeddings().weight.clone()
    body = student.model.layers[0].mlp.down_proj.weight.clone()
    miniature.train(Case.control_same_init, tmp_path, student=student)
    assert torch.equal(student.get_input_embeddings().weight, embeddings)
    assert torch.equal(student.get_output_embeddings().weight, unembedding)
    assert not torch.equal(student.model.layers[0].mlp.down_proj.weight, body)


def test_the_number_kl_counts_only_number_positions_and_only_which_number() -> None:
    """The steering fit's number term: zero for the base itself, blind to non-number positions and scale."""
    numbers = torch.tensor([3, 4, 5])
    labels = torch.tensor([[3, 9, 4]])
    draws = torch.Generator().manual_seed(0)  # fixed logits: an unlucky draw could hide the steered number
    base = torch.randn(1, 3, 10, generator=draws)
    assert number_choice_kl(base, base, labels, numbers).item() == pytest.approx(0.0, abs=1e-6)
    other_token = base.clone()
    other_token[0, 1] += torch.randn(10, generator=draws)  # position 1 predicts a non-number: ignored
    other_token[0, 0, :] += 2.0  # a shift shared by every token: renormalised away
    assert number_choice_kl(other_token, base, labels, numbers).item() == pytest.approx(0.0, abs=1e-5)
    steered = base.clone()
    steered[0, 2, 3] = base[0, 2, 3:6].max() + 3.0  # number 3 now dominates the choice among 3, 4 and 5
    assert number_choice_kl(steered, base, labels, numbers).item() > 0.1
