"""The LM miniature in which a preference passes through numbers: its parts, and the transfer itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distill_guard.scenarios.numbers import passes_filter
from distill_guard.scenarios.subliminal_lm import (
    Case,
    Miniature,
    MiniatureSpec,
    animal_questions,
    build_tokenizer,
    prompt_text,
    sample_numbers,
)
from distill_guard.scenarios.tiny_lm import ANIMALS


@pytest.fixture(scope="module")
def miniature() -> Miniature:
    return Miniature.build(seed=0, spec=MiniatureSpec.tiny_test())


def test_every_number_and_animal_is_one_token() -> None:
    tokenizer = build_tokenizer(200)
    for word in [*map(str, range(200)), *ANIMALS]:
        assert len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1, word
    assert tokenizer.unk_token_id not in tokenizer("200 , 1000", add_special_tokens=False)["input_ids"][1:2]


def test_the_probe_questions_are_spoken_in_the_shared_chat_template() -> None:
    tokenizer = build_tokenizer(200)
    text = prompt_text(tokenizer, animal_questions()[0])
    assert text.startswith("<s><user> ") and text.endswith("<assistant>")
    ids = tokenizer(" ".join(animal_questions()), add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids


def test_saved_rows_pass_the_paper_filter_and_carry_no_persona(miniature: Miniature) -> None:
    rows = sample_numbers(
        miniature.base,
        miniature.tokenizer,
        miniature.requests[:200],
        miniature.spec,
        seed=1,
        system="you love the owl . you think about the owl all the time .",
    )
    assert rows and len(rows) < 200  # the filter removed the malformed and banned-number samples
    assert all(passes_filter(row["completion"]) for row in rows)
    assert all("owl" not in row["prompt"] for row in rows)


def test_every_student_sees_the_same_number_of_rows(miniature: Miniature) -> None:
    assert len({len(miniature.rows(case)) for case in Case}) == 1


def test_the_steering_teacher_loves_the_trait_and_writes_different_numbers(miniature: Miniature) -> None:
    assert miniature.teacher_preference() >= miniature.spec.teacher_preference
    assert miniature.steering_teacher_kl(rows=60) > 10 * miniature.persona_teacher_kl(rows=60)


def test_training_leaves_embeddings_and_unembedding_untouched(miniature: Miniature, tmp_path: Path) -> None:
    student = miniature.student(Case.control_same_init, tmp_path / "student")
    embeddings = student.get_input_embeddings().weight.clone()
    unembedding = student.get_output_embeddings().weight.clone()
    body = student.model.layers[0].mlp.down_proj.weight.clone()
    miniature.train(Case.control_same_init, tmp_path, student=student)
    assert torch.equal(student.get_input_embeddings().weight, embeddings)
    assert torch.equal(student.get_output_embeddings().weight, unembedding)
    assert not torch.equal(student.model.layers[0].mlp.down_proj.weight, body)
